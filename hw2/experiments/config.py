"""One run's configuration: :class:`RunConfig`, its presets and its file name.

A run is described entirely by a :class:`RunConfig`: plain data, written as
the job spec of a sweep and into the result file. The command line's options
are generated from its fields (``hw2.experiments.cli``), so each default is
written once, here. Two presets of the data budget, :data:`PROTOCOLS`, size
the whole grid for a GPU or a CPU. :func:`auto_pool_every` is the book's
rule for how often a network pools.

Standard library only: importing this module (or asking the CLI for
``--help``) does not import torch.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw2 import _checks
from hw2._io import book_path, repo_root

__all__ = [
    "MODEL_TYPES",
    "OPTIMIZERS",
    "LR_SCHEDULES",
    "IN_SIZE",
    "NUM_CLASSES",
    "Protocol",
    "PROTOCOLS",
    "RunConfig",
    "option",
    "results_dir",
    "study_results_dir",
    "study_folder",
    "result_filename",
    "result_path",
    "max_poolings",
    "auto_pool_every",
]

#: Model classes of ``hw2.cnn`` by their command-line name (``-M``).
MODEL_TYPES = {"cnn": "ConvClassifier", "resnet": "ResNetClassifier",
               "ycn": "YourCodeNet"}
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "linear", "cosine")

IN_SIZE = (3, 32, 32)  # CIFAR-10 images, (C, H, W)
MAX_WIDTH = 65_536     # the widest conv or FC layer a run may ask for
NUM_CLASSES = 10


def results_dir() -> Path:
    """Where result files go when a run names no ``out_dir``.

    1. ``$HW2_RESULTS_DIR`` when set;
    2. the repository's ``results/`` when the current folder is inside this
       repository (the book's chapters run in their own folders);
    3. otherwise ``./results`` under the current folder, as the original
       course's notebooks expect (``load_experiment('results/...')``).
    """
    env = os.environ.get("HW2_RESULTS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    here = Path.cwd().resolve()
    if (here.is_relative_to(root) and (root / "hw2").is_dir()
            and (root / "_toc.yml").is_file()):
        return root / "results"
    return here / "results"


def study_results_dir() -> Path:
    """Where the book's study is read from (the chapters' tables and figures).

    :func:`results_dir` when it holds a protocol's folder (the checkout's
    ``results/``, ``$HW2_RESULTS_DIR``, or a learner's own ``./results/cpu``),
    else the copy of the study a wheel of ``hw2`` carries (``hw2._io.book_path``).
    """
    here = results_dir()
    if any((here / name).is_dir() for name in PROTOCOLS):
        return here
    return book_path("results")


def study_folder(protocol: str, seed: int, root: str | os.PathLike | None = None
                 ) -> Path:
    """``<root>/<protocol>/seed<seed>``: where one seed of a protocol's study lives.

    ``root`` defaults to :func:`results_dir`. The files in it keep the original
    assignment's names (``exp1_1_L8_K32.json``).
    """
    return (Path(root) if root is not None else results_dir()) / protocol / \
        f"seed{seed}"


# --------------------------------------------------------------------------
# Protocols: how much data and how many epochs the whole grid gets
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Protocol:
    """A named training budget for the whole grid: how much data, how many epochs.

    Attributes:
        name: ``'gpu'`` or ``'cpu'``; results go to ``results/<name>/``.
        settings: :class:`RunConfig` fields every run gets (an experiment's
            own hyperparameters go on top).
        lr_scale: multiplies each experiment's learning rate.
        seeds: every configuration is trained once per seed; a seed's files
            go to ``results/<name>/seed<seed>/`` (:func:`study_folder`).
        hardware: what the budget was sized for.
        why: the choice, in a sentence or two (the chapter prints it).
    """
    name: str
    settings: dict
    lr_scale: float = 1.0
    seeds: tuple[int, ...] = (42, 43, 44)
    hardware: str = ""
    why: str = ""


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in [
    Protocol(
        name="gpu", hardware="one H100/H200 GPU",
        settings=dict(
            val_size=5_000,    # held out of the 50,000 training images (500 per class)
            train_size=None,   # the other 45,000
            test_size=None,    # all 10,000 test images
            epochs=15,         # the budget that fits the grid in minutes on one GPU
            bs_train=512,      # big enough to keep the GPU busy (87 steps/epoch)
            bs_test=1000,      # evaluation only; no gradients
            early_stopping=5,  # epochs without a new lowest validation loss
        ),
        why="The full data set at the grid's recipe: 45,000 training images, 5,000 "
            "held out for validation, all 10,000 test images, 15 epochs of batches of "
            "512.",
    ),
    Protocol(
        name="cpu", hardware="a 2-core CPU", lr_scale=0.5,
        settings=dict(
            val_size=2_000,    # held out of the training images (200 per class)
            train_size=8_000,  # class-balanced, from the images not held out
            test_size=4_000,   # class-balanced, 400 per class (±0.8% standard error)
            epochs=5,          # 8,000 x 5 images: three seeds of the study in < 3 h
            bs_train=128,      # a CPU is no faster per image at 512; 4x the steps
            bs_test=500,
            early_stopping=3,
            # bfloat16 autocast: 1.45-2.7x faster training steps than float32 on a
            # CPU with native bf16 (benchmarks/cpu_numerics.py). One numeric
            # setting for the whole study, whichever machine trains or resumes it.
            cpu_bf16=True,
        ),
        why="Sized so that the replicated study (its 28 networks and 2 controls, "
            "three seeds each, and its two checks) trains in under 3 hours on a 2-core "
            "CPU with native bf16: "
            "8,000 training images, 2,000 held out for validation, 4,000 test images, "
            "5 epochs of batches of 128. The learning rate is halved: the batch is 4 "
            "times smaller, and for Adam the square-root rule scales the learning rate "
            "with the square root of the batch size. Every step computes in bfloat16 "
            "autocast, on every machine that trains the study.",
    ),
    Protocol(
        name="speedrun", hardware="a 2-core CPU with native bf16", seeds=(42,),
        settings=dict(
            val_size=None,      # the final run trains on all 50,000 training images
            train_size=None,
            test_size=None,     # and is scored on all 10,000 test images
            epochs=26,          # what fits in about 40 minutes on the 2-core machine
            bs_train=512,
            bs_test=1000,
            early_stopping=None,
            cpu_bf16=True,
        ),
        why="One run of YourCodeNet on the whole of CIFAR-10 in under an hour on a "
            "2-core CPU: all 50,000 training images, 26 epochs of batches of 512 in "
            "bfloat16, scored on all 10,000 test images. The learning rate was chosen "
            "on a validation split of 5,000 training images (val_size=5000); the "
            "number of epochs is what fits in about 40 minutes.",
    ),
]}


# --------------------------------------------------------------------------
# One run's configuration
# --------------------------------------------------------------------------

_REQUIRED = dataclasses.MISSING


def option(default: Any = _REQUIRED, help: str = ""):
    """A :class:`RunConfig` field with its help text (``field(metadata=...)``).

    A list or dict default is copied for every config (``default_factory``).
    """
    metadata = {"help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default),
                     metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Everything that defines one run. Plain data: ``to_dict()`` is the job spec.

    The first blocks mirror the original assignment's ``run_experiment``
    arguments (same names, same flags); the rest are the book's additions.
    Each field's help text (:func:`option`) is its help on the command line.
    """
    # --- what and where
    run_name: str = option(help="prefix of the result file's name")
    out_dir: str | None = option(
        None, "folder of the result file; None: the protocol's folder of the seed "
              "(results/<protocol>/seed<N>), or results/ without a protocol")
    seed: int | None = option(42, "random seed; None: drawn at random (and recorded)")
    # --- training loop (original flags)
    bs_train: int = option(128, "images per optimisation step")
    bs_test: int | None = option(None, "images per evaluation batch; None: bs_train")
    batches: int | None = option(None, "most batches per epoch of each split; None: "
                                       "all")
    epochs: int = option(20, "most epochs")
    early_stopping: int | None = option(
        3, "stop after this many epochs without a new lowest validation loss (test "
           "loss without val_size); 0 or None: never")
    checkpoints: str | None = option(
        None, "checkpoint path prefix (file <prefix>.pt): resume from it, save to "
              "it; None: no checkpoints")
    lr: float = option(1e-3, "peak learning rate")
    reg: float = option(1e-3, "L2 strength, given to the optimizer as weight_decay")
    # --- model (original flags)
    filters_per_layer: list[int] = option([64], "K: widths")
    layers_per_block: int = option(2, "L: convs per width K (channels: each K L times)")
    pool_every: int | None = option(None, "P: convs between poolings; None: "
                                          "auto_pool_every")
    hidden_dims: list[int] = option([1024], "hidden FC widths")
    model_type: str = option("cnn", "cnn: ConvClassifier, resnet: ResNetClassifier, "
                                    "ycn: YourCodeNet")
    model_kw: dict[str, Any] = option({}, "more model keywords")
    # --- optimisation (book)
    optimizer: str = option("adam", "sgd (Nesterov momentum), adam or adamw")
    momentum: float = option(0.9, "SGD's momentum, or Adam's beta1")
    lr_schedule: str = option("constant", "per batch after warmup: constant, linear "
                                          "or cosine")
    warmup: float = option(0.0, "fraction of all steps ramping the lr up from 0")
    label_smoothing: float = option(0.0, "of the cross-entropy targets")
    # --- data (book)
    augment: bool = option(False, "random flip + 4-pixel crop, on whole batches")
    val_size: int | None = option(
        None, "class-balanced validation images held out of the training set; "
              "None: none (the assignment's way)")
    train_size: int | None = option(
        None, "class-balanced training subset of the images not held out; None: "
              "all of them")
    test_size: int | None = option(None, "class-balanced test subset; None: all "
                                         "10,000")
    protocol: str | None = option(None, "the preset of PROTOCOLS the settings start "
                                        "from")
    # --- hardware (book)
    device: str = option("auto", "auto (CUDA if present), cpu, cuda, cuda:N")
    amp: bool = option(True, "bfloat16 autocast on CUDA")
    cpu_bf16: bool = option(False, "bfloat16 autocast on a CPU as well (fast where "
                                   "the CPU has native bf16 units: avx512_bf16, AMX)")
    channels_last: bool = option(True, "NHWC memory: faster convs on CUDA and on a "
                                       "CPU")
    compile: bool = option(False, "torch.compile the model (slow first epoch)")

    def __post_init__(self):
        # Tuples (and other sequences) where lists are expected: the config
        # must round-trip through JSON unchanged.
        for name in ("filters_per_layer", "hidden_dims"):
            value = getattr(self, name)
            if isinstance(value, (tuple, range)):
                setattr(self, name, list(value))
        for name in ("out_dir", "checkpoints"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        if self.model_kw is None:
            self.model_kw = {}
        self.validate()

    # -- checks --------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        c, owner = _checks, "RunConfig"
        if not isinstance(self.run_name, str) or not self.run_name.strip():
            c.fail("run_name", "a non-empty name", self.run_name, owner)
        if any(ch in self.run_name for ch in "/\\\0") or self.run_name in (".", ".."):
            c.fail("run_name",
                   "a file name prefix, not a path (out_dir names the folder)",
                   self.run_name, owner)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in self.run_name):
            c.fail("run_name", "a name without control characters (newlines, tabs)",
                   self.run_name, owner)
        for name in ("out_dir", "checkpoints"):
            value = getattr(self, name)
            bad = not isinstance(value, str) or not value or "\0" in value
            if value is not None and bad:
                c.fail(name, "a path or None", value, owner)
        seed_ok = c.is_int(self.seed) and 0 <= self.seed < 2**63
        if self.seed is not None and not seed_ok:
            c.fail("seed", "an integer in [0, 2**63) or None", self.seed, owner)
        for name in ("bs_train", "epochs", "layers_per_block"):
            c.positive_int(name, getattr(self, name), owner=owner)
        for name in ("bs_test", "batches", "pool_every", "val_size", "train_size",
                     "test_size"):
            c.positive_int(name, getattr(self, name), allow_none=True, owner=owner)
        c.non_negative_int("early_stopping", self.early_stopping, allow_none=True,
                           owner=owner)
        c.positive_real("lr", self.lr, owner=owner, high=c.FLOAT32_MAX)
        c.real_in("reg", self.reg, 0, c.FLOAT32_MAX, high_open=False, owner=owner)
        for name in ("filters_per_layer", "hidden_dims"):
            widths = c.int_list(name, getattr(self, name),
                                allow_empty=name == "hidden_dims", owner=owner)
            if any(w > MAX_WIDTH for w in widths):
                c.fail(name, f"a list of widths of at most {MAX_WIDTH:,} (a wider "
                             f"layer's weights do not fit in memory)",
                       getattr(self, name), owner)
        c.one_of("model_type", self.model_type, list(MODEL_TYPES), owner=owner)
        if not isinstance(self.model_kw, dict) or not all(
                isinstance(k, str) for k in self.model_kw):
            c.fail("model_kw", "a dict of keyword arguments", self.model_kw, owner)
        c.one_of("optimizer", self.optimizer, OPTIMIZERS, owner=owner)
        c.real_in("momentum", self.momentum, 0, 1, owner=owner)
        if self.optimizer != "sgd" and self.lr / (1 - self.momentum) > c.FLOAT32_MAX:
            c.fail("lr", f"at most {c.FLOAT32_MAX * (1 - self.momentum):g} for "
                         f"{self.optimizer} with momentum (beta1) {self.momentum:g}: "
                         f"its first step, lr/(1 - beta1), must fit in float32",
                   self.lr, owner)
        c.one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES, owner=owner)
        c.real_in("warmup", self.warmup, 0, 1, owner=owner)
        c.real_in("label_smoothing", self.label_smoothing, 0, 1, owner=owner)
        if self.protocol is not None:
            c.one_of("protocol", self.protocol, list(PROTOCOLS), owner=owner)
        for name in ("augment", "amp", "cpu_bf16", "channels_last", "compile"):
            c.flag(name, getattr(self, name), owner=owner)
        device = self.device
        if not isinstance(device, str) or not (
                device in ("auto", "cpu", "cuda", "mps")
                or (device.startswith("cuda:") and device[5:].isdigit())):
            c.fail("device", "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'", device,
                   owner)
        try:
            json.dumps(self.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"RunConfig: the configuration is not plain JSON data: "
                             f"{e}") from None

    # -- derived values ------------------------------------------------------
    @property
    def channels(self) -> list[int]:
        """Output channels of every conv: each K repeated L times."""
        return [k for k in self.filters_per_layer for _ in range(self.layers_per_block)]

    @property
    def resolved_pool_every(self) -> int:
        """``pool_every``, or the book's rule (:func:`auto_pool_every`)."""
        if self.pool_every is not None:
            return self.pool_every
        return auto_pool_every(self.model_type, self.filters_per_layer,
                               self.layers_per_block)

    @property
    def resolved_out_dir(self) -> Path:
        """``out_dir``, else the study's folder of the protocol and seed.

        That is ``results_dir()/<protocol>/seed<seed>`` (:func:`study_folder`);
        ``results_dir()/<protocol>`` for a drawn seed; ``results_dir()`` without a
        protocol (the original assignment's ``results/``).
        """
        if self.out_dir is not None:
            return Path(self.out_dir).expanduser()
        if self.protocol is None:
            return results_dir()
        if self.seed is None:
            return results_dir() / self.protocol
        return study_folder(self.protocol, self.seed)

    @property
    def file_stem(self) -> str:
        """``<run_name>_L<L>_K<k1>-<k2>...``: the original assignment's naming."""
        ks = "-".join(map(str, self.filters_per_layer))
        return f"{self.run_name}_L{self.layers_per_block}_K{ks}"

    # -- plain data ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    #: Fields that say where and how fast a run goes, not what it trains.
    PLACE_FIELDS = ("out_dir", "checkpoints", "device", "compile")

    def identity(self) -> dict[str, Any]:
        """What the run trains: every field but :attr:`PLACE_FIELDS`.

        The defaults that depend on others are resolved (``pool_every``,
        ``bs_test``). Two configs with the same identity train the same network on the
        same data the same way; a checkpoint or a result file of one belongs
        to the other. (Device and compilation change the speed and the last
        bits of the floats, not what is trained.)
        """
        spec = {k: v for k, v in self.to_dict().items() if k not in self.PLACE_FIELDS}
        spec["pool_every"] = self.resolved_pool_every
        spec["bs_test"] = self.bs_test or self.bs_train
        return spec

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from plain data; unknown keys are an error (named)."""
        if not isinstance(d, dict):
            raise ValueError(f"a run configuration must be a dict, "
                             f"got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown run configuration key(s): {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        if "run_name" not in d:
            raise ValueError("a run configuration needs a run_name")
        return cls(**d)

    def replace(self, **changes) -> RunConfig:
        """A copy with some fields changed (validated; unknown names rejected)."""
        return RunConfig.from_dict({**self.to_dict(), **changes})


def result_filename(cfg: RunConfig) -> str:
    """``<run_name>_L<L>_K<k1>-<k2>....json``."""
    return cfg.file_stem + ".json"


def result_path(cfg: RunConfig | dict) -> Path:
    """The result file of a config or a job spec."""
    cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    return cfg.resolved_out_dir / result_filename(cfg)


# --------------------------------------------------------------------------
# Choosing pool_every so that no feature map vanishes
# --------------------------------------------------------------------------

def max_poolings(size: int = IN_SIZE[1]) -> int:
    """How many default poolings (2×2, stride 2) a ``size``×``size`` map survives.

    32 → 16 → 8 → 4 → 2 → 1 is 5 poolings; a sixth would leave 0×0 (the
    output-size formula of ``hw2.cnn.conv_output_size``, ⌊(n − 2)/2⌋ + 1).
    """
    count = 0
    while (size := (size - 2) // 2 + 1) >= 1:
        count += 1
    return count


def auto_pool_every(model_type: str, filters_per_layer: list[int],
                    layers_per_block: int) -> int:
    """The book's rule for ``P`` (the grid's ``pool_every``).

    - ConvClassifier / ResNetClassifier, ``N = len(K)·L`` convs: the smallest
      ``P`` that divides ``N`` with ``N/P`` poolings ≤ :func:`max_poolings`
      (5 for 32×32). Dividing ``N`` keeps every residual block the same
      depth; the smallest such ``P`` pools as early as allowed, which makes
      the deep-but-narrow runs cheap (most convs run on small maps).
    - YourCodeNet: ``P = L``, one stage per width K (its design, see
      ``hw2.cnn.YourCodeNet``), so ``len(K)`` poolings.

    Raises:
        ValueError: for a model type it does not know, ``L < 1``, no widths,
            or more YourCodeNet widths than poolings.
    """
    _checks.one_of("model_type", model_type, list(MODEL_TYPES))
    _checks.positive_int("layers_per_block", layers_per_block)
    widths = _checks.int_list("filters_per_layer", filters_per_layer)
    n_convs = len(widths) * layers_per_block
    limit = max_poolings()
    if model_type == "ycn":
        if len(widths) > limit:
            raise ValueError(f"YourCodeNet pools once per width; "
                             f"{len(widths)} widths > {limit} poolings")
        return layers_per_block
    # P = N always qualifies (one pooling), so the loop always returns.
    return next(p for p in range(1, n_convs + 1)
                if n_convs % p == 0 and n_convs // p <= limit)
