"""The device a run trains on.

Which one, what it is called, how it is set up for speed.
"""
from __future__ import annotations

import contextlib
import platform

__all__ = ["resolve_device", "device_name", "cpu_bf16_flags", "native_bf16",
           "uses_bf16", "configure_backends", "flush_denormals"]


def resolve_device(name: str):
    """The ``torch.device`` of a config's ``device``; a ValueError if it is not here."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r}: this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name!r}: Apple's MPS is not available on this "
                         f"machine")
    return device


def device_name(device) -> str:
    """A human-readable name: the GPU model, or the CPU model."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


#: CPU flags of native bfloat16 arithmetic: AVX-512 BF16 (AMD Zen 4 and later,
#: Intel Cooper Lake and later) and AMX (Intel Sapphire Rapids and later).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags() -> list[str] | None:
    """The flags of :data:`BF16_CPU_FLAGS` this CPU has (``/proc/cpuinfo``).

    None where that file cannot be read (not Linux).
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in BF16_CPU_FLAGS if flag in flags]
    except OSError:
        pass
    return None


def native_bf16(device) -> bool | None:
    """Whether ``device`` computes bfloat16 natively.

    True on CUDA; on a CPU, whether it has one of :data:`BF16_CPU_FLAGS`;
    None where that cannot be told.
    """
    if device.type == "cuda":
        return True
    flags = cpu_bf16_flags()
    return None if flags is None else bool(flags)


def uses_bf16(cfg, device) -> bool:
    """Whether the run of ``cfg`` (a RunConfig) computes in bf16 autocast on ``device``.

    On CUDA when ``cfg.amp``; on a CPU when ``cfg.cpu_bf16``, whether or not
    the CPU has native bf16 units (without them it is correct, only slower):
    a study keeps one numeric setting on every machine that trains it.
    """
    return bool(cfg.amp if device.type == "cuda"
                else cfg.cpu_bf16 and device.type == "cpu")


def configure_backends(device) -> None:
    """Process-wide speed settings: cuDNN autotuning and TF32 matmuls on CUDA.

    Flushing denormals to zero on a CPU is set per run by
    :func:`flush_denormals`, which puts torch's default back afterwards.
    """
    import torch

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@contextlib.contextmanager
def flush_denormals(device):
    """Treat denormal floats as zero on a CPU while the block runs.

    A network that stops learning (a deep plain net whose signal dies out)
    fills its activations and gradients with denormal floats, numbers below
    1e-38 that x86 CPUs compute about a hundred times more slowly: an epoch
    of such a run went from 14 s to 285 s. Treating them as zero changes no
    result that matters and keeps every epoch at full speed. The setting is
    process-wide, so it is switched off again (torch's default) on the way
    out: code that runs after a run, in a notebook say, computes with
    denormals as usual.
    """
    import torch

    on = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if on:
            torch.set_flush_denormal(False)
