"""The architecture-experiment runner: one configuration in, one JSON result file out.

A *run* is described entirely by a :class:`RunConfig` (plain data, JSON-able);
:func:`run_experiment` trains it and writes
``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json`` atomically. A *sweep* is a
named list of runs from :data:`EXPERIMENTS` (the book's grid, SPEC §3.7);
every run of a sweep is an independent job (:func:`sweep_jobs` makes the job
specs, :func:`run_job` runs one), so any executor can dispatch them: this
module's own sequential / one-process-per-GPU loop (:func:`run_sweep`), or a
cluster scheduler (``hw2.cluster``).

The training path is the one the fast CIFAR-10 scripts use
{cite}`jordan2024airbench`: the whole dataset lives on the device as uint8
(:class:`hw2.data.GPUBatches`), batches are index slices, flip/crop
augmentation runs on whole batches there, and on CUDA the forward/backward
pass runs in bfloat16 autocast with channels-last memory. The trainer does
not synchronise with the host inside an epoch. On a CPU the same code runs
in float32, which is what the book's smoke runs and the tests use.

Command line (``python -m hw2.experiments --help``)::

    python -m hw2.experiments run-exp -n NAME -K 32 64 -L 2 -P 2 -H 100 -M resnet
    python -m hw2.experiments sweep exp1_1 exp1_2 [--epochs 1 --batches 2 ...] [--dry-run]
    python -m hw2.experiments list

Torch and the rest of the package are imported inside the functions that use
them, so that importing this module (or asking the CLI for ``--help``) is cheap.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw2._io import atomic_write, repo_root, temp_glob

__all__ = [
    "RunConfig",
    "Experiment",
    "EXPERIMENTS",
    "MODEL_TYPES",
    "results_dir",
    "result_filename",
    "result_path",
    "auto_pool_every",
    "run_experiment",
    "load_experiment",
    "ExperimentFileError",
    "sweep_jobs",
    "run_job",
    "run_sweep",
    "load_grid_file",
    "experiment_status",
    "main",
]

# Model classes by their CLI name (``-M``); the classes live in hw2.cnn.
MODEL_TYPES = {"cnn": "ConvClassifier", "resnet": "ResNetClassifier", "ycn": "YourCodeNet"}
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "linear", "cosine")

IN_SIZE = (3, 32, 32)  # CIFAR-10 images, (C, H, W)
NUM_CLASSES = 10
RESULT_FORMAT = "hw2-experiment/1"


def results_dir() -> Path:
    """Where result files live: ``$HW2_RESULTS_DIR``, else ``<repo root>/results``.

    The repository root is the folder that holds the ``hw2`` package, so the
    answer does not depend on the current directory (chapters run in theirs).
    """
    env = os.environ.get("HW2_RESULTS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return repo_root() / "results"


_default_results_dir = results_dir  # for functions whose parameter of that name shadows it


# --------------------------------------------------------------------------
# One run's configuration
# --------------------------------------------------------------------------

@dataclass
class RunConfig:
    """Everything that defines one run. Plain data: ``to_dict()`` is the job spec.

    The first block mirrors the original assignment's ``run_experiment``
    arguments (same names, same CLI flags); the rest are the book's additions.
    """
    # --- what and where
    run_name: str                         # prefix of the result file name
    out_dir: str | None = None            # None -> results_dir()
    seed: int | None = 42                 # None -> drawn at random (and recorded)
    # --- training loop (original flags)
    bs_train: int = 128                   # images per optimisation step
    bs_test: int | None = None            # images per evaluation batch; None -> bs_train
    batches: int | None = None            # max batches per epoch (train and test); None -> all
    epochs: int = 20                      # max epochs
    early_stopping: int | None = 3        # stop after this many epochs without a new lowest test loss
    checkpoints: str | None = None        # checkpoint path prefix (file <prefix>.pt); None -> none
    lr: float = 1e-3                      # peak learning rate
    reg: float = 1e-3                     # L2 strength, passed to the optimizer as weight_decay
    # --- model (original flags)
    filters_per_layer: list[int] = field(default_factory=lambda: [64])  # K: width of each group
    layers_per_block: int = 2             # L: convs per width, channels = each K repeated L times
    pool_every: int | None = None         # P: convs between poolings; None -> auto_pool_every()
    hidden_dims: list[int] = field(default_factory=lambda: [1024])      # widths of the hidden FC layers
    model_type: str = "cnn"               # 'cnn', 'resnet' or 'ycn' (see MODEL_TYPES)
    model_kw: dict[str, Any] = field(default_factory=dict)  # extra model constructor keywords
    # --- optimisation (book)
    optimizer: str = "adam"               # 'sgd' (Nesterov momentum), 'adam' or 'adamw'
    momentum: float = 0.9                 # SGD momentum, or Adam's beta1
    lr_schedule: str = "constant"         # per batch: 'constant', 'linear' or 'cosine' (after warmup)
    warmup: float = 0.0                   # fraction of all steps spent ramping the lr up from 0
    label_smoothing: float = 0.0          # of the cross-entropy targets
    # --- data (book)
    augment: bool = False                 # random flip + 4-pixel crop, on whole batches on the device
    train_size: int | None = None         # class-balanced training subset; None -> all 50,000
    test_size: int | None = None          # class-balanced test subset; None -> all 10,000
    # --- hardware (book)
    device: str = "auto"                  # 'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1', ...
    amp: bool = True                      # bfloat16 autocast; applies on CUDA only
    channels_last: bool = True            # NHWC memory format; applies on CUDA only
    compile: bool = False                 # torch.compile the model (slow first epoch)

    def __post_init__(self):
        # Accept tuples (and other sequences) where lists are expected: the
        # config must round-trip through JSON unchanged.
        for name in ("filters_per_layer", "hidden_dims"):
            value = getattr(self, name)
            if isinstance(value, (tuple, range)):
                setattr(self, name, list(value))
        if self.model_kw is None:
            self.model_kw = {}
        self.validate()

    # -- checks --------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        def bad(name, why):
            raise ValueError(f"{name}={getattr(self, name)!r}: {why}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.run_name, str) or not self.run_name.strip():
            bad("run_name", "must be a non-empty name")
        if any(c in self.run_name for c in "/\\") or self.run_name in (".", ".."):
            bad("run_name", "must be a file name prefix, not a path (use out_dir for the folder)")
        if self.out_dir is not None and not isinstance(self.out_dir, (str, os.PathLike)):
            bad("out_dir", "must be a folder path or None")
        if self.seed is not None and not is_int(self.seed):
            bad("seed", "must be an integer or None")
        for name in ("bs_train", "epochs", "layers_per_block"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "must be a positive integer")
        for name in ("bs_test", "batches", "pool_every", "train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 1):
                bad(name, "must be a positive integer or None")
        if self.early_stopping is not None and (not is_int(self.early_stopping) or self.early_stopping < 0):
            bad("early_stopping", "must be a non-negative integer (0 or None: no early stopping)")
        if self.checkpoints is not None and not isinstance(self.checkpoints, (str, os.PathLike)):
            bad("checkpoints", "must be a path prefix or None")
        if not is_num(self.lr) or self.lr <= 0:
            bad("lr", "must be a positive number")
        if not is_num(self.reg) or self.reg < 0:
            bad("reg", "must be a non-negative number")
        for name in ("filters_per_layer", "hidden_dims"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(is_int(v) and v > 0 for v in value):
                bad(name, "must be a list of positive integers")
        if not self.filters_per_layer:
            bad("filters_per_layer", "must name at least one width K")
        if self.model_type not in MODEL_TYPES:
            bad("model_type", f"unknown model type; choose one of {', '.join(MODEL_TYPES)}")
        if not isinstance(self.model_kw, dict) or not all(isinstance(k, str) for k in self.model_kw):
            bad("model_kw", "must be a dict of keyword arguments")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"unknown optimizer; choose one of {', '.join(OPTIMIZERS)}")
        if not is_num(self.momentum) or not 0 <= self.momentum < 1:
            bad("momentum", "must be in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            bad("lr_schedule", f"unknown schedule; choose one of {', '.join(LR_SCHEDULES)}")
        if not is_num(self.warmup) or not 0 <= self.warmup < 1:
            bad("warmup", "must be a fraction of the steps in [0, 1)")
        if not is_num(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "must be in [0, 1)")
        for name in ("augment", "amp", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be true or false")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        ):
            bad("device", "must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'")
        try:
            json.dumps(self.to_dict())
        except (TypeError, ValueError) as e:
            raise ValueError(f"configuration is not plain JSON data: {e}") from None

    # -- derived values ------------------------------------------------------
    @property
    def channels(self) -> list[int]:
        """Output channels of every conv: each K repeated L times."""
        return [k for k in self.filters_per_layer for _ in range(self.layers_per_block)]

    @property
    def resolved_pool_every(self) -> int:
        if self.pool_every is not None:
            return self.pool_every
        return auto_pool_every(self.model_type, self.filters_per_layer, self.layers_per_block)

    @property
    def resolved_out_dir(self) -> Path:
        return Path(self.out_dir).expanduser() if self.out_dir is not None else results_dir()

    @property
    def file_stem(self) -> str:
        """``<run_name>_L<L>_K<k1>-<k2>...``: the original assignment's naming."""
        ks = "-".join(map(str, self.filters_per_layer))
        return f"{self.run_name}_L{self.layers_per_block}_K{ks}"

    # -- plain data ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("out_dir", "checkpoints"):
            if d[key] is not None:
                d[key] = os.fspath(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from plain data; unknown keys are an error (named)."""
        if not isinstance(d, dict):
            raise ValueError(f"a run configuration must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown run configuration key(s): {', '.join(unknown)}")
        if "run_name" not in d:
            raise ValueError("a run configuration needs a run_name")
        return cls(**d)

    def replace(self, **changes) -> RunConfig:
        """A copy with some fields changed (validated; unknown names rejected)."""
        return RunConfig.from_dict({**self.to_dict(), **changes})


def result_filename(cfg: RunConfig) -> str:
    return cfg.file_stem + ".json"


def result_path(cfg: RunConfig | dict) -> Path:
    """``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json`` for a config or a job spec."""
    cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    return cfg.resolved_out_dir / result_filename(cfg)


# --------------------------------------------------------------------------
# Choosing pool_every so that no feature map vanishes
# --------------------------------------------------------------------------

def max_poolings(size: int = IN_SIZE[1]) -> int:
    """How many default poolings (2×2, stride 2) a ``size``×``size`` map survives.

    Uses the model's own output-size formula (``hw2.cnn.conv_output_size``):
    32 → 16 → 8 → 4 → 2 → 1 is 5 poolings; a sixth would leave 0×0.
    """
    from hw2.cnn import DEFAULT_POOLING_PARAMS, conv_output_size

    k = DEFAULT_POOLING_PARAMS["kernel_size"]
    count = 0
    while (size := conv_output_size(size, k, stride=k)) >= 1:
        count += 1
    return count


def auto_pool_every(model_type: str, filters_per_layer: list[int], layers_per_block: int) -> int:
    """The book's rule for ``P`` (the grid's ``pool_every``).

    - ConvClassifier / ResNetClassifier, ``N = len(K)·L`` convs: the smallest
      ``P`` that divides ``N`` with ``N/P`` poolings ≤ :func:`max_poolings`
      (5 for 32×32). Dividing ``N`` keeps every residual block the same depth;
      the smallest such ``P`` pools as early as allowed, which makes the
      deep-but-narrow runs cheap (most convs run on small maps).
    - YourCodeNet: ``P = L``, one stage per width K (its design, see
      ``hw2.cnn.YourCodeNet``), so ``len(K)`` poolings.
    """
    n_convs = len(filters_per_layer) * layers_per_block
    limit = max_poolings()
    if model_type == "ycn":
        if len(filters_per_layer) > limit:
            raise ValueError(f"YourCodeNet pools once per width; {len(filters_per_layer)} widths > {limit} poolings")
        return layers_per_block
    for p in range(1, n_convs + 1):
        if n_convs % p == 0 and n_convs // p <= limit:
            return p
    raise AssertionError("unreachable: P = N always qualifies")


# --------------------------------------------------------------------------
# The experiment grid (SPEC §3.7), with the book's hyperparameters
# --------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Experiment:
    """A named sweep: a grid of (K, L) for one model type, on shared hyperparameters.

    ``grid`` lists ``(K, Ls)`` pairs: ``((32,), (2, 4))`` means the runs
    ``K=[32], L=2`` and ``K=[32], L=4``. ``hparams`` are :class:`RunConfig`
    fields shared by every run; ``why`` justifies them (the chapter prints it).
    """
    name: str
    title: str
    model_type: str
    grid: tuple
    hparams: dict = field(default_factory=dict)
    why: str = ""

    def runs(self, overrides: dict | None = None) -> list[RunConfig]:
        """One RunConfig per grid point; ``overrides`` replace any field (smoke runs)."""
        overrides = dict(overrides or {})
        runs = []
        for ks, ls in self.grid:
            for layers in ls:
                spec = dict(self.hparams)
                spec.update(run_name=self.name, model_type=self.model_type,
                            filters_per_layer=list(ks), layers_per_block=layers)
                spec.setdefault("pool_every", auto_pool_every(self.model_type, list(ks), layers))
                spec.update(overrides)
                runs.append(RunConfig.from_dict(spec))
        return runs

    @classmethod
    def from_dict(cls, name: str, d: dict) -> Experiment:
        try:
            grid = tuple((tuple(ks), tuple(ls)) for ks, ls in d["grid"])
            return cls(name=name, title=d.get("title", name), model_type=d["model_type"], grid=grid,
                       hparams=dict(d.get("hparams", {})), why=d.get("why", ""))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"experiment {name!r}: needs model_type and grid [[K-list, L-list], ...] ({e})") from None


# Shared by every experiment of Part 3, so that runs differ in architecture,
# not in recipe. Chosen for one H100: the whole 34-run grid should train in
# about 8 minutes, so every run gets the same short, fixed budget.
COMMON_HPARAMS = dict(
    bs_train=512,          # images per step: big enough to keep the GPU busy (97 steps/epoch)
    bs_test=1000,          # evaluation only; no gradients
    epochs=15,             # epochs (≤ 20): the budget that fits the grid in ~8 GPU-minutes
    early_stopping=5,      # epochs without a new lowest test loss before giving up
    optimizer="adam",      # Adam needs no per-depth lr tuning; plain deep CNNs have no BN to help SGD
    lr=2e-3,               # peak lr; Adam's usual 1e-3 scaled up for the larger batch, with warmup
    momentum=0.9,          # Adam's beta1 (its default)
    reg=5e-4,              # L2 weight decay
    lr_schedule="linear",  # per step: warm up, then decay linearly to 0 by the last epoch
    warmup=0.2,            # first 20% of the steps ramp the lr up from 0: deep nets start stable
    augment=True,          # flip + 4-px crop: without it every net overfits after a few epochs and
                           # the depth/width effects drown in the overfitting
    hidden_dims=[512],     # one hidden FC layer for every net
)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment(
        name="exp1_1", title="Experiment 1.1: depth (L) of a plain CNN", model_type="cnn",
        grid=(((32,), (2, 4, 8, 16)), ((64,), (2, 4, 8, 16))),
        hparams=dict(COMMON_HPARAMS),
        why="The shared recipe: Adam with a warmup-then-linear-decay schedule and flip/crop "
            "augmentation, the same for every depth, so only L changes between runs.",
    ),
    Experiment(
        name="exp1_2", title="Experiment 1.2: width (K) of a plain CNN", model_type="cnn",
        grid=(((32,), (2, 4, 8)), ((64,), (2, 4, 8)), ((128,), (2, 4, 8)), ((256,), (2, 4, 8))),
        hparams=dict(COMMON_HPARAMS),
        why="The shared recipe, as in 1.1, so widths are compared at an equal training budget.",
    ),
    Experiment(
        name="exp1_3", title="Experiment 1.3: growing widths K=[64, 128, 256]", model_type="cnn",
        grid=(((64, 128, 256), (1, 2, 3, 4)),),
        hparams=dict(COMMON_HPARAMS),
        why="The shared recipe, as in 1.1; L counts convs per width, so L=4 is 12 convs.",
    ),
    Experiment(
        name="exp1_4", title="Experiment 1.4: residual networks", model_type="resnet",
        grid=(((32,), (8, 16, 32)), ((64, 128, 256), (2, 4, 8))),
        # No batchnorm: with the plain nets of 1.1 and 1.3 the only difference
        # is the skip connection, which is what this experiment isolates.
        hparams=dict(COMMON_HPARAMS, model_kw=dict(batchnorm=False)),
        why="The shared recipe and no batchnorm, so that against experiments 1.1 and 1.3 the "
            "skip connections are the only change.",
    ),
    Experiment(
        name="exp2", title="Experiment 2: YourCodeNet", model_type="ycn",
        grid=(((32, 64, 128), (3, 6, 9, 12)),),
        # YourCodeNet has BatchNorm everywhere and a global-average-pool head,
        # so it tolerates a larger lr; its head needs no wide hidden layer.
        hparams=dict(COMMON_HPARAMS, lr=4e-3, hidden_dims=[], label_smoothing=0.1),
        why="The shared recipe with a higher peak lr (BatchNorm in every unit keeps it stable), "
            "no hidden FC layer (global average pooling gives a compact feature vector) and "
            "label smoothing 0.1 (softer targets help short training runs).",
    ),
]}


def load_grid_file(path: str | os.PathLike) -> dict[str, Experiment]:
    """Experiments from a JSON file ``{name: {model_type, grid, hparams?, title?, why?}}``.

    For small custom sweeps (and the tests); same form as :data:`EXPERIMENTS`.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read grid file {path}: {e}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"grid file {path}: expected a JSON object of experiments")
    return {name: Experiment.from_dict(name, d) for name, d in data.items()}


# --------------------------------------------------------------------------
# Building blocks of a run (also used by benchmarks/runner_throughput.py)
# --------------------------------------------------------------------------

def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available on this machine")
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


def build_model(cfg: RunConfig):
    """The model of a config, on the CPU. Bad model configurations raise ValueError."""
    import hw2.cnn as cnn

    model_cls = getattr(cnn, MODEL_TYPES[cfg.model_type])
    try:
        return model_cls(IN_SIZE, NUM_CLASSES, cfg.channels, cfg.resolved_pool_every,
                         cfg.hidden_dims, **cfg.model_kw)
    except (TypeError, ValueError) as e:  # e.g. an unknown model keyword
        raise ValueError(f"cannot build {model_cls.__name__}: {e}") from None


def build_batches(cfg: RunConfig, data, device, seed: int):
    """Train and test batch iterators over the (subset of the) data, resident on ``device``."""
    from hw2.data import GPUBatches, class_balanced_indices

    on_cuda = device.type == "cuda"
    train_idx = class_balanced_indices(data.train_y, cfg.train_size, seed)
    test_idx = class_balanced_indices(data.test_y, cfg.test_size, seed)
    n_train = len(train_idx)
    dl_train = GPUBatches(
        data.train_x[train_idx], data.train_y[train_idx], cfg.bs_train, shuffle=True,
        augment=cfg.augment, device=device, seed=seed,
        # Equal batch shapes (no cuDNN re-tuning for a ragged last batch),
        # unless the set is smaller than one batch.
        drop_last=n_train >= cfg.bs_train,
        channels_last=cfg.channels_last and on_cuda,
    )
    dl_test = GPUBatches(
        data.test_x[test_idx], data.test_y[test_idx], cfg.bs_test or cfg.bs_train, shuffle=False,
        augment=False, device=device, channels_last=cfg.channels_last and on_cuda,
    )
    return dl_train, dl_test


def lr_factor(schedule: str, warmup: float, total_steps: int):
    """The lr multiplier as a function of the step (for ``LambdaLR``), stepped once per batch.

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
    """``(optimizer, lr_scheduler or None)``; the scheduler is stepped once per batch."""
    import torch

    params = list(model.parameters())
    # On CUDA, one fused kernel updates every parameter (instead of several per tensor).
    fused = (bool(params) and all(p.is_cuda for p in params)) or None
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                              weight_decay=cfg.reg, fused=fused)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.reg,
                               fused=fused)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.reg,
                                fused=fused)
    if cfg.lr_schedule == "constant" and cfg.warmup == 0:
        return opt, None
    total = cfg.epochs * steps_per_epoch
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg.lr_schedule, cfg.warmup, total))


def build_trainer(cfg: RunConfig, model, device, steps_per_epoch: int):
    """A TorchTrainer for the run: bf16 autocast and channels-last on CUDA only."""
    import torch
    from torch import nn

    from hw2.training import TorchTrainer

    on_cuda = device.type == "cuda"
    model = model.to(device)
    if cfg.channels_last and on_cuda:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()  # in place: state_dict keys (and so checkpoints) stay unchanged
    optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return TorchTrainer(model, loss_fn, optimizer, device, lr_scheduler=scheduler,
                        amp_dtype=torch.bfloat16 if (cfg.amp and on_cuda) else None,
                        channels_last=cfg.channels_last and on_cuda)


def configure_backends(device) -> None:
    """Process-wide speed settings for CUDA: cuDNN autotuning, TF32 matmuls."""
    import torch

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class _TimedBatches:
    """Pass-through batch iterable that records when each pass over it starts.

    The trainer turns an epoch's results into floats when its training pass
    ends (one host sync), so "test pass starts − train pass starts" is the
    training time of that epoch. Delegates ``len`` and the loader state that
    checkpoints hold.
    """

    def __init__(self, batches):
        self.batches = batches
        self.starts: list[float] = []

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.starts.append(time.perf_counter())
        return iter(self.batches)

    def state_dict(self):
        return self.batches.state_dict()

    def load_state_dict(self, state):
        self.batches.load_state_dict(state)


def _epoch_images(n: int, batch_size: int, drop_last: bool, max_batches: int | None) -> int:
    """Images one pass over ``n`` images sees: batches of ``batch_size``, at most ``max_batches``."""
    sizes = [batch_size] * (n // batch_size)
    if n % batch_size and not drop_last:
        sizes.append(n % batch_size)
    return sum(sizes[:max_batches] if max_batches else sizes)


def _checkpoint_prefix(cfg: RunConfig | dict) -> Path:
    """A per-config checkpoint prefix in the output folder, for a config or a job spec.

    The name carries a hash of the configuration, so a changed configuration
    never resumes from a stale checkpoint of the same file name. Every
    executor (this module's, ``hw2.cluster``'s) uses it.
    """
    cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    spec = {k: v for k, v in cfg.to_dict().items() if k not in ("checkpoints", "out_dir", "device", "compile")}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return cfg.resolved_out_dir / f".{cfg.file_stem}.{digest}.ckpt"


def _remove_stale_temp_files(result: Path, ckpt_file: Path | None) -> None:
    """Delete temporary files a killed earlier attempt of this run left behind.

    An atomic write (:func:`hw2._io.atomic_write`) is a temporary file in the
    same folder, then ``os.replace``; a process killed in between leaves the
    temporary file (``.<result>.*.tmp``, ``.<checkpoint>.pt.*.tmp`` -- a hidden
    checkpoint ``.<name>.pt`` gets ``.<name>.pt.*.tmp``). The finished or
    resumed run never reads them.
    """
    for target in (result, ckpt_file):
        if target is None or not target.parent.is_dir():
            continue
        for stale in target.parent.glob(temp_glob(target.name)):
            with contextlib.suppress(OSError):
                stale.unlink()


def _write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON, written atomically (:func:`hw2._io.atomic_write`)."""
    def write(f):
        json.dump(obj, f, indent=1)
        f.write("\n")
    atomic_write(path, write, text=True)  # 0644: results are meant to be shared


# --------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------

def run_config(cfg: RunConfig, *, data=None, verbose: bool | None = None) -> Path:
    """Train one configuration and write its result file; returns the file's path.

    1. Resolve device and seed; set the backends up.
    2. Build the model (initialised from the seed): a bad model configuration
       fails here, before any data is loaded.
    3. Load CIFAR-10 (``hw2.data.load_cifar10``) unless ``data`` is given,
       take the class-balanced subsets, put them on the device; build
       optimizer, lr schedule, trainer.
    4. ``fit`` with early stopping; with ``cfg.checkpoints`` it resumes from
       the checkpoint if one exists.
    5. Write the result JSON atomically, then remove the checkpoint.
    """
    import torch

    import hw2
    from hw2.data import load_cifar10

    t_start = time.perf_counter()
    # 1. device, seed
    device = resolve_device(cfg.device)
    seed = cfg.seed if cfg.seed is not None else random.randrange(2**31)
    configure_backends(device)
    random.seed(seed)
    torch.manual_seed(seed)

    # 2. model (initialised from the seed; the data loaders use their own generators)
    model = build_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())

    # 3. data, optimizer and trainer
    if data is None:
        data = load_cifar10()
    dl_train, dl_test = build_batches(cfg, data, device, seed)
    n_train, n_test = len(dl_train.y), len(dl_test.y)
    steps_per_epoch = min(len(dl_train), cfg.batches or len(dl_train))
    trainer = build_trainer(cfg, model, device, steps_per_epoch)

    # 4. train
    ckpt_prefix = cfg.checkpoints
    ckpt_file = Path(f"{ckpt_prefix}.pt") if ckpt_prefix else None
    resumed = bool(ckpt_file and ckpt_file.exists())
    if ckpt_file:
        ckpt_file.parent.mkdir(parents=True, exist_ok=True)
    out = result_path(cfg)
    _remove_stale_temp_files(out, ckpt_file)
    timed_train, timed_test = _TimedBatches(dl_train), _TimedBatches(dl_test)
    t_setup = time.perf_counter() - t_start
    fit_res = trainer.fit(timed_train, timed_test, cfg.epochs,
                          checkpoints=os.fspath(ckpt_prefix) if ckpt_prefix else None,
                          early_stopping=cfg.early_stopping or None,
                          max_batches=cfg.batches, verbose=verbose)

    # Training throughput of the epochs run in this process.
    # Images per epoch: ``batches`` (and drop_last for training) can make these
    # fewer than the split sizes.
    images_per_epoch = _epoch_images(n_train, dl_train.batch_size, dl_train.drop_last, cfg.batches)
    test_images_per_epoch = _epoch_images(n_test, dl_test.batch_size, dl_test.drop_last, cfg.batches)
    train_seconds = [t1 - t0 for t0, t1 in zip(timed_train.starts, timed_test.starts)]
    rates = sorted(images_per_epoch / s for s in train_seconds if s > 0)
    epoch_seconds = [float(s) for s in getattr(trainer, "epoch_seconds", [])]

    # 5. record
    record = {
        "format": RESULT_FORMAT,
        "config": {**cfg.to_dict(), "seed": seed, "out_dir": os.fspath(cfg.resolved_out_dir),
                   "pool_every": cfg.resolved_pool_every, "bs_test": cfg.bs_test or cfg.bs_train,
                   "channels": cfg.channels},
        "results": fit_res.to_dict(),
        "timing": {
            "total_s": None,  # filled just below
            "setup_s": t_setup,
            "fit_s": sum(epoch_seconds),
            "epoch_s": epoch_seconds,
            "train_s": train_seconds,
            "train_images_per_epoch": images_per_epoch,
            "train_images_per_s": rates[len(rates) // 2] if rates else None,  # median epoch
        },
        "resumed_from_checkpoint": resumed,
        "model": {"class": type(model).__name__, "parameters": n_params},
        # Split sizes (after train_size/test_size), and the images actually
        # trained on / evaluated in each epoch.
        "data": {"source": getattr(data, "source_name", "CIFAR-10"),
                 "train_images": n_train, "test_images": n_test,
                 "train_images_per_epoch": images_per_epoch,
                 "test_images_per_epoch": test_images_per_epoch},
        "device": {"type": device.type, "name": device_name(device),
                   "amp": "bfloat16" if (cfg.amp and device.type == "cuda") else "float32",
                   "channels_last": cfg.channels_last and device.type == "cuda"},
        "versions": {"hw2": hw2.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "host": platform.node(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    # Whole-run wall time: this process's setup plus every epoch (also those
    # run before a resume, which the checkpoint remembers).
    record["timing"]["total_s"] = t_setup + record["timing"]["fit_s"]
    _write_json(out, record)
    if ckpt_file and ckpt_file.exists():
        ckpt_file.unlink()
    return out


def run_experiment(run_name: str, out_dir: str | os.PathLike | None = None, seed: int | None = 42,
                   device: str | None = "auto", bs_train: int = 128, bs_test: int | None = None,
                   batches: int | None = None, epochs: int = 20, early_stopping: int | None = 3,
                   checkpoints: str | None = None, lr: float = 1e-3, reg: float = 1e-3,
                   filters_per_layer=(64,), layers_per_block: int = 2, pool_every: int | None = None,
                   hidden_dims=(1024,), model_type: str = "cnn", *, optimizer: str = "adam",
                   momentum: float = 0.9, lr_schedule: str = "constant", warmup: float = 0.0,
                   label_smoothing: float = 0.0, augment: bool = False, train_size: int | None = None,
                   test_size: int | None = None, amp: bool = True, channels_last: bool = True,
                   compile: bool = False, verbose: bool | None = None, **model_kw) -> Path:
    """Run one configuration of a Part 3 experiment (the original assignment's API).

    Trains ``model_type`` with ``channels`` = each of ``filters_per_layer``
    repeated ``layers_per_block`` times and writes
    ``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json`` (see :class:`RunConfig`
    for every argument). Extra keyword arguments go to the model's
    constructor (e.g. ``batchnorm=True`` for ``'resnet'``); unknown ones are a
    ``ValueError``. Returns the result file's path. An existing result file
    is overwritten; with ``checkpoints`` an interrupted run resumes.
    """
    cfg = RunConfig(
        run_name=run_name, out_dir=os.fspath(out_dir) if out_dir is not None else None, seed=seed,
        bs_train=bs_train, bs_test=bs_test, batches=batches, epochs=epochs,
        early_stopping=early_stopping, checkpoints=os.fspath(checkpoints) if checkpoints else None,
        lr=lr, reg=reg, filters_per_layer=list(filters_per_layer), layers_per_block=layers_per_block,
        pool_every=pool_every, hidden_dims=list(hidden_dims), model_type=model_type,
        model_kw=model_kw, optimizer=optimizer, momentum=momentum, lr_schedule=lr_schedule,
        warmup=warmup, label_smoothing=label_smoothing, augment=augment, train_size=train_size,
        test_size=test_size, device=device or "auto", amp=amp, channels_last=channels_last,
        compile=compile,
    )
    return run_config(cfg, verbose=verbose)


# --------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------

class ExperimentFileError(ValueError):
    """A result file that cannot be read, named in the message."""


def load_experiment(path: str | os.PathLike):
    """``(config, FitResult)`` from a result file; ``config`` is a plain dict.

    Also reads the original assignment's files (``{"config", "results"}``).
    A missing, truncated or malformed file raises :class:`ExperimentFileError`
    naming it.
    """
    record, fit_res = _read_record(path)
    return record["config"], fit_res


def load_record(path: str | os.PathLike) -> dict:
    """The whole JSON record of a result file (timing, device, versions, ...).

    Validated like :func:`load_experiment`: errors name the file.
    """
    return _read_record(path)[0]


def _read_record(path: str | os.PathLike):
    """``(record, FitResult)`` of a result file, or :class:`ExperimentFileError` naming it."""
    from hw2.training import FitResult

    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except OSError as e:
        raise ExperimentFileError(f"cannot read result file {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExperimentFileError(f"result file {path} is corrupt or incomplete (not valid JSON: {e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
            or not isinstance(record.get("results"), dict):
        raise ExperimentFileError(f"result file {path} is incomplete: it needs 'config' and 'results' objects")
    try:
        fit_res = FitResult.from_dict(record["results"])
    except (TypeError, ValueError, KeyError) as e:
        raise ExperimentFileError(f"result file {path} has malformed 'results': {e}") from None
    return record, fit_res


def experiment_status(name: str, results_dir: str | os.PathLike | None = None, *,
                      grid: dict[str, Experiment] | str | os.PathLike | None = None):
    """``[(RunConfig, result path or None), ...]`` for every run of an experiment.

    ``None`` marks a run whose result file is missing from ``results_dir``
    (default :func:`results_dir`). The chapters use it to say what is missing.
    """
    experiments = _experiments(grid)
    if name not in experiments:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(experiments)}")
    folder = Path(results_dir) if results_dir is not None else _default_results_dir()
    status = []
    for cfg in experiments[name].runs({"out_dir": os.fspath(folder)}):
        path = result_path(cfg)
        status.append((cfg, path if path.exists() else None))
    return status


# --------------------------------------------------------------------------
# Sweeps: independent jobs
# --------------------------------------------------------------------------

def _experiments(grid: dict[str, Experiment] | str | os.PathLike | None) -> dict[str, Experiment]:
    if grid is None:
        return EXPERIMENTS
    if isinstance(grid, dict):
        return grid
    return load_grid_file(grid)


def sweep_jobs(names, overrides: dict | None = None, *,
               grid: dict[str, Experiment] | str | os.PathLike | None = None) -> list[dict]:
    """The job specs (plain JSON-able dicts, :meth:`RunConfig.to_dict`) of named experiments.

    ``overrides`` replace fields in every run (``{"epochs": 1, "batches": 2}``
    for a smoke run, ``{"out_dir": ...}``); ``grid`` is another set of
    experiments (a dict or a grid-file path) instead of :data:`EXPERIMENTS`.
    Every spec carries an absolute ``out_dir`` and a ``checkpoints`` prefix,
    so it can run anywhere, in any order, and resume after an interruption.
    """
    experiments = _experiments(grid)
    if overrides:  # bad override names or values fail here, once, before any run is planned
        RunConfig.from_dict({"run_name": "override-check", **overrides})
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s): {', '.join(unknown)}; known: {', '.join(experiments)}")
    if not names:
        raise ValueError("name at least one experiment")
    jobs = []
    for name in names:
        for cfg in experiments[name].runs(overrides):
            cfg = cfg.replace(out_dir=os.fspath(cfg.resolved_out_dir.resolve()))
            if cfg.checkpoints is None:
                cfg = cfg.replace(checkpoints=os.fspath(_checkpoint_prefix(cfg)))
            jobs.append(cfg.to_dict())
    return jobs


def run_job(spec: dict | RunConfig, *, skip_existing: bool = True, data=None,
            verbose: bool | None = False) -> Path:
    """Run one job spec; a job whose result file exists is skipped (returns its path).

    Independent of every other job: the spec holds the whole configuration.
    """
    cfg = spec if isinstance(spec, RunConfig) else RunConfig.from_dict(spec)
    out = result_path(cfg)
    if skip_existing and out.exists():
        return out
    return run_config(cfg, data=data, verbose=verbose)


def _summary(path: Path) -> str:
    rec = json.loads(path.read_text())
    res, t = rec["results"], rec["timing"]
    acc = max(res["test_acc"]) if res["test_acc"] else float("nan")
    ips = t.get("train_images_per_s")
    ips_text = f", {ips:,.0f} img/s" if ips else ""
    return f"{res['num_epochs']} epochs, best test acc {acc:.1f}%, {t['total_s']:.1f} s{ips_text}"


# Fresh worker processes: CUDA cannot be used in a process forked from one
# that has initialised it. (The tests use "fork" for CPU-only runs: cheaper.)
_MP_START = "spawn"


def _gpu_worker(gpu: int, jobs, reports) -> None:
    """One process per GPU: takes jobs from a queue until it gets None.

    Only GPU ``gpu`` is visible here, so device 'auto' / 'cuda' means that GPU.
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before CUDA is initialised in this process
    while (spec := jobs.get()) is not None:
        name = RunConfig.from_dict(spec).file_stem
        try:
            path = run_job(spec)
            reports.put((gpu, name, True, _summary(path)))
        except Exception as e:  # report, and go on with the next job
            reports.put((gpu, name, False, f"{type(e).__name__}: {e}"))


def run_sweep(jobs: list[dict], *, gpus: int | list[int] | None = None, log=print) -> list[str]:
    """Run job specs, skipping finished ones; returns the names of failed runs.

    With several GPUs (``gpus``: a count or a list of indices; None = every
    visible GPU when the jobs ask for CUDA) one worker process per GPU takes
    jobs from a queue; otherwise they run one after another in this process.
    """
    pending = [j for j in jobs if not result_path(j).exists()]
    for j in jobs:
        if j not in pending:
            log(f"skip {RunConfig.from_dict(j).file_stem} (result exists)")
    if not pending:
        return []
    gpu_ids = _gpu_ids(gpus, pending)
    failed = []
    if len(gpu_ids) <= 1:
        from hw2.data import load_cifar10

        data = load_cifar10()  # once for the whole sweep; no data -> one clear error
        for i, spec in enumerate(pending, 1):
            name = RunConfig.from_dict(spec).file_stem
            log(f"[{i}/{len(pending)}] {name} ...")
            try:
                path = run_job(spec, data=data)
            except Exception as e:  # report, and go on with the next job
                log(f"[{i}/{len(pending)}] {name}: FAILED {type(e).__name__}: {e}")
                failed.append(name)
                continue
            log(f"[{i}/{len(pending)}] {name}: {_summary(path)}")
        return failed

    import multiprocessing as mp

    ctx = mp.get_context(_MP_START)
    job_q, report_q = ctx.Queue(), ctx.Queue()
    for spec in pending:
        job_q.put(spec)
    for _ in gpu_ids:
        job_q.put(None)
    procs = [ctx.Process(target=_gpu_worker, args=(g, job_q, report_q), daemon=False) for g in gpu_ids]
    for p in procs:
        p.start()
    log(f"{len(pending)} runs on GPUs {', '.join(map(str, gpu_ids))}")
    done = 0
    while done < len(pending):
        try:
            gpu, name, ok, text = report_q.get(timeout=5)
        except Exception:  # queue.Empty: check the workers are alive
            if not any(p.is_alive() for p in procs):
                failed.append("(workers exited early)")
                break
            continue
        done += 1
        log(f"[{done}/{len(pending)}] gpu{gpu} {name}: {text}")
        if not ok:
            failed.append(name)
    for p in procs:
        p.join()
    return failed


def _gpu_ids(gpus, jobs) -> list[int]:
    if isinstance(gpus, (list, tuple)):
        return list(gpus)
    wants_cuda = any(j.get("device", "auto") in ("auto", "cuda") for j in jobs)
    if not wants_cuda:
        return []
    import torch

    available = torch.cuda.device_count()
    count = available if gpus is None else min(int(gpus), available)
    return list(range(count))


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_or_none(text: str):
    if text.lower() in ("none", "all", "full"):
        return None
    return int(text)


def _key_value(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value  # a bare string
    return key, parsed


def _add_run_options(p: argparse.ArgumentParser, sweep: bool) -> None:
    """The options of RunConfig. For ``sweep`` they are overrides (default: not given)."""
    d = {} if not sweep else dict(default=argparse.SUPPRESS)

    def add(*flags, **kw):
        if sweep:
            kw.pop("default", None)
            kw.pop("required", None)
        p.add_argument(*flags, **kw, **d)

    B = argparse.BooleanOptionalAction
    if not sweep:
        p.add_argument("-n", "--run-name", required=True, help="name of the run and prefix of the output file")
    p.add_argument("-o", "--out-dir", help=f"output folder (default: {results_dir()})", **d)
    add("-s", "--seed", type=int, default=42, help="random seed (default 42)")
    add("--bs-train", type=int, default=128, metavar="BATCH_SIZE", help="train batch size")
    add("--bs-test", type=int, metavar="BATCH_SIZE", help="test batch size (default: the train batch size)")
    add("--batches", type=_int_or_none, default=None, help="max batches per epoch (default: all)")
    add("--epochs", type=int, default=20, help="max epochs")
    add("--early-stopping", type=_int_or_none, default=3,
        help="stop after this many epochs without a new lowest test loss (0: never)")
    add("--checkpoints", default=None, help="checkpoint path prefix: resume from / save to <prefix>.pt")
    add("--lr", type=float, default=1e-3, help="(peak) learning rate")
    add("--reg", type=float, default=1e-3, help="L2 regularisation (weight decay)")
    if not sweep:
        p.add_argument("-K", "--filters-per-layer", type=int, nargs="+", metavar="K", required=True,
                       help="width of each group of L convs")
        p.add_argument("-L", "--layers-per-block", type=int, metavar="L", required=True,
                       help="convs per width K")
        p.add_argument("-P", "--pool-every", type=int, metavar="P", default=None,
                       help="convs between poolings (default: the book's rule, auto_pool_every)")
        p.add_argument("-H", "--hidden-dims", type=int, nargs="*", metavar="H", default=[1024],
                       help="widths of the hidden fully connected layers")
        p.add_argument("-M", "--model-type", choices=list(MODEL_TYPES), default="cnn",
                       help="cnn: ConvClassifier, resnet: ResNetClassifier, ycn: YourCodeNet")
    add("--model-kw", type=_key_value, nargs="+", metavar="KEY=VALUE",
        help="extra model keywords, JSON values (e.g. batchnorm=true dropout=0.1)")
    add("--optimizer", choices=OPTIMIZERS, default="adam", help="sgd (Nesterov), adam or adamw")
    add("--momentum", type=float, default=0.9, help="SGD momentum or Adam's beta1")
    add("--lr-schedule", choices=LR_SCHEDULES, default="constant", help="per-batch lr schedule after warmup")
    add("--warmup", type=float, default=0.0, help="fraction of the steps ramping the lr up")
    add("--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing")
    add("--augment", action=B, default=False, help="random flip + crop on the device")
    add("--train-size", type=_int_or_none, default=None, help="class-balanced training subset size")
    add("--test-size", type=_int_or_none, default=None, help="class-balanced test subset size")
    add("-d", "--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add("--amp", action=B, default=True, help="bfloat16 autocast (CUDA only)")
    add("--channels-last", action=B, default=True, help="channels-last memory format (CUDA only)")
    add("--compile", action=B, default=False, help="torch.compile the model")


def _parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="python -m hw2.experiments",
                        description="Train the architecture experiments of Part 3 and write JSON results.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    run = sub.add_parser("run-exp", help="run one configuration")
    _add_run_options(run, sweep=False)

    sw = sub.add_parser("sweep", help="run named experiments of the grid (skips finished runs)")
    sw.add_argument("experiments", nargs="+", metavar="NAME", help="e.g. exp1_1 exp1_2 (see 'list')")
    _add_run_options(sw, sweep=True)
    sw.add_argument("--grid-file", help="JSON file of experiments to use instead of the book's grid")
    sw.add_argument("--set", type=_key_value, nargs="+", metavar="KEY=VALUE", default=[],
                    help="override any RunConfig field, JSON values")
    sw.add_argument("--gpus", type=int, default=None,
                    help="worker processes, one per GPU (default: every visible GPU)")
    sw.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done")
    try:  # --executor local|slurm and the SLURM options, when hw2.cluster is present
        from hw2.cluster import add_executor_arguments
    except ImportError:
        pass
    else:
        add_executor_arguments(sw)

    ls = sub.add_parser("list", help="list the experiments and their runs")
    ls.add_argument("--grid-file", help="JSON file of experiments to use instead of the book's grid")
    return p


def _config_from_args(args: argparse.Namespace) -> dict:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    spec = {k: v for k, v in vars(args).items() if k in fields}
    if "model_kw" in spec:
        spec["model_kw"] = dict(spec["model_kw"] or [])
    return spec


def _cmd_run(args) -> int:
    cfg = RunConfig.from_dict(_config_from_args(args))
    path = run_config(cfg, verbose=None)  # builds the model before it loads any data
    print(f"wrote {path}: {_summary(path)}")
    return 0


def _cmd_sweep(args) -> int:
    overrides = _config_from_args(args)
    overrides.update(dict(args.set))
    jobs = sweep_jobs(args.experiments, overrides, grid=args.grid_file)
    for spec in jobs:  # impossible configurations fail before any training
        build_model(RunConfig.from_dict(spec))
    if args.dry_run:
        for spec in jobs:
            cfg = RunConfig.from_dict(spec)
            state = "done" if result_path(cfg).exists() else "todo"
            print(f"{state}  {cfg.file_stem:28s} {cfg.model_type:6s} channels={len(cfg.channels)} "
                  f"P={cfg.resolved_pool_every} epochs={cfg.epochs} bs={cfg.bs_train} lr={cfg.lr:g}")
        print(f"{len(jobs)} runs -> {RunConfig.from_dict(jobs[0]).resolved_out_dir}")
        return 0
    if getattr(args, "executor", "local") == "slurm":
        from hw2.cluster import executor_from_args, run_sweep as run_sweep_with

        return run_sweep_with(jobs, executor_from_args(args), stream=sys.stdout)
    failed = run_sweep(jobs, gpus=args.gpus, log=lambda s: print(s, flush=True))
    if failed:
        print(f"hw2.experiments: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_list(args) -> int:
    for name, exp in _experiments(args.grid_file).items():
        runs = exp.runs()
        print(f"{name}: {exp.title} ({len(runs)} runs)")
        for cfg in runs:
            print(f"    {cfg.file_stem:28s} P={cfg.resolved_pool_every}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"run-exp": _cmd_run, "sweep": _cmd_sweep, "list": _cmd_list}[args.command]
    try:
        return command(args)
    except ValueError as e:  # bad configuration: one line, exit code 2, no traceback
        print(f"python -m hw2.experiments: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from hw2.data import DataError

        if not isinstance(e, DataError):
            raise
        print(f"python -m hw2.experiments: {e}", file=sys.stderr)  # says how to provide the data
        return 1
    except KeyboardInterrupt:
        print("python -m hw2.experiments: interrupted (runs with checkpoints resume when restarted)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
