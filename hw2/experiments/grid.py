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

from hw2.experiments.config import PROTOCOLS, Protocol, RunConfig, auto_pool_every

__all__ = [
    "COMMON_HPARAMS",
    "SAME_HEAD",
    "Experiment",
    "EXPERIMENTS",
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

    @classmethod
    def from_dict(cls, name: str, d: dict) -> Experiment:
        """An experiment of a grid file.

        Its entry is ``{model_type, grid, hparams?, title?, why?}``.
        """
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
            experiment.runs(protocol=None)  # every grid point must be a valid RunConfig
        except ValueError as e:
            raise ValueError(f"experiment {name!r}: {e}") from None
        return experiment


# Shared by every experiment of Part 3, so that runs differ in architecture,
# not in recipe. How much data and how many epochs is the protocol's business
# (PROTOCOLS); this is the recipe.
COMMON_HPARAMS = dict(
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
    hidden_dims=[512],     # one hidden FC layer for every net
)
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
        why="The shared recipe: Adam with a warmup-then-linear-decay schedule and "
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
        why="The shared recipe, as in 1.1, so widths are compared at an equal training "
            "budget.",
    ),
    Experiment(
        name="exp1_3", title="Experiment 1.3: growing widths K=[64, 128, 256]",
        model_type="cnn",
        grid=(((64, 128, 256), (1, 2, 3, 4)),),
        hparams=dict(COMMON_HPARAMS, model_kw=SAME_HEAD),
        why="The shared recipe, as in 1.1; L counts convs per width, "
            "so L=4 is 12 convs.",
    ),
    Experiment(
        name="exp1_4", title="Experiment 1.4: residual networks", model_type="resnet",
        grid=(((32,), (8, 16, 32)), ((64, 128, 256), (2, 4, 8))),
        # No batchnorm: with the plain nets of 1.1 and 1.3 the only difference
        # is the skip connection, which is what this experiment isolates.
        hparams=dict(COMMON_HPARAMS, model_kw=dict(SAME_HEAD, batchnorm=False)),
        why="The shared recipe and no batchnorm, so that against experiments 1.1 and "
            "1.3 the skip connections are the only change.",
    ),
    Experiment(
        name="exp2", title="Experiment 2: YourCodeNet", model_type="ycn",
        grid=(((32, 64, 128), (3, 6, 9, 12)),),
        # YourCodeNet has BatchNorm everywhere and a global-average-pool head,
        # so it tolerates a larger lr; its head needs no wide hidden layer.
        hparams=dict(COMMON_HPARAMS, lr=4e-3, hidden_dims=[], label_smoothing=0.1),
        why="The shared recipe with a higher peak lr (BatchNorm in every unit keeps "
            "it stable), no hidden FC layer (global average pooling gives a compact "
            "feature vector) and label smoothing 0.1 (softer targets help short "
            "training runs).",
    ),
]}


def load_grid_file(path: str | os.PathLike) -> dict[str, Experiment]:
    """Experiments from a JSON file.

    The file holds ``{name: {model_type, grid, hparams?, title?, why?}}``: for
    small custom sweeps (and the tests); the same form as :data:`EXPERIMENTS`.

    Raises:
        ValueError: for every problem, naming the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read grid file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"grid file {path} is not a text file (not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"grid file {path} is not valid JSON: {e}") from None
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
