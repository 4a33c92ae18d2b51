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
import functools
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
    "Protocol",
    "PROTOCOLS",
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
    early_stopping: int | None = 3        # stop after this many epochs without a new lowest
                                          # validation loss (test loss when val_size is None)
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
    val_size: int | None = None           # class-balanced validation images held out of the
                                          # training set; None -> none (the assignment's way)
    train_size: int | None = None         # class-balanced training subset of the images not
                                          # held out; None -> all of them
    test_size: int | None = None          # class-balanced test subset; None -> all 10,000
    protocol: str | None = None           # the named preset (PROTOCOLS) the settings came from
    # --- hardware (book)
    device: str = "auto"                  # 'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1', ...
    amp: bool = True                      # bfloat16 autocast; applies on CUDA only
    channels_last: bool = True            # NHWC memory format (faster convs on CUDA and CPU)
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
        for name in ("bs_test", "batches", "pool_every", "val_size", "train_size", "test_size"):
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
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            bad("protocol", f"unknown protocol; choose one of {', '.join(PROTOCOLS)}")
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
        """``out_dir``, else ``results_dir()/<protocol>`` (or ``results_dir()`` without one)."""
        if self.out_dir is not None:
            return Path(self.out_dir).expanduser()
        return results_dir() / self.protocol if self.protocol else results_dir()

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

    def runs(self, overrides: dict | None = None, protocol: str | None = "gpu") -> list[RunConfig]:
        """One RunConfig per grid point.

        1. The protocol's settings (:data:`PROTOCOLS`: data sizes, epochs,
           batch size), then the experiment's ``hparams`` on top;
        2. the learning rate times the protocol's ``lr_scale``;
        3. ``overrides`` replace any field (smoke runs, another folder).

        ``protocol=None`` applies no preset (the grid's hparams and
        :class:`RunConfig`'s defaults).
        """
        overrides = dict(overrides or {})
        preset = _protocol(protocol)
        runs = []
        for ks, ls in self.grid:
            for layers in ls:
                spec = {**preset.settings, **self.hparams} if preset else dict(self.hparams)
                if preset:
                    spec["lr"] = spec.get("lr", RunConfig.lr) * preset.lr_scale
                    spec["protocol"] = preset.name
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


@dataclass(frozen=True)
class Protocol:
    """A named training budget for the whole grid: how much data, how many epochs.

    ``settings`` are :class:`RunConfig` fields every run gets (the
    experiments' own hparams go on top); ``lr_scale`` multiplies each
    experiment's learning rate; ``hardware`` says what it was sized for.
    """
    name: str
    settings: dict
    lr_scale: float = 1.0
    hardware: str = ""
    why: str = ""


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in [
    Protocol(
        name="gpu", hardware="one H100/H200 GPU",
        settings=dict(
            val_size=5_000,      # held out of the 50,000 training images (500 per class)
            train_size=None,     # the other 45,000
            test_size=None,      # all 10,000 test images
            epochs=15,           # the budget that fits the 34 runs in minutes on one GPU
            bs_train=512,        # big enough to keep the GPU busy (87 steps/epoch)
            bs_test=1000,        # evaluation only; no gradients
            early_stopping=5,    # epochs without a new lowest validation loss
        ),
        why="The full data set at the grid's recipe: 45,000 training images, 5,000 held out "
            "for validation, all 10,000 test images, 15 epochs of batches of 512.",
    ),
    Protocol(
        name="cpu", hardware="a 2-core CPU", lr_scale=0.5,
        settings=dict(
            val_size=2_000,      # held out of the training images (200 per class)
            train_size=8_000,    # class-balanced, from the images not held out
            test_size=4_000,     # class-balanced, 400 per class (±0.8% standard error)
            epochs=5,            # 8,000 x 5 images: the 34 runs in under 2.5 h on 2 cores
            bs_train=128,        # a CPU is no faster per image at 512; 4x the steps per epoch
            bs_test=500,
            early_stopping=3,
        ),
        why="Sized so that all 34 runs train in under 2.5 hours on a 2-core CPU: 8,000 training "
            "images, 2,000 held out for validation, 4,000 test images, 5 epochs of batches of "
            "128. The learning rate is halved: the batch is 4 times smaller, and for Adam the "
            "square-root rule scales the learning rate with the square root of the batch size.",
    ),
]}


def _protocol(name: str | None) -> Protocol | None:
    if name is None:
        return None
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


# Shared by every experiment of Part 3, so that runs differ in architecture,
# not in recipe. How much data and how many epochs is the protocol's business
# (PROTOCOLS); this is the recipe.
COMMON_HPARAMS = dict(
    optimizer="adam",      # Adam needs no per-depth lr tuning; plain deep CNNs have no BN to help SGD
    lr=2e-3,               # peak lr at batch 512; Adam's usual 1e-3 scaled up, with warmup
    momentum=0.9,          # Adam's beta1 (its default)
    reg=5e-4,              # L2 weight decay
    lr_schedule="linear",  # per step: warm up, then decay linearly to 0 by the last epoch
    warmup=0.2,            # first 20% of the steps ramp the lr up from 0: deep nets start stable
    augment=True,          # flip + 4-px crop: without it every net overfits after a few epochs and
                           # the depth/width effects drown in the overfitting
    hidden_dims=[512],     # one hidden FC layer for every net
)
# Plain and residual nets: the last feature map is average-pooled to 2x2
# before the head, so within an experiment and K every depth feeds the same
# (K, 2, 2) features into the same head (2x2 is where the deepest nets end).
SAME_HEAD = dict(head_map_size=2)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment(
        name="exp1_1", title="Experiment 1.1: depth (L) of a plain CNN", model_type="cnn",
        grid=(((32,), (2, 4, 8, 16)), ((64,), (2, 4, 8, 16))),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The shared recipe: Adam with a warmup-then-linear-decay schedule and flip/crop "
            "augmentation, the same for every depth, and the last map average-pooled to 2x2, "
            "so every depth of one K has the same head and only L changes between runs.",
    ),
    Experiment(
        name="exp1_2", title="Experiment 1.2: width (K) of a plain CNN", model_type="cnn",
        grid=(((32,), (2, 4, 8)), ((64,), (2, 4, 8)), ((128,), (2, 4, 8)), ((256,), (2, 4, 8))),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The shared recipe, as in 1.1, so widths are compared at an equal training budget.",
    ),
    Experiment(
        name="exp1_3", title="Experiment 1.3: growing widths K=[64, 128, 256]", model_type="cnn",
        grid=(((64, 128, 256), (1, 2, 3, 4)),),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The shared recipe, as in 1.1; L counts convs per width, so L=4 is 12 convs.",
    ),
    Experiment(
        name="exp1_4", title="Experiment 1.4: residual networks", model_type="resnet",
        grid=(((32,), (8, 16, 32)), ((64, 128, 256), (2, 4, 8))),
        # No batchnorm: with the plain nets of 1.1 and 1.3 the only difference
        # is the skip connection, which is what this experiment isolates.
        hparams=dict(COMMON_HPARAMS, model_kw=dict(SAME_HEAD, batchnorm=False)),
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


def describe_model(model) -> dict[str, Any]:
    """Class, parameter counts (feature extractor and head apart) and head input shape."""
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
    (:func:`hw2.data.train_val_indices`); the training subset comes from the rest.
    """
    from hw2.data import GPUBatches, class_balanced_indices, train_val_indices

    train_idx, val_idx = train_val_indices(data.train_y, cfg.train_size, cfg.val_size, seed)
    test_idx = class_balanced_indices(data.test_y, cfg.test_size, seed)
    n_train = len(train_idx)
    dl_train = GPUBatches(
        data.train_x[train_idx], data.train_y[train_idx], cfg.bs_train, shuffle=True,
        augment=cfg.augment, device=device, seed=seed,
        # Equal batch shapes (no cuDNN re-tuning for a ragged last batch),
        # unless the set is smaller than one batch.
        drop_last=n_train >= cfg.bs_train,
        channels_last=cfg.channels_last,
    )

    def scored(x, y):  # evaluation only: in order, no augmentation
        return GPUBatches(x, y, cfg.bs_test or cfg.bs_train, shuffle=False, augment=False,
                          device=device, channels_last=cfg.channels_last)

    dl_val = scored(data.train_x[val_idx], data.train_y[val_idx]) if len(val_idx) else None
    dl_test = scored(data.test_x[test_idx], data.test_y[test_idx])
    return dl_train, dl_val, dl_test


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
    """A TorchTrainer for the run: bf16 autocast on CUDA only; channels-last everywhere.

    Channels-last (NHWC) memory is what both cuDNN's tensor-core kernels and
    oneDNN's CPU convolutions are fastest with: on a 2-core CPU these nets
    train 1.2-2x faster than in the default NCHW layout.
    """
    import torch
    from torch import nn

    from hw2.training import TorchTrainer

    on_cuda = device.type == "cuda"
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()  # in place: state_dict keys (and so checkpoints) stay unchanged
    optimizer, scheduler = build_optimizer(cfg, model, steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return TorchTrainer(model, loss_fn, optimizer, device, lr_scheduler=scheduler,
                        amp_dtype=torch.bfloat16 if (cfg.amp and on_cuda) else None,
                        channels_last=cfg.channels_last)


def configure_backends(device) -> None:
    """Process-wide speed settings: cuDNN autotuning and TF32 matmuls on CUDA;
    flushing denormals to zero on a CPU.

    A network that stops learning (a deep plain net whose signal dies out)
    fills its activations and gradients with denormal floats, numbers below
    1e-38 that x86 CPUs compute about a hundred times more slowly: an epoch
    of such a run went from 14 s to 285 s. Treating them as zero changes no
    result that matters and keeps every epoch at full speed.
    """
    import torch

    if device.type == "cpu":
        torch.set_flush_denormal(True)
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


def _strict(obj):
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def _write_json(path: Path, obj) -> None:
    """``obj`` as indented strict JSON (non-finite numbers as null), written atomically."""
    def write(f):
        json.dump(_strict(obj), f, indent=1, allow_nan=False)
        f.write("\n")
    atomic_write(path, write, text=True)  # 0644: results are meant to be shared


def _shown_path(path) -> str | None:
    """A path as a result file records it: relative to the repository (or the
    current folder) when inside it, so no machine's folder names are stored."""
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    for base in (repo_root(), Path.cwd()):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix() or "."
    return os.fspath(path)


@functools.lru_cache(maxsize=1)
def code_provenance() -> dict[str, Any]:
    """Which code produced a result: a hash of the ``hw2`` sources, and the git commit.

    ``source_sha256`` hashes every ``hw2/**/*.py`` (path and content), so it
    identifies the code with or without git. In a git checkout, ``commit`` is
    ``HEAD`` and ``dirty`` says whether tracked files differed from it.
    Computed once per process, when the first run starts (a sweep records the
    code it imported, even if files change while it trains).
    """
    import subprocess

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    info: dict[str, Any] = {"source_sha256": digest.hexdigest()}

    def git(*args):
        return subprocess.run(["git", "-C", os.fspath(package.parent), *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()

    try:
        info["commit"] = git("rev-parse", "HEAD")
        info["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (an installed package): the source hash identifies it
    return info


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
    provenance = code_provenance()
    model = build_model(cfg)
    model_info = describe_model(model)

    # 3. data, optimizer and trainer
    if data is None:
        data = load_cifar10()
    dl_train, dl_val, dl_test = build_batches(cfg, data, device, seed)
    n_train, n_test = len(dl_train.y), len(dl_test.y)
    n_val = len(dl_val.y) if dl_val is not None else 0
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
                          max_batches=cfg.batches, verbose=verbose, dl_val=dl_val)

    # Training throughput of the epochs run in this process.
    # Images per epoch: ``batches`` (and drop_last for training) can make these
    # fewer than the split sizes.
    images_per_epoch = _epoch_images(n_train, dl_train.batch_size, dl_train.drop_last, cfg.batches)
    test_images_per_epoch = _epoch_images(n_test, dl_test.batch_size, dl_test.drop_last, cfg.batches)
    train_seconds = [t1 - t0 for t0, t1 in zip(timed_train.starts, timed_test.starts)]
    rates = sorted(images_per_epoch / s for s in train_seconds if s > 0)
    epoch_seconds = [float(s) for s in getattr(trainer, "epoch_seconds", [])]

    # 5. record
    losses = [*fit_res.train_loss, *fit_res.val_loss, *fit_res.test_loss]
    record = {
        "format": RESULT_FORMAT,
        "config": {**cfg.to_dict(), "seed": seed, "out_dir": _shown_path(cfg.resolved_out_dir),
                   "checkpoints": _shown_path(cfg.checkpoints),
                   "pool_every": cfg.resolved_pool_every, "bs_test": cfg.bs_test or cfg.bs_train,
                   "channels": cfg.channels},
        "results": fit_res.to_dict(),
        # Selected on the validation split (the test loss without one): the
        # epoch whose model a run would keep.
        "best_epoch": fit_res.best_epoch,
        # A loss that is NaN or infinite (written as null) means the run diverged.
        "diverged": not all(math.isfinite(v) for v in losses),
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
        "model": model_info,
        # Split sizes (after train_size/test_size), and the images actually
        # trained on / evaluated in each epoch.
        "data": {"source": getattr(data, "source_name", "CIFAR-10"),
                 "train_images": n_train, "val_images": n_val, "test_images": n_test,
                 "train_images_per_epoch": images_per_epoch,
                 "test_images_per_epoch": test_images_per_epoch},
        "device": {"type": device.type, "name": device_name(device),
                   "amp": "bfloat16" if (cfg.amp and device.type == "cuda") else "float32",
                   "channels_last": cfg.channels_last, "threads": torch.get_num_threads()},
        "versions": {"hw2": hw2.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "provenance": provenance,
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


# The original assignment's positional order of run_experiment's arguments.
_POSITIONAL = ("out_dir", "seed", "device", "bs_train", "bs_test", "batches", "epochs",
               "early_stopping", "checkpoints", "lr", "reg", "filters_per_layer",
               "layers_per_block", "pool_every", "hidden_dims", "model_type")


def run_experiment(run_name: str, *args, verbose: bool | None = None, **overrides) -> Path:
    """Run one configuration of a Part 3 experiment (the original assignment's API).

    Args:
        run_name: prefix of the result file's name.
        *args: the assignment's positional arguments, in its order (``out_dir,
            seed, device, bs_train, ...``, see ``_POSITIONAL``).
        verbose: progress bars and epoch lines; None shows them on a terminal.
        **overrides: any :class:`RunConfig` field (its defaults apply to the
            rest, and it validates them). Other keywords go to the model's
            constructor (e.g. ``batchnorm=True`` for ``'resnet'``); one the
            model does not take is a ``ValueError``.

    Trains ``model_type`` with ``channels`` = each of ``filters_per_layer``
    repeated ``layers_per_block`` times and writes
    ``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json``. Returns the file's
    path. An existing result file is overwritten; with ``checkpoints`` an
    interrupted run resumes.
    """
    if len(args) > len(_POSITIONAL):
        raise TypeError(f"run_experiment takes at most {len(_POSITIONAL) + 1} positional "
                        f"arguments ({len(args) + 1} given)")
    for name, value in zip(_POSITIONAL, args):
        if name in overrides:
            raise TypeError(f"run_experiment got multiple values for argument {name!r}")
        overrides[name] = value
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    spec = {k: v for k, v in overrides.items() if k in fields}
    model_kw = {**(spec.pop("model_kw", None) or {}),
                **{k: v for k, v in overrides.items() if k not in fields}}
    if spec.get("device", "auto") is None:  # the assignment's default: whatever is there
        spec["device"] = "auto"
    for key in ("out_dir", "checkpoints"):
        if spec.get(key) is not None:
            spec[key] = os.fspath(spec[key])
    cfg = RunConfig(run_name=run_name, model_kw=model_kw, **spec)
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
                      grid: dict[str, Experiment] | str | os.PathLike | None = None,
                      protocol: str | None = "gpu"):
    """``[(RunConfig, result path or None), ...]`` for every run of an experiment.

    ``None`` marks a run whose result file is missing from ``results_dir``
    (default ``results_dir()/<protocol>``). The chapters use it to say what is
    missing.
    """
    experiments = _experiments(grid)
    if name not in experiments:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(experiments)}")
    if results_dir is not None:
        folder = Path(results_dir)
    else:
        folder = _default_results_dir() / protocol if protocol else _default_results_dir()
    status = []
    for cfg in experiments[name].runs({"out_dir": os.fspath(folder)}, protocol=protocol):
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
               grid: dict[str, Experiment] | str | os.PathLike | None = None,
               protocol: str | None = "gpu") -> list[dict]:
    """The job specs (plain JSON-able dicts, :meth:`RunConfig.to_dict`) of named experiments.

    ``protocol`` is the preset of :data:`PROTOCOLS` the runs follow (None:
    none, e.g. for a grid file whose hparams say everything); results go to
    ``results_dir()/<protocol>`` unless ``out_dir`` is overridden.
    ``overrides`` replace fields in every run (``{"epochs": 1, "batches": 2}``
    for a smoke run, ``{"out_dir": ...}``); ``grid`` is another set of
    experiments (a dict or a grid-file path) instead of :data:`EXPERIMENTS`.
    Every spec carries an absolute ``out_dir`` and a ``checkpoints`` prefix,
    so it can run anywhere, in any order, and resume after an interruption.
    """
    experiments = _experiments(grid)
    _protocol(protocol)  # an unknown name fails here
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
        for cfg in experiments[name].runs(overrides, protocol=protocol):
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
    """One line: epochs, the selected epoch's accuracies, time and throughput."""
    rec = json.loads(path.read_text())
    res, t = rec["results"], rec["timing"]
    best = rec.get("best_epoch") or len(res["test_acc"])
    split = "val" if res.get("val_acc") else "test"
    chosen = (f"best {split} loss at epoch {best}: {split} acc {res[f'{split}_acc'][best - 1]:.1f}%"
              if best else "no epoch")
    if split == "val" and best:
        chosen += f", test acc {res['test_acc'][best - 1]:.1f}%"
    ips = t.get("train_images_per_s")
    ips_text = f", {ips:,.0f} img/s" if ips else ""
    return f"{res['num_epochs']} epochs, {chosen}, {t['total_s']:.1f} s{ips_text}"


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
    sw.add_argument("--protocol", choices=[*PROTOCOLS, "none"], default=None,
                    help="training budget of the book's grid: 'gpu' (full data, the default) or "
                         "'cpu' (a subset sized for a 2-core CPU); results go to results/<protocol>/. "
                         "With --grid-file the default is 'none' (the file's hparams only)")
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
    protocol = args.protocol or ("none" if args.grid_file else "gpu")
    jobs = sweep_jobs(args.experiments, overrides, grid=args.grid_file,
                      protocol=None if protocol == "none" else protocol)
    for spec in jobs:  # impossible configurations fail before any training
        build_model(RunConfig.from_dict(spec))
    if args.dry_run:
        for spec in jobs:
            cfg = RunConfig.from_dict(spec)
            state = "done" if result_path(cfg).exists() else "todo"
            print(f"{state}  {cfg.file_stem:28s} {cfg.model_type:6s} channels={len(cfg.channels)} "
                  f"P={cfg.resolved_pool_every} epochs={cfg.epochs} bs={cfg.bs_train} lr={cfg.lr:g} "
                  f"train/val/test={cfg.train_size or 'all'}/{cfg.val_size or 0}/{cfg.test_size or 'all'}")
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
