"""Tables, figures and statistics of the architecture study, read from its result files.

The experiments chapter (``book/part3/experiments.md``) shows, for each
experiment of :data:`hw2.experiments.EXPERIMENTS`,

- which protocol it shows (:func:`shown_protocol`: the ``gpu`` results when
  every run of the experiment has all the protocol's seeds, else ``cpu``);
- every run's architecture: parameters of the convolutions and of the head,
  the feature shape that enters the head (:func:`architecture_table`);
- every run's result over its seeds: the validation and test accuracy at the
  epoch each seed keeps, as a mean with a 95% interval and the number of seeds
  (:func:`summary_table`), and its validation curve, the mean over seeds with a
  band from the lowest to the highest seed (:func:`experiment_figure`);
- which runs are missing (:func:`missing_note`), and where and how fast each
  run was trained (:func:`status_table`).

**Statistics** (:mod:`hw2.stats`, whose names this module offers too): a
configuration's accuracy is its mean over seeds with a 95% t interval, two
configurations are compared seed by seed, and :func:`verdict` is the chapter's
rule: one beats the other when the interval of their difference excludes zero;
otherwise the two are indistinguishable.

Everything here reads only result files and the grid; nothing trains.
"""
from __future__ import annotations

import functools
import html
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw2._io import book_path
from hw2.stats import (Estimate, binomial_se, estimate, paired_difference, t_quantile,
                       verdict)
from hw2.experiments import (CHECKS, EXPERIMENTS, PROTOCOLS, RunConfig, build_model,
                             describe_model, experiment_status, load_experiment,
                             load_record, result_path, result_state,
                             study_results_dir)
from hw2.experiments.grid import check_runs, owned, run_owners

__all__ = [
    "PREFERENCE",
    "t_quantile",
    "Estimate",
    "estimate",
    "paired_difference",
    "verdict",
    "binomial_se",
    "Table",
    "SeedRun",
    "RunSummary",
    "seed_folders",
    "study_runs",
    "check_summaries",
    "shown_protocol",
    "architecture_table",
    "summary_table",
    "missing_note",
    "experiment_figure",
    "status_table",
    "hardware_label",
    "quiet_timing",
]

#: The protocols in the order the chapter prefers them.
PREFERENCE = ("gpu", "cpu")


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

@dataclass
class Table:
    """Rows under a header: HTML in Jupyter, a Markdown table in the book."""

    header: list[str]
    rows: list[list[Any]]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                       + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _repr_markdown_(self) -> str:
        def cell(value) -> str:
            return str(value).replace("|", "\\|")
        lines = ["| " + " | ".join(map(cell, self.header)) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def column(self, name: str) -> list:
        """The values of one column, by its header."""
        i = self.header.index(name)
        return [row[i] for row in self.rows]


# --------------------------------------------------------------------------
# Runs and their seeds
# --------------------------------------------------------------------------

@dataclass
class SeedRun:
    """One seed of a run: its result file, read."""

    seed: int
    path: Path
    record: dict
    fit: Any

    @property
    def best_epoch(self) -> int:
        """The epoch of the lowest validation loss (the one the run keeps)."""
        return self.record.get("best_epoch") or self.fit.best_epoch

    def at_best(self, curve: str) -> float:
        """The value of ``curve`` (``'val_acc'``, ``'test_acc'``) at the kept epoch."""
        return getattr(self.fit, curve)[self.best_epoch - 1]

    @property
    def diverged(self) -> bool:
        return bool(self.record.get("diverged"))

    @property
    def seconds(self) -> float:
        return self.record["timing"]["total_s"]


@dataclass
class RunSummary:
    """One configuration of the study: its architecture and its seeds' results.

    ``stored_as`` is the stem of the files that hold it, which is another
    experiment's for a network two experiments share
    (:func:`hw2.experiments.grid.run_owners`).
    """

    cfg: RunConfig
    model: dict
    seeds: dict[int, SeedRun] = field(default_factory=dict)
    stored_as: str = ""

    @property
    def name(self) -> str:
        return self.cfg.file_stem

    @property
    def label(self) -> str:
        """``L8_K32`` (``L2_K64-128-256``): the run within its experiment."""
        return f"L{self.cfg.layers_per_block}_K" + "-".join(
            map(str, self.cfg.filters_per_layer))

    @property
    def shared(self) -> bool:
        """Whether the files are another experiment's (the same network)."""
        return bool(self.stored_as) and self.stored_as != self.name

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def done(self) -> bool:
        return bool(self.seeds)

    def values(self, curve: str = "val_acc") -> dict[int, float]:
        """``{seed: value of curve at the seed's kept epoch}``."""
        return {s: r.at_best(curve) for s, r in self.seeds.items()}

    def stat(self, curve: str = "val_acc") -> Estimate:
        """Mean over seeds with its 95% interval of ``curve`` at the kept epochs."""
        return estimate(self.values(curve).values())

    @property
    def val_acc(self) -> Estimate:
        return self.stat("val_acc")

    @property
    def test_acc(self) -> Estimate:
        return self.stat("test_acc")

    def minus(self, other: RunSummary, curve: str = "val_acc") -> Estimate:
        """This configuration minus ``other``, seed by seed (paired_difference)."""
        return paired_difference(self.values(curve), other.values(curve))

    def curves(self, curve: str = "val_acc") -> dict[int, list[float]]:
        return {s: list(getattr(r.fit, curve)) for s, r in self.seeds.items()}

    @property
    def diverged_seeds(self) -> list[int]:
        return [s for s, r in self.seeds.items() if r.diverged]

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall seconds of an epoch over every epoch of every seed."""
        epochs = [t for r in self.seeds.values() for t in r.record["timing"]["epoch_s"]]
        return statistics.fmean(epochs)

    @property
    def total_seconds(self) -> float:
        """Wall seconds of every seed together."""
        return sum(r.seconds for r in self.seeds.values())


def _root(root) -> Path:
    return Path(root) if root is not None else study_results_dir()


def seed_folders(folder: str | os.PathLike) -> dict[int, Path]:
    """``{seed: folder/seed<seed>}`` for every seed folder there, by seed."""
    folder = Path(folder)
    found = {}
    if folder.is_dir():
        for child in folder.iterdir():
            match = re.fullmatch(r"seed(\d+)", child.name)
            if match and child.is_dir():
                found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def _read_seed(seed: int, path: Path) -> SeedRun:
    return SeedRun(seed, path, load_record(path), load_experiment(path)[1])


@functools.lru_cache(maxsize=None)
def _model_info(cfg_json: str) -> dict:
    return describe_model(build_model(RunConfig.from_dict(json.loads(cfg_json))))


def _describe(cfg: RunConfig) -> dict:
    """The built model's description (cached: the same networks come back often)."""
    spec = {k: v for k, v in cfg.to_dict().items() if k not in ("seed", "out_dir")}
    return _model_info(json.dumps(spec, sort_keys=True))


def study_runs(name: str, protocol: str, root: str | os.PathLike | None = None
               ) -> list[RunSummary]:
    """Every run of experiment ``name`` under ``protocol``, in grid order.

    Each comes with the results of every seed folder
    (``<root>/<protocol>/seed<N>/``) that holds a valid file of it.

    ``root`` is the folder holding ``gpu/`` and ``cpu/`` (default
    :func:`hw2.experiments.study_results_dir`: the checkout's ``results/``, or
    the copy an installed wheel carries). The architecture comes from the built
    model, so it is known for missing runs too.
    """
    owners = run_owners(EXPERIMENTS, protocol)
    runs = [RunSummary(cfg, _describe(cfg), stored_as=owned(cfg, owners).file_stem)
            for cfg in EXPERIMENTS[name].runs(protocol=protocol)]
    for seed, folder in seed_folders(_root(root) / protocol).items():
        status = experiment_status(name, folder, protocol=protocol, seed=seed)
        for summary, (_, path) in zip(runs, status):
            if path is not None:
                summary.seeds[seed] = _read_seed(seed, path)
    return runs


def check_summaries(check: str, protocol: str = "cpu",
                    root: str | os.PathLike | None = None) -> list[RunSummary]:
    """The runs of a sensitivity check (``hw2.experiments.CHECKS``), with their seeds.

    Read from ``<root>/<protocol>/checks/<check>/seed<N>/``.
    """
    folders = seed_folders(_root(root) / protocol / "checks" / check)
    runs = []
    for cfg in check_runs(CHECKS[check], protocol):
        summary = RunSummary(cfg, _describe(cfg), stored_as=cfg.file_stem)
        for seed, folder in folders.items():
            seeded = cfg.replace(seed=seed, out_dir=os.fspath(folder))
            if result_state(seeded)[0] == "done":
                summary.seeds[seed] = _read_seed(seed, result_path(seeded))
        runs.append(summary)
    return runs


def shown_protocol(name: str, root: str | os.PathLike | None = None) -> str:
    """``'gpu'`` when every run of the experiment has all the gpu protocol's seeds.

    Else ``'cpu'``.
    """
    for protocol in PREFERENCE[:-1]:
        wanted = set(PROTOCOLS[protocol].seeds)
        if all(wanted <= set(r.seeds) for r in study_runs(name, protocol, root)):
            return protocol
    return PREFERENCE[-1]


def hardware_label(runs: list[RunSummary]) -> str:
    """``protocol cpu, AMD EPYC (2 threads), bfloat16``: who ran the results, how."""
    done = [s for r in runs for s in r.seeds.values()]
    if not done:
        return f"protocol {runs[0].cfg.protocol}, no results yet" if runs else "no runs"
    devices = sorted({_device(s.record) for s in done})
    numerics = sorted({s.record["device"].get("amp", "float32") for s in done})
    return f"protocol {runs[0].cfg.protocol}, {' / '.join(devices)}, " \
           f"{' / '.join(numerics)}"


def _device(record: dict) -> str:
    device = record["device"]
    threads = f" ({device['threads']} threads)" if device.get("type") == "cpu" \
        and device.get("threads") else ""
    return f"{device['name']}{threads}"


def _shape(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def architecture_table(name: str) -> Table:
    """Every run's architecture: convolutions, pooling, head input and parameters."""
    rows = []
    for cfg in EXPERIMENTS[name].runs():
        model = _describe(cfg)
        rows.append([cfg.file_stem, cfg.layers_per_block, len(cfg.channels),
                     cfg.resolved_pool_every, _shape(model.get("feature_shape")),
                     f"{model.get('feature_parameters', 0):,}",
                     f"{model.get('head_parameters', 0):,}",
                     f"{model['parameters']:,}"])
    return Table(["run", "L", "convs", "P", "features into the head",
                  "conv parameters", "head parameters", "all parameters"], rows)


def summary_table(runs: list[RunSummary]) -> Table:
    """Per run: parameters, validation and test accuracy (mean ± 95% interval), n.

    The accuracies are those of the epoch each seed keeps (its lowest validation
    loss); ``kept epoch`` is the range of those epochs, ``s / epoch`` the mean.
    """
    rows = []
    for r in runs:
        name = r.name + (f" (= {r.stored_as})" if r.shared else "")
        if not r.done:
            rows.append([name, f"{r.model['parameters']:,}", "missing", "", 0, "", ""])
            continue
        kept = sorted({s.best_epoch for s in r.seeds.values()})
        kept_text = f"{kept[0]}" if len(kept) == 1 else f"{kept[0]}–{kept[-1]}"
        diverged = f" ({len(r.diverged_seeds)} diverged)" if r.diverged_seeds else ""
        rows.append([name, f"{r.model['parameters']:,}", r.val_acc.text(),
                     r.test_acc.text(), r.n, kept_text + diverged,
                     f"{r.seconds_per_epoch:.1f}"])
    return Table(["run", "parameters", "val acc (%)", "test acc (%)", "seeds",
                  "kept epoch", "s / epoch"], rows)


def missing_note(runs: list[RunSummary], seeds: tuple[int, ...] | None = None,
                 command_protocol: str | None = None) -> str:
    """A sentence naming the runs that lack a seed, or saying all are there."""
    name = runs[0].cfg.run_name
    protocol = command_protocol or runs[0].cfg.protocol
    seeds = tuple(seeds or PROTOCOLS[protocol].seeds)
    short = [f"{r.name} ({r.n} of {len(seeds)})" for r in runs
             if not set(seeds) <= set(r.seeds)]
    if not short:
        return (f"All {len(runs)} runs of {name} have {protocol} result files for the "
                f"seeds {', '.join(map(str, seeds))}.")
    return (f"{len(short)} of {len(runs)} runs of {name} ({protocol} protocol) lack "
            f"seeds: {', '.join(short)}. `python -m hw2.experiments sweep {name} "
            f"--protocol {protocol}` trains them; the tables and figures show the "
            f"seeds that exist.")


def experiment_figure(runs: list[RunSummary], title: str, curve: str = "val_acc",
                      ylabel: str = "Validation accuracy (%)",
                      labels: list[str] | None = None):
    """One panel: per run, the mean curve over seeds, a marker per epoch, and a band.

    The band spans the lowest to the highest seed at each epoch. One legend, each
    run named by ``labels`` (one per run, in order) or else by its ``L``/``K``
    within its experiment; the title names the protocol, the hardware and the
    numerics. A placeholder when no run has results.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if labels is not None and len(labels) != len(runs):
        raise ValueError(
            f"experiment_figure: {len(labels)} labels for {len(runs)} runs")
    label = hardware_label(runs)
    done = [(r, name) for r, name in zip(runs, labels or [r.label for r in runs])
            if r.done]
    if not done:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no result files yet\n({label})", ha="center",
                va="center")
        return fig
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r, name in done:
        curves = list(r.curves(curve).values())
        length = min(len(c) for c in curves)
        epochs = range(1, length + 1)
        columns = [[c[i] for c in curves] for i in range(length)]
        mean = [statistics.fmean(col) for col in columns]
        line, = ax.plot(epochs, mean, marker="o", markersize=4,
                        label=f"{name} (n={r.n})")
        if r.n > 1:
            ax.fill_between(epochs, [min(col) for col in columns],
                            [max(col) for col in columns], color=line.get_color(),
                            alpha=0.18, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.4)
    ax.set_title(f"{title}\n{label}", fontsize="medium")
    ax.legend(fontsize="small", ncol=2 if len(done) > 4 else 1)
    fig.tight_layout()
    return fig


def status_table(root: str | os.PathLike | None = None) -> Table:
    """Per run with results: protocol, device, seeds, wall time and images/s."""
    rows = []
    for name in EXPERIMENTS:
        for protocol in PREFERENCE:
            for r in study_runs(name, protocol, root):
                if not r.done or r.shared:
                    continue
                rates = [s.record["timing"].get("train_images_per_s")
                         for s in r.seeds.values()]
                rates = [x for x in rates if x and math.isfinite(x)]
                devices = sorted({_device(s.record) for s in r.seeds.values()})
                rows.append([r.name, protocol, " / ".join(devices), r.n,
                             f"{r.total_seconds:,.0f}",
                             f"{statistics.median(rates):,.0f}" if rates else "n/a"])
    return Table(["run", "protocol", "device", "seeds", "wall time, all seeds (s)",
                  "training images/s (median)"], rows)


def quiet_timing(protocol: str = "cpu") -> dict | None:
    """The epoch times of every run of ``protocol`` on a quiet machine, if measured.

    ``benchmarks/study_time.py --protocol P --json benchmarks/study_time_P.json``
    writes them: per run the timed epochs (``epoch_s``) and the projected run
    time (``projected_run_s``), and the whole study's (``projected_total_s``).
    None when that file does not exist.
    """
    path = book_path(f"benchmarks/study_time_{protocol}.json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    missing = {"epoch_s", "projected_run_s", "projected_total_s"} - set(data)
    if missing:
        raise ValueError(f"{path} lacks {', '.join(sorted(missing))}")
    return data
