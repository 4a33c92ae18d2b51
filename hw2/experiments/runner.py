"""One run: build the model, data on the device and trainer; train; write the result.

The training path is the one the fast CIFAR-10 scripts use
(Jordan 2024, airbench): the whole dataset lives on the device as uint8
(:class:`hw2.data.GPUBatches`), batches are index slices, flip/crop
augmentation runs on whole batches there, and the trainer does not
synchronise with the host inside an epoch. On CUDA the forward/backward pass
runs in bfloat16 autocast; on every device in channels-last memory.

:func:`run_config` is the run, step by step; :func:`run_experiment` is the
original assignment's entry point to it. The ``build_*`` functions are also
what ``benchmarks/runner_throughput.py`` measures.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from hw2._io import temp_glob
from hw2.experiments.config import (IN_SIZE, MODEL_TYPES, NUM_CLASSES, RunConfig,
                                    result_path)
from hw2.experiments.device import (configure_backends, device_name, flush_denormals,
                                    native_bf16, resolve_device, uses_bf16)
from hw2.experiments.results import (RESULT_FORMAT, check_output_location,
                                     code_provenance, shown_path, write_result)

__all__ = [
    "build_model",
    "describe_model",
    "build_batches",
    "lr_factor",
    "build_optimizer",
    "build_trainer",
    "checkpoint_prefix",
    "legacy_checkpoint_prefix",
    "adopt_legacy_checkpoint",
    "run_config",
    "run_experiment",
]


#: Training images a model's data-dependent initialisation reads.
INIT_IMAGES = 5000

# --------------------------------------------------------------------------
# Model, data, optimizer, trainer
# --------------------------------------------------------------------------

def build_model(cfg: RunConfig):
    """The model of a config, on the CPU, tried once on a dummy batch.

    A bad model configuration -- an unknown or impossible keyword, a stride of
    0, a negative padding, an activation parameter of the wrong type -- fails
    here with a ``ValueError`` naming the model and its keywords, before any
    data is loaded: the model is built, then run in evaluation mode on two
    blank images (the random number generators are left as they were).
    """
    import torch

    import hw2.cnn as cnn

    model_cls = getattr(cnn, MODEL_TYPES[cfg.model_type])
    keywords = f" with model_kw {cfg.model_kw}" if cfg.model_kw else ""
    try:
        model = model_cls(IN_SIZE, NUM_CLASSES, cfg.channels, cfg.resolved_pool_every,
                          cfg.hidden_dims, **cfg.model_kw)
    except (TypeError, ValueError, ZeroDivisionError) as e:  # e.g. an unknown keyword
        raise ValueError(f"cannot build {model_cls.__name__}{keywords}: "
                         f"{_first_line(e)}") from None
    except RuntimeError as e:  # e.g. a width whose weights do not fit in memory
        raise ValueError(f"cannot build {model_cls.__name__} with channels "
                         f"{cfg.filters_per_layer} and hidden_dims {cfg.hidden_dims}: "
                         f"{_first_line(e)}") from None
    try:
        with torch.no_grad(), _eval_mode(model):
            scores = model(torch.zeros(2, *IN_SIZE))
    except Exception as e:  # noqa: BLE001 - any failure is the configuration's
        raise ValueError(f"{model_cls.__name__}{keywords} fails on a batch of "
                         f"{IN_SIZE[1]}x{IN_SIZE[2]} images: {type(e).__name__}: "
                         f"{_first_line(e)}") from None
    if tuple(scores.shape) != (2, NUM_CLASSES):
        raise ValueError(f"{model_cls.__name__}{keywords} gives scores of shape "
                         f"{tuple(scores.shape)}, not (batch, {NUM_CLASSES})")
    return model


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


@contextlib.contextmanager
def _eval_mode(model):
    """Evaluation mode for the block (BatchNorm statistics untouched), then back."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def describe_model(model) -> dict[str, Any]:
    """A model's class, parameter counts and head input shape.

    The parameters are counted in all, and in the feature extractor and the
    head apart.
    """
    from hw2.cnn import count_parameters

    info = {"class": type(model).__name__, "parameters": count_parameters(model)}
    if hasattr(model, "feature_extractor") and hasattr(model, "classifier"):
        info["feature_parameters"] = count_parameters(model.feature_extractor)
        info["head_parameters"] = count_parameters(model.classifier)
    if hasattr(model, "feature_shape"):
        info["feature_shape"] = list(model.feature_shape)  # (C, H, W) entering the head
    return info


def build_batches(cfg: RunConfig, data, device, seed: int):
    """``(train, validation or None, test)`` batch iterators, resident on ``device``.

    The validation images are held out of the training images, class-balanced
    (:func:`hw2.data.train_val_indices`); the training subset comes from the
    rest.
    """
    from hw2.data import GPUBatches, class_balanced_indices, train_val_indices

    train_idx, val_idx = train_val_indices(data.train_y, cfg.train_size,
                                           cfg.val_size, seed)
    test_idx = class_balanced_indices(data.test_y, cfg.test_size, seed)
    dl_train = GPUBatches(
        data.train_x[train_idx], data.train_y[train_idx], cfg.bs_train, shuffle=True,
        augment=cfg.augment, device=device, seed=seed,
        # Equal batch shapes (no cuDNN re-tuning for a ragged last batch),
        # unless the set is smaller than one batch.
        drop_last=len(train_idx) >= cfg.bs_train,
        channels_last=cfg.channels_last,
    )

    def scored(x, y):  # evaluation only: in order, no augmentation
        return GPUBatches(x, y, cfg.bs_test or cfg.bs_train, shuffle=False,
                          augment=False, device=device,
                          channels_last=cfg.channels_last)

    dl_val = None
    if len(val_idx):
        dl_val = scored(data.train_x[val_idx], data.train_y[val_idx])
    dl_test = scored(data.test_x[test_idx], data.test_y[test_idx])
    return dl_train, dl_val, dl_test


def lr_factor(schedule: str, warmup: float, total_steps: int):
    """The lr multiplier as a function of the step, for ``LambdaLR``.

    The scheduler is stepped once per batch:

    1. Warmup: the first ``warmup·total`` steps ramp linearly up to 1.
    2. Then 'constant' stays at 1; 'linear' decays linearly to 0 at the last
       step; 'cosine' follows half a cosine down to 0.
    """
    warm = int(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_optimizer(cfg: RunConfig, model, steps_per_epoch: int):
    """``(optimizer, lr_scheduler or None)``.

    The scheduler is stepped once per batch.
    """
    import torch

    params = list(model.parameters())
    # On CUDA, one fused kernel updates every parameter (instead of several per tensor).
    fused = (bool(params) and all(p.is_cuda for p in params)) or None
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                              nesterov=cfg.momentum > 0, weight_decay=cfg.reg,
                              fused=fused)
    else:
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        opt = cls(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.reg,
                  fused=fused)
    if cfg.lr_schedule == "constant" and cfg.warmup == 0:
        return opt, None
    total = cfg.epochs * steps_per_epoch
    factor = lr_factor(cfg.lr_schedule, cfg.warmup, total)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def build_trainer(cfg: RunConfig, model, device, steps_per_epoch: int):
    """A TorchTrainer for the run: bf16 autocast (:func:`uses_bf16`); channels-last.

    Channels-last (NHWC) memory is what both cuDNN's tensor-core kernels and
    oneDNN's CPU convolutions are fastest with: on a 2-core CPU these nets
    train 1.2-2x faster than in the default NCHW layout.
    """
    import torch
    from torch import nn

    from hw2.training import TorchTrainer

    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()  # in place: state_dict keys (and so checkpoints) stay unchanged
    optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return TorchTrainer(model, loss_fn, optimizer, device, lr_scheduler=scheduler,
                        amp_dtype=torch.bfloat16 if uses_bf16(cfg, device) else None,
                        channels_last=cfg.channels_last)



# --------------------------------------------------------------------------
# Bookkeeping of one run
# --------------------------------------------------------------------------

def _epoch_images(n: int, batch_size: int, drop_last: bool,
                  max_batches: int | None) -> int:
    """Images one pass over ``n`` images sees.

    In batches of ``batch_size``, at most ``max_batches`` of them.
    """
    sizes = [batch_size] * (n // batch_size)
    if n % batch_size and not drop_last:
        sizes.append(n % batch_size)
    return sum(sizes[:max_batches] if max_batches else sizes)


def _digest(spec: dict) -> str:
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def checkpoint_prefix(cfg: RunConfig | dict) -> Path:
    """A per-run checkpoint prefix in the output folder (the file is ``<prefix>.pt``).

    The name carries a hash of the run's identity (:meth:`RunConfig.identity`,
    defaults resolved: ``pool_every=None`` and the ``P`` it resolves to are one
    run), so a changed configuration never resumes from a stale checkpoint of
    the same file name. Every executor uses it.
    """
    cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    return cfg.resolved_out_dir / f".{cfg.file_stem}.{_digest(cfg.identity())}.ckpt"


def legacy_checkpoint_prefix(cfg: RunConfig) -> Path:
    """The prefix code before 2026-12 gave the run: a hash of its unresolved fields."""
    spec = {k: v for k, v in cfg.to_dict().items() if k not in RunConfig.PLACE_FIELDS}
    return cfg.resolved_out_dir / f".{cfg.file_stem}.{_digest(spec)}.ckpt"


def adopt_legacy_checkpoint(cfg: RunConfig) -> Path | None:
    """Rename a checkpoint saved under the run's old name to its current name.

    A sweep interrupted by code that named checkpoints by the unresolved
    configuration resumes from that checkpoint, not from scratch (the
    checkpoint's own record of the run is still checked when it is read).
    Returns the adopted file, or None.
    """
    if not cfg.checkpoints or Path(cfg.checkpoints) != checkpoint_prefix(cfg).resolve():
        return None
    current = Path(f"{cfg.checkpoints}.pt")
    legacy = Path(f"{legacy_checkpoint_prefix(cfg).resolve()}.pt")
    if current.exists() or legacy == current or not legacy.is_file():
        return None
    os.replace(legacy, current)
    return current


def _remove_stale_temp_files(result: Path, ckpt_file: Path | None) -> None:
    """Delete temporary files a killed earlier attempt of this run left behind.

    An atomic write (:func:`hw2._io.atomic_write`) is a temporary file in the
    same folder, then ``os.replace``; a process killed in between leaves the
    temporary file (``.<result>.*.tmp``, ``.<checkpoint>.pt.*.tmp``). The
    finished or resumed run never reads them.
    """
    for target in (result, ckpt_file):
        if target is None or not target.parent.is_dir():
            continue
        for stale in target.parent.glob(temp_glob(target.name)):
            with contextlib.suppress(OSError):
                stale.unlink()


# --------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------

def run_config(cfg: RunConfig, *, data=None, verbose: bool | None = None,
               heartbeat=None) -> Path:
    """Train one configuration and write its result file; returns the file's path.

    1. Resolve device and seed; set the backends up.
    2. Build the model (initialised from the seed): a bad model configuration
       fails here, before any data is loaded; then check that the result (and
       checkpoint) files can be written at all (:func:`check_output_location`).
    3. Load CIFAR-10 (``hw2.data.load_cifar10``) unless ``data`` is given,
       take the class-balanced splits, put them on the device; build
       optimizer, lr schedule, trainer.
    4. ``fit`` with early stopping on the validation split (the test split
       without one); with ``cfg.checkpoints`` it resumes from the checkpoint
       if one exists and was written by this run's configuration
       (:meth:`RunConfig.identity`; another one is refused). ``heartbeat``
       is called after every epoch (a sweep's claim, see
       :mod:`hw2.experiments.claims`).
    5. Write the result JSON atomically, then remove the checkpoint.
    """
    import torch

    import hw2
    from hw2.data import load_cifar10
    from hw2.training import checkpoint_seed

    t_start = time.perf_counter()
    # 1. device, seed: a drawn seed is recorded in the checkpoint, and a resume
    #    of such a run takes it from there (the same data, the same batches)
    device = resolve_device(cfg.device)
    ckpt_file = Path(f"{cfg.checkpoints}.pt") if cfg.checkpoints else None
    seed = cfg.seed
    if seed is None and ckpt_file is not None:
        seed = checkpoint_seed(ckpt_file)
    if seed is None:
        seed = random.randrange(2**31)
    configure_backends(device)
    random.seed(seed)
    torch.manual_seed(seed)

    # 2. model (initialised from the seed; the data loaders use their own generators)
    provenance = code_provenance()
    model = build_model(cfg)
    model_info = describe_model(model)
    # a bad folder or file name, or a full disk, fails before any data or training
    check_output_location(cfg, model_info["parameters"])

    # 3. data, optimizer and trainer
    if data is None:
        data = load_cifar10()
    dl_train, dl_val, dl_test = build_batches(cfg, data, device, seed)
    n_train, n_test = len(dl_train.y), len(dl_test.y)
    n_val = len(dl_val.y) if dl_val is not None else 0
    steps_per_epoch = min(len(dl_train), cfg.batches or len(dl_train))
    # A data-dependent initialisation (YourCodeNet's whitening layer) reads the
    # first training images; models without one have no such method.
    if callable(getattr(model, "init_from_data", None)):
        model.init_from_data(dl_train.images(INIT_IMAGES))
    trainer = build_trainer(cfg, model, device, steps_per_epoch)

    # 4. train
    adopt_legacy_checkpoint(cfg)
    resumed = bool(ckpt_file and ckpt_file.exists())
    if ckpt_file:
        ckpt_file.parent.mkdir(parents=True, exist_ok=True)
    out = result_path(cfg)
    _remove_stale_temp_files(out, ckpt_file)
    t_setup = time.perf_counter() - t_start
    with flush_denormals(device):
        fit_res = trainer.fit(dl_train, dl_test, cfg.epochs,
                              checkpoints=cfg.checkpoints,
                              early_stopping=cfg.early_stopping or None,
                              max_batches=cfg.batches, verbose=verbose,
                              dl_val=dl_val,
                              run_identity={**cfg.identity(), "seed": seed},
                              on_epoch=heartbeat)

    # Training throughput: the Trainer times each epoch's training pass (also
    # those before a resume, which the checkpoint remembers). Images per epoch:
    # ``batches`` (and drop_last for training) can make these fewer than the
    # split sizes.
    images_per_epoch = _epoch_images(n_train, dl_train.batch_size, dl_train.drop_last,
                                     cfg.batches)
    test_images_per_epoch = _epoch_images(n_test, dl_test.batch_size, dl_test.drop_last,
                                          cfg.batches)
    train_seconds = [float(s) for s in trainer.train_seconds]
    rates = sorted(images_per_epoch / s for s in train_seconds if s > 0)
    epoch_seconds = [float(s) for s in trainer.epoch_seconds]

    # 5. record
    record = {
        "format": RESULT_FORMAT,
        "config": {**cfg.to_dict(), "seed": seed,
                   "out_dir": shown_path(cfg.resolved_out_dir),
                   "checkpoints": shown_path(cfg.checkpoints),
                   "pool_every": cfg.resolved_pool_every,
                   "bs_test": cfg.bs_test or cfg.bs_train, "channels": cfg.channels},
        "results": fit_res.to_dict(),
        # Selected on the validation split (the test loss without one): the
        # epoch whose model a run would keep.
        "best_epoch": fit_res.best_epoch,
        # A loss that is NaN or infinite (written as null) means the run diverged.
        "diverged": fit_res.diverged,
        "timing": {
            # Whole-run wall time: this process's setup plus every epoch
            # (also those run before a resume, which the checkpoint remembers).
            "total_s": t_setup + sum(epoch_seconds),
            "setup_s": t_setup,
            "fit_s": sum(epoch_seconds),
            "epoch_s": epoch_seconds,
            "train_s": train_seconds,
            "train_images_per_epoch": images_per_epoch,
            "train_images_per_s": rates[len(rates) // 2] if rates else None,  # median
        },
        "resumed_from_checkpoint": resumed,
        "model": model_info,
        # Split sizes (after the subsets), and the images actually trained on
        # / evaluated in each epoch.
        "data": {"source": getattr(data, "source_name", "CIFAR-10"),
                 "train_images": n_train, "val_images": n_val, "test_images": n_test,
                 "train_images_per_epoch": images_per_epoch,
                 "test_images_per_epoch": test_images_per_epoch},
        "device": {"type": device.type, "name": device_name(device),
                   "amp": "bfloat16" if uses_bf16(cfg, device) else "float32",
                   "native_bf16": native_bf16(device),
                   "channels_last": cfg.channels_last,
                   "threads": torch.get_num_threads()},
        "versions": {"hw2": hw2.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "provenance": provenance,
        "host": platform.node(),
        "timestamp": (datetime.datetime.now(datetime.timezone.utc)
                      .isoformat(timespec="seconds")),
    }
    write_result(out, record)
    if ckpt_file and ckpt_file.exists():
        ckpt_file.unlink()
    return out


# The original assignment's positional order of run_experiment's arguments.
_POSITIONAL = ("out_dir", "seed", "device", "bs_train", "bs_test", "batches", "epochs",
               "early_stopping", "checkpoints", "lr", "reg", "filters_per_layer",
               "layers_per_block", "pool_every", "hidden_dims", "model_type")


def run_experiment(run_name: str, *args, verbose: bool | None = None,
                   **overrides) -> Path:
    """Run one configuration of a Part 3 experiment (the original assignment's API).

    Args:
        run_name: prefix of the result file's name.
        *args: the assignment's positional arguments, in its order
            (``out_dir, seed, device, bs_train, ...``).
        verbose: progress bars and epoch lines; None shows them on a terminal.
        **overrides: any :class:`RunConfig` field (its defaults apply to the
            rest, and it validates them). Other keywords go to the model's
            constructor (e.g. ``batchnorm=True`` for ``'resnet'``); one the
            model does not take is a ``ValueError``.

    Returns:
        The path of the result file,
        ``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json``. An existing result
        file is overwritten; with ``checkpoints`` an interrupted run resumes.
    """
    if len(args) > len(_POSITIONAL):
        raise TypeError(f"run_experiment takes at most {len(_POSITIONAL) + 1} "
                        f"positional arguments ({len(args) + 1} given)")
    for name, value in zip(_POSITIONAL, args):
        if name in overrides:
            raise TypeError(f"run_experiment got multiple values for argument {name!r}")
        overrides[name] = value
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    spec = {k: v for k, v in overrides.items() if k in fields}
    model_kw = {**(spec.pop("model_kw", None) or {}),
                **{k: v for k, v in overrides.items() if k not in fields}}
    # the assignment's default: whatever is there
    if spec.get("device", "auto") is None:
        spec["device"] = "auto"
    for key in ("out_dir", "checkpoints"):
        if spec.get(key) is not None:
            spec[key] = os.fspath(spec[key])
    cfg = RunConfig(run_name=run_name, model_kw=model_kw, **spec)
    return run_config(cfg, verbose=verbose)
