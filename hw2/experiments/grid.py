"""The experiment grid of Part 3 (SPEC §3.7), as plain data.

:data:`EXPERIMENTS` maps each experiment's name to its (K, L) grid, its
model type and the hyperparameters its runs share, like the hyperparameter
dict of the fast CIFAR-10 scripts: the chapter prints it, a sweep runs it.
A protocol (:data:`hw2.experiments.config.PROTOCOLS`) sets the data budget
underneath; a JSON grid file can replace the whole grid (:func:`load_grid_file`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hw2._io import read_json
from hw2.experiments.config import PROTOCOLS, Protocol, RunConfig, auto_pool_every

__all__ = [
    "COMMON_RECIPE",
    "EXP2_RECIPE",
    "COMMON_HPARAMS",
    "SAME_HEAD",
    "Experiment",
    "EXPERIMENTS",
    "STUDY",
    "CONTROLS",
    "SPEEDRUN",
    "NAMED_RUNS",
    "Check",
    "CHECKS",
    "run_owners",
    "owned",
    "check_runs",
    "load_grid_file",
    "resolve_grid",
    "get_protocol",
]


def get_protocol(name: str | None) -> Protocol | None:
    """The :class:`Protocol` named ``name`` (None for None).

    Raises:
        ValueError: naming an unknown protocol.
    """
    if name is None:
        return None
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of "
                         f"{', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


@dataclass(frozen=True, eq=False)
class Experiment:
    """A named sweep: a grid of (K, L) for one model type, on shared hyperparameters.

    Attributes:
        name: the experiment's name, also the result files' ``run_name``.
        title: a line for the chapter.
        model_type: a key of ``MODEL_TYPES``.
        grid: ``(K, Ls)`` pairs: ``((32,), (2, 4))`` means the runs
            ``K=[32], L=2`` and ``K=[32], L=4``.
        hparams: :class:`RunConfig` fields shared by every run.
        why: the reason for the hyperparameters (the chapter prints it).
    """
    name: str
    title: str
    model_type: str
    grid: tuple
    hparams: dict = field(default_factory=dict)
    why: str = ""

    def runs(self, overrides: dict | None = None,
             protocol: str | None = "gpu") -> list[RunConfig]:
        """One RunConfig per grid point.

        1. The protocol's settings (data sizes, epochs, batch size), then the
           experiment's ``hparams`` on top;
        2. the learning rate times the protocol's ``lr_scale``;
        3. ``overrides`` replace any field (smoke runs, another folder).

        ``protocol=None`` applies no preset (the grid's hparams and
        :class:`RunConfig`'s defaults).
        """
        overrides = dict(overrides or {})
        preset = get_protocol(protocol)
        runs = []
        for ks, ls in self.grid:
            for layers in ls:
                base = preset.settings if preset else {}
                spec = {**base, **self.hparams}
                if preset:
                    spec["lr"] = spec.get("lr", RunConfig.lr) * preset.lr_scale
                    spec["protocol"] = preset.name
                spec.update(run_name=self.name, model_type=self.model_type,
                            filters_per_layer=list(ks), layers_per_block=layers)
                spec.setdefault("pool_every",
                                auto_pool_every(self.model_type, list(ks), layers))
                spec.update(overrides)
                runs.append(RunConfig.from_dict(spec))
        return runs

    #: The keys of an experiment in a grid file.
    FILE_KEYS = ("model_type", "grid", "hparams", "title", "why")
    #: RunConfig fields an experiment's runs get from the experiment, the
    #: protocol or the sweep, never from its hparams.
    SET_BY_GRID = ("run_name", "model_type", "filters_per_layer", "layers_per_block",
                   "protocol", "out_dir")

    @classmethod
    def from_dict(cls, name: str, d: dict) -> Experiment:
        """An experiment of a grid file.

        Its entry is ``{model_type, grid, hparams?, title?, why?}``; any other
        key, or an hparams field the grid sets (:attr:`SET_BY_GRID`), is an
        error that names it.
        """
        if not isinstance(d, dict):
            raise ValueError(f"experiment {name!r}: expected an object with "
                             f"model_type and grid, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.FILE_KEYS))
        if unknown:
            raise ValueError(f"experiment {name!r}: unknown key(s) "
                             f"{', '.join(map(repr, unknown))}; an experiment has "
                             f"{', '.join(cls.FILE_KEYS)}")
        hparams = d.get("hparams", {})
        if not isinstance(hparams, dict):
            raise ValueError(f"experiment {name!r}: hparams must be an object of "
                             f"RunConfig fields, got {type(hparams).__name__}")
        set_by_grid = sorted(set(hparams) & set(cls.SET_BY_GRID))
        if set_by_grid:
            raise ValueError(f"experiment {name!r}: hparams may not set "
                             f"{', '.join(set_by_grid)}: the experiment sets it "
                             f"(its name, model_type and grid; the protocol and the "
                             f"output folder come from the command line)")
        try:
            grid = tuple((tuple(ks), tuple(ls)) for ks, ls in d["grid"])
            experiment = cls(name=name, title=d.get("title", name),
                             model_type=d["model_type"], grid=grid,
                             hparams=dict(d.get("hparams", {})), why=d.get("why", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"experiment {name!r}: needs model_type and grid "
                             f"[[K-list, L-list], ...] "
                             f"({type(e).__name__}: {e})") from None
        try:
            runs = experiment.runs(protocol=None)  # every grid point a valid RunConfig
        except ValueError as e:
            raise ValueError(f"experiment {name!r}: {e}") from None
        if not runs:
            raise ValueError(f"experiment {name!r} has no runs: its grid must list "
                             f"[K-list, L-list] pairs with at least one L")
        return experiment


# The training recipe: how every network of experiment 1 is trained, so that its
# runs differ in architecture only. How much data and how many epochs is the
# protocol's business (PROTOCOLS); this is the recipe.
COMMON_RECIPE = dict(
    optimizer="adam",      # Adam needs no per-depth lr tuning;
                           # no BN helps SGD in plain nets
    lr=2e-3,               # peak lr at batch 512;
                           # Adam's usual 1e-3 scaled up, with warmup
    momentum=0.9,          # Adam's beta1 (its default)
    reg=5e-4,              # L2 weight decay
    lr_schedule="linear",  # per step: warm up, then decay linearly to 0
                           # by the last epoch
    warmup=0.2,            # first 20% of the steps ramp the lr up from 0:
                           # deep nets start stable
    augment=True,          # flip + 4-px crop: without it every net overfits after a few
                           # epochs and the depth/width effects drown in the overfitting
    label_smoothing=0.0,   # hard targets
)
# Experiment 2's recipe: the common one with twice the peak lr (BatchNorm in every
# unit keeps it stable) and label smoothing 0.1 (softer targets help short runs).
# YourCodeNet also computes GELU where experiment 1's nets compute ReLU.
EXP2_RECIPE = dict(COMMON_RECIPE, lr=4e-3, label_smoothing=0.1)
# Experiment 1's head: one hidden FC layer of 512 for every net.
COMMON_HPARAMS = dict(COMMON_RECIPE, hidden_dims=[512])
# Plain and residual nets: the last feature map is average-pooled to 2x2
# before the head, so within an experiment and K every depth feeds the same
# (K, 2, 2) features into the same head (2x2 is where the deepest nets end).
SAME_HEAD = dict(head_map_size=2)

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment(
        name="exp1_1", title="Experiment 1.1: depth (L) of a plain CNN",
        model_type="cnn",
        grid=(((32,), (2, 4, 8, 16)), ((64,), (2, 4, 8, 16))),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The common recipe: Adam with a warmup-then-linear-decay schedule and "
            "flip/crop augmentation, the same for every depth, and the last map "
            "average-pooled to 2x2, so every depth of one K has the same head and "
            "only L changes between runs.",
    ),
    Experiment(
        name="exp1_2", title="Experiment 1.2: width (K) of a plain CNN",
        model_type="cnn",
        grid=(((32,), (2, 4, 8)), ((64,), (2, 4, 8)), ((128,), (2, 4, 8)),
              ((256,), (2, 4, 8))),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The common recipe, as in 1.1, so widths are compared at an equal training "
            "budget. Its K=32 and K=64 runs are the networks of 1.1: trained once per "
            "seed, shown in both.",
    ),
    Experiment(
        name="exp1_3", title="Experiment 1.3: growing widths K=[64, 128, 256]",
        model_type="cnn",
        grid=(((64, 128, 256), (1, 2, 3, 4)),),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The common recipe, as in 1.1; L counts convs per width, "
            "so L=4 is 12 convs.",
    ),
    Experiment(
        name="exp1_4", title="Experiment 1.4: residual networks", model_type="resnet",
        grid=(((32,), (8, 16, 32)), ((64, 128, 256), (2, 4, 8))),
        # No batchnorm: with the plain nets of 1.1 and 1.3 the only difference
        # is the skip connection, which is what this experiment isolates.
        hparams=dict(COMMON_HPARAMS, model_kw=dict(SAME_HEAD, batchnorm=False)),
        why="The common recipe and no batchnorm, so that against experiments 1.1 and "
            "1.3 the skip connections are the only change.",
    ),
    Experiment(
        name="exp2", title="Experiment 2: YourCodeNet", model_type="ycn",
        grid=(((32, 64, 128), (3, 6, 9, 12)),),
        # YourCodeNet has BatchNorm everywhere and a global-average-pool head,
        # so it tolerates a larger lr; its head needs no wide hidden layer.
        hparams=dict(EXP2_RECIPE, hidden_dims=[]),
        why="Experiment 2's recipe: the common one with twice the peak lr (BatchNorm "
            "in every unit keeps it stable) and label smoothing 0.1 (softer targets "
            "help short training runs); YourCodeNet computes GELU, and its "
            "global-average-pool head has no hidden FC layer.",
    ),
    # The two controls: experiment 2 changes architecture and recipe together.
    # Each control crosses one with the other, so that with experiment 2's L=9 run
    # and experiment 1.2's L=4, K=256 run (the best of each in the single-seed
    # study, by validation accuracy) they make a 2x2 design: architecture x recipe.
    Experiment(
        name="exp2_common", title="Control: YourCodeNet under the common recipe",
        model_type="ycn",
        grid=(((32, 64, 128), (9,)),),
        hparams=dict(COMMON_RECIPE, hidden_dims=[],
                     model_kw=dict(activation_type="relu")),
        why="Experiment 2's L=9 network trained as experiment 1's nets are: the common "
            "lr, no label smoothing, ReLU. Against exp2_L9 it measures the recipe; "
            "against exp1_2_L4_K256 the architecture.",
    ),
    Experiment(
        name="exp1_recipe2",
        title="Control: experiment 1's best network under experiment 2's recipe",
        model_type="cnn",
        grid=(((256,), (4,)),),
        hparams=dict(EXP2_RECIPE, hidden_dims=[512],
                     model_kw=dict(SAME_HEAD, activation_type="gelu")),
        why="Experiment 1.2's L=4, K=256 network trained as experiment 2's are: twice "
            "the lr, label smoothing 0.1, GELU. Against exp1_2_L4_K256 it measures the "
            "recipe; against exp2_L9 the architecture.",
    ),
]}

#: The full-data speedrun (``sweep speedrun --protocol speedrun``): YourCodeNet
#: with airbench94's widths (Jordan 2024) and the fast CIFAR-10 scripts' recipe,
#: Page (2018) and airbench: Nesterov SGD with a warm-up and a linear decay to
#: zero, label smoothing 0.2, scores scaled by 1/8; a frozen whitening first
#: layer; a global max pool; test-time flips and shifts. Not part of the study.
SPEEDRUN = Experiment(
    name="speedrun", title="The speedrun: YourCodeNet on all of CIFAR-10",
    model_type="ycn",
    grid=(((64, 256, 256), (2,)),),
    hparams=dict(optimizer="sgd", lr=0.4, momentum=0.9, reg=5e-4,
                 lr_schedule="linear", warmup=0.2, augment=True, label_smoothing=0.2,
                 hidden_dims=[],
                 model_kw=dict(whiten=2, tta=2, global_pool="max", logit_scale=0.125)),
    why="airbench94's network (widths 64, 256, 256, two convs each, pooling after "
        "the first) as a YourCodeNet, with a whitened first layer, trained as the "
        "fast CIFAR-10 scripts train: Nesterov SGD, a short warm-up and a linear "
        "decay, label smoothing 0.2; scored with flips and one-pixel shifts.",
)
#: Named runs a sweep knows besides the grid's experiments and checks.
NAMED_RUNS: dict[str, Experiment] = {SPEEDRUN.name: SPEEDRUN}

#: The experiments of Part 3's questions, in the grid's order (SPEC §3.7).
STUDY = ("exp1_1", "exp1_2", "exp1_3", "exp1_4", "exp2")
#: The controls that separate experiment 2's architecture from its recipe.
CONTROLS = ("exp2_common", "exp1_recipe2")


def _network_key(cfg: RunConfig) -> str:
    """What a run trains, whatever its experiment and seed: identity less name, seed."""
    spec = cfg.identity()
    spec.pop("run_name"), spec.pop("seed")
    return json.dumps(spec, sort_keys=True)


def run_owners(experiments: dict[str, Experiment], protocol: str | None,
               overrides: dict | None = None) -> dict[str, str]:
    """``{network key: experiment}``: which experiment's file holds each network.

    A network that several experiments list (1.1 and 1.2 share K = 32, 64 at
    L = 2, 4, 8) belongs to the first of them in the grid's order: it is trained
    once per seed, under that experiment's name, and shown in every experiment
    that lists it.
    """
    owners: dict[str, str] = {}
    for name, experiment in experiments.items():
        for cfg in experiment.runs(overrides, protocol=protocol):
            owners.setdefault(_network_key(cfg), name)
    return owners


def owned(cfg: RunConfig, owners: dict[str, str]) -> RunConfig:
    """``cfg`` under the name of the experiment whose file holds it (see run_owners)."""
    owner = owners.get(_network_key(cfg), cfg.run_name)
    return cfg if owner == cfg.run_name else cfg.replace(run_name=owner)


@dataclass(frozen=True, eq=False)
class Check:
    """A sensitivity check: some runs of the study trained again with one change.

    Not a protocol: the runs are the study's, under its protocol, with
    ``overrides`` on top, in ``results/<protocol>/checks/<name>/seed<seed>/``.

    Attributes:
        name: the check's name (also its folder).
        title: a line for the chapter.
        runs: file stems of study runs (``exp1_1_L8_K32``).
        overrides: the :class:`RunConfig` fields the check changes.
        seeds: the seeds it trains.
        why: what it tests.
    """
    name: str
    title: str
    runs: tuple[str, ...]
    overrides: dict
    seeds: tuple[int, ...]
    why: str = ""


CHECKS: dict[str, Check] = {c.name: c for c in [
    Check(
        name="epochs15", title="Budget check: three times the epochs",
        runs=("exp1_1_L2_K32", "exp1_1_L4_K32", "exp1_1_L8_K32", "exp1_1_L16_K32",
              "exp1_4_L8_K32", "exp1_4_L16_K32", "exp1_4_L32_K32"),
        overrides=dict(epochs=15), seeds=(42,),
        why="Experiments 1.1 and 1.4 at K=32 with 15 epochs instead of 5, one seed: "
            "which conclusions about depth and skips hold at a longer budget.",
    ),
    Check(
        name="float32", title="Numerics check: float32 instead of bfloat16",
        runs=("exp1_1_L2_K32", "exp1_1_L4_K64", "exp1_4_L8_K32", "exp2_L3_K32-64-128"),
        overrides=dict(cpu_bf16=False), seeds=(42, 43, 44),
        why="Four cheap networks of the study in float32, three seeds each: does "
            "bfloat16 autocast change the accuracy beyond seed noise?",
    ),
]}


def check_runs(check: Check, protocol: str | None = "cpu",
               overrides: dict | None = None,
               experiments: dict[str, Experiment] | None = None) -> list[RunConfig]:
    """The runs of a check: its study runs (under their owners' names), changed.

    Raises:
        ValueError: a run the grid does not hold, named.
    """
    experiments = EXPERIMENTS if experiments is None else experiments
    owners = run_owners(experiments, protocol, overrides)
    study = {owned(cfg, owners).file_stem: owned(cfg, owners)
             for experiment in experiments.values()
             for cfg in experiment.runs(overrides, protocol=protocol)}
    missing = [stem for stem in check.runs if stem not in study]
    if missing:
        raise ValueError(f"check {check.name!r}: no run {', '.join(missing)} in the "
                         f"grid")
    return [study[stem].replace(**check.overrides) for stem in check.runs]


#: The largest grid file read.
GRID_MAX_BYTES = 4 << 20


def load_grid_file(path: str | os.PathLike) -> dict[str, Experiment]:
    """Experiments from a JSON file.

    The file holds ``{name: {model_type, grid, hparams?, title?, why?}}``: for
    small custom sweeps (and the tests); the same form as :data:`EXPERIMENTS`.

    Raises:
        ValueError: for every problem, naming the file.
    """
    path = Path(path)
    data = read_json(path, what="grid file", max_bytes=GRID_MAX_BYTES)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"grid file {path}: expected a JSON object of experiments")
    try:
        return {name: Experiment.from_dict(name, d) for name, d in data.items()}
    except ValueError as e:
        raise ValueError(f"grid file {path}: {e}") from None


def resolve_grid(grid: dict[str, Experiment] | str | os.PathLike | None
                 ) -> dict[str, Experiment]:
    """The experiments to run.

    :data:`EXPERIMENTS` for None, a dict as it is, or the experiments of a grid
    file.
    """
    if grid is None:
        return EXPERIMENTS
    if isinstance(grid, dict):
        return grid
    return load_grid_file(grid)
