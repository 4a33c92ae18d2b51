"""Checkpoints of :meth:`hw2.training.Trainer.fit`: the format, reading and writing it.

A checkpoint holds everything the next epoch depends on -- the model, the
optimizer, the trainer's extra state (a learning-rate schedule, a gradient
scaler), the random number generators, the data loaders' state, the
early-stopping bookkeeping and the history so far -- and the identity of the
run that wrote it, so that a run never resumes another run's training. It is
written atomically (complete or absent); :func:`read` refuses a damaged file,
one of another layout, one of another run, or one that lacks a part, with a
:class:`CheckpointError` that names the file and the remedy.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from hw2 import _checks
from hw2._io import atomic_write

__all__ = ["FORMAT", "KEYS", "CheckpointError", "loader_state", "load_loader_state",
           "rng_state", "set_rng_state", "write", "read", "check_place",
           "differences", "checkpoint_epoch", "checkpoint_seed"]

#: Version of the checkpoint layout written by :meth:`Trainer.fit`.
FORMAT = 3
#: What a checkpoint holds (``run`` too when the fit was given a run identity;
#: ``train_seconds`` since the Trainer times its training passes).
KEYS = ("format", "epoch", "results", "best_loss", "epochs_without_improvement",
        "model", "optimizer", "extra", "rng", "loaders", "epoch_seconds")
#: The last words of every refusal.
FRESH = "Delete it to start the run afresh."


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from.

    Unreadable, of another run, or of another layout. The message names the
    file and says how to start afresh.
    """


def loader_state(dl) -> dict[str, Any] | None:
    """What a loader needs to replay the same batches after a resume.

    A loader with ``state_dict()`` (e.g. ``hw2.data.GPUBatches``) saves that;
    a ``torch.utils.data.DataLoader`` shuffled by its own ``generator`` saves
    the generator (without one it shuffles from the global RNG, which the
    checkpoint saves anyway).
    """
    if callable(getattr(dl, "state_dict", None)):
        return {"state_dict": dl.state_dict()}
    gen = getattr(dl, "generator", None)
    if gen is None:
        gen = getattr(getattr(dl, "sampler", None), "generator", None)
    if isinstance(gen, torch.Generator):
        return {"generator": gen.get_state()}
    return None


def load_loader_state(dl, state: dict[str, Any] | None) -> None:
    if not state:
        return
    if "state_dict" in state:
        dl.load_state_dict(state["state_dict"])
    elif "generator" in state:
        gen = getattr(dl, "generator", None)
        if gen is None:
            gen = getattr(getattr(dl, "sampler", None), "generator", None)
        if isinstance(gen, torch.Generator):
            gen.set_state(state["generator"])


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def write(path: Path, state: dict) -> None:
    """Write a checkpoint's ``state`` to ``path`` atomically (complete or absent)."""
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def read(path: Path, run_identity: dict | None = None) -> dict[str, Any]:
    """The checkpoint at ``path``, checked: readable, this layout, complete, this run.

    Tensors are loaded onto the CPU (a checkpoint written on one device resumes
    on another).

    Raises:
        CheckpointError: naming the file, what is wrong and the remedy.
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); it is damaged, "
            f"e.g. by an interrupted copy. {FRESH}"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(
            f"{path} is not a checkpoint of this version of hw2.training (format "
            f"{found!r}, not {FORMAT}). {FRESH}"
        )
    missing = [k for k in KEYS if k not in saved]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: it lacks "
                              f"{', '.join(missing)}. {FRESH}")
    if run_identity is not None and saved.get("run") != run_identity:
        raise CheckpointError(
            f"checkpoint {path} was written by another run or with other settings "
            f"({differences(saved.get('run'), run_identity)}). {FRESH} Or run again "
            f"with the settings it was written with."
        )
    return saved


def differences(have: dict | None, want: dict, *, there: str = "in the checkpoint",
                here: str = "now", ignore: tuple[str, ...] = (), shown: int = 3) -> str:
    """``lr: 0.001 in the checkpoint, 0.5 now; ...`` for the keys that differ.

    The one wording of every "other settings" message (checkpoints, result
    files, claims); ``ignore`` leaves keys out; empty when nothing differs.
    """
    if not isinstance(have, dict):
        return "it records no run"
    keys = sorted(k for k in {*have, *want}
                  if have.get(k) != want.get(k) and k not in ignore)
    text = "; ".join(f"{k}: {have.get(k)!r} {there}, {want.get(k)!r} {here}"
                     for k in keys[:shown])
    return text + (f"; and {len(keys) - shown} more" if len(keys) > shown else "")


def check_place(checkpoints: str | os.PathLike | None) -> Path | None:
    """The checkpoint file of a prefix (``<prefix>.pt``), if it can be written there.

    Raises:
        TypeError: a prefix that is not a path.
        CheckpointError: naming the folder or file in the way, before training.
    """
    if checkpoints is None:
        return None
    if not isinstance(checkpoints, (str, os.PathLike)):
        raise TypeError(f"checkpoints must be a path prefix (str), got {checkpoints!r}")
    path = Path(f"{os.fspath(checkpoints)}.pt")
    if path.exists() and not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file; remove it or choose "
                              f"another checkpoint prefix")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"the checkpoint {path} cannot be written: {folder} is a "
                              f"file, not a folder; choose another checkpoint prefix")
    return path


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """Epochs finished according to the checkpoint file ``path`` of :meth:`Trainer.fit`.

    0 when there is no file, or one that cannot be read (``fit`` reports that
    when it tries to resume). For progress displays; training reads the
    whole checkpoint with :meth:`Trainer.load_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return int(saved.get("epoch", 0)) if isinstance(saved, dict) else 0
    except Exception:  # truncated, not a checkpoint: fit decides what to do with it
        return 0

def checkpoint_seed(path: str | os.PathLike) -> int | None:
    """The seed recorded in a checkpoint's run identity (None: none, or unreadable).

    A run whose seed was drawn at random records the seed it drew, so that a
    resume continues on the same data (see ``hw2.experiments.run_config``).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        seed = saved.get("run", {}).get("seed") if isinstance(saved, dict) else None
    except Exception:  # unreadable: fit reports that when it tries to resume
        return None
    return seed if _checks.is_int(seed) else None
