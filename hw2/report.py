"""Tables and figures of the architecture study, read from its result files.

The experiments chapter (``book/part3/experiments.md``) shows, for each
experiment of :data:`hw2.experiments.EXPERIMENTS`,

- which protocol it shows (:func:`shown_protocol`: the ``gpu`` results when
  every run of the experiment has one, else the ``cpu`` results);
- every run's architecture: parameters of the convolutions and of the head,
  the feature shape that enters the head (:func:`architecture_table`);
- every run's result: the epoch with the lowest validation loss, the
  validation and test accuracy there, epochs trained, seconds per epoch
  (:func:`summary_table`), and its curves (:func:`experiment_figure`);
- which runs are missing (:func:`missing_note`), and where and how fast each
  run was trained (:func:`status_table`).

Everything here reads only result files and the grid; nothing trains.
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw2._io import repo_root
from hw2.experiments import (EXPERIMENTS, RunConfig, build_model, describe_model,
                             experiment_status, load_experiment, load_record,
                             results_dir)

__all__ = [
    "PREFERENCE",
    "Table",
    "RunSummary",
    "study_runs",
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


@dataclass
class RunSummary:
    """One run of the study: its configuration, architecture and result (if any)."""

    cfg: RunConfig
    path: Path | None
    model: dict
    record: dict | None = None
    fit: Any = None
    extras: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cfg.file_stem

    @property
    def done(self) -> bool:
        return self.record is not None

    @property
    def best_epoch(self) -> int:
        """The epoch of the lowest validation loss (the one the run keeps)."""
        return self.record.get("best_epoch") or self.fit.best_epoch

    @property
    def best_val_acc(self) -> float:
        curve = self.fit.val_acc or self.fit.test_acc
        return curve[self.best_epoch - 1]

    @property
    def test_acc_at_best(self) -> float:
        return self.fit.test_acc[self.best_epoch - 1]

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.record["timing"]["epoch_s"]) / max(1, self.fit.num_epochs)

    @property
    def total_seconds(self) -> float:
        return self.record["timing"]["total_s"]

    @property
    def images_per_second(self) -> float | None:
        return self.record["timing"].get("train_images_per_s")

    @property
    def diverged(self) -> bool:
        return bool(self.record.get("diverged"))


def _root(root) -> Path:
    return Path(root) if root is not None else results_dir()


def study_runs(name: str, protocol: str, root: str | os.PathLike | None = None
               ) -> list[RunSummary]:
    """Every run of experiment ``name`` under ``protocol``, in grid order.

    Each comes with its result, if it has one.

    ``root`` is the folder holding ``gpu/`` and ``cpu/`` (default
    :func:`hw2.experiments.results_dir`). The architecture comes from the built
    model, so it is known for missing runs too.
    """
    folder = _root(root) / protocol
    runs = []
    for cfg, path in experiment_status(name, folder, protocol=protocol):
        summary = RunSummary(cfg, path, describe_model(build_model(cfg)))
        if path is not None:
            summary.record = load_record(path)
            summary.fit = load_experiment(path)[1]
        runs.append(summary)
    return runs


def shown_protocol(name: str, root: str | os.PathLike | None = None) -> str:
    """``'gpu'`` when every run of the experiment has a gpu result, else ``'cpu'``."""
    for protocol in PREFERENCE[:-1]:
        if all(r.done for r in study_runs(name, protocol, root)):
            return protocol
    return PREFERENCE[-1]


def hardware_label(runs: list[RunSummary]) -> str:
    """``protocol cpu, Intel(R) Xeon(R) Processor (2 threads)``: who ran the results."""
    done = [r for r in runs if r.done]
    if not done:
        return f"protocol {runs[0].cfg.protocol}, no results yet" if runs else "no runs"
    devices = sorted({_device(r.record) for r in done})
    return f"protocol {done[0].cfg.protocol}, {' / '.join(devices)}"


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
        model = describe_model(build_model(cfg))
        rows.append([cfg.file_stem, cfg.layers_per_block, len(cfg.channels),
                     cfg.resolved_pool_every, _shape(model.get("feature_shape")),
                     f"{model.get('feature_parameters', 0):,}",
                     f"{model.get('head_parameters', 0):,}",
                     f"{model['parameters']:,}"])
    return Table(["run", "L", "convs", "P", "features into the head",
                  "conv parameters", "head parameters", "all parameters"], rows)


def summary_table(runs: list[RunSummary]) -> Table:
    """Parameters, the selected epoch and its accuracies, epochs, seconds per epoch."""
    rows = []
    for r in runs:
        if not r.done:
            rows.append([r.name, f"{r.model['parameters']:,}", "missing",
                         "", "", "", ""])
            continue
        rows.append([r.name, f"{r.model['parameters']:,}", f"{r.best_val_acc:.1f}",
                     r.best_epoch, f"{r.test_acc_at_best:.1f}",
                     f"{r.fit.num_epochs}" + (" (diverged)" if r.diverged else ""),
                     f"{r.seconds_per_epoch:.1f}"])
    return Table(["run", "parameters", "best val acc (%)", "at epoch",
                  "test acc (%) there", "epochs", "s / epoch"], rows)


def missing_note(runs: list[RunSummary], command_protocol: str | None = None) -> str:
    """A sentence naming the runs without a result file, or saying all are there."""
    name = runs[0].cfg.run_name
    protocol = command_protocol or runs[0].cfg.protocol
    missing = [r.name for r in runs if not r.done]
    if not missing:
        return f"All {len(runs)} runs of {name} have {protocol} result files."
    return (f"{len(missing)} of {len(runs)} result files of {name} ({protocol} "
            f"protocol) are missing: {', '.join(missing)}. `python -m hw2.experiments "
            f"sweep {name} --protocol {protocol}` trains them; the tables and figures "
            f"show the runs that exist.")


def experiment_figure(runs: list[RunSummary], title: str):
    """The curves of the runs with results, overlaid (a placeholder if there are none).

    The figure's title names the protocol and the hardware that produced it.
    """
    import matplotlib.pyplot as plt

    from hw2.plot import plot_fit

    label = hardware_label(runs)
    done = [r for r in runs if r.done]
    if not done:
        fig, ax = plt.subplots(figsize=(8, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no result files yet ({label})", ha="center",
                va="center")
        return fig
    fig = None
    for r in done:
        ks = "-".join(map(str, r.cfg.filters_per_layer))
        fig, _ = plot_fit(r.fit, fig=fig, legend=f"L{r.cfg.layers_per_block}_K{ks}")
    fig.suptitle(f"{title}\n{label}")
    fig.tight_layout()
    return fig


def status_table(root: str | os.PathLike | None = None) -> Table:
    """Every run of the grid with a result: protocol, device, wall time and images/s."""
    rows = []
    for name in EXPERIMENTS:
        for protocol in PREFERENCE:
            for r in study_runs(name, protocol, root):
                if not r.done:
                    continue
                ips = r.images_per_second
                rows.append([r.name, protocol, _device(r.record),
                             f"{r.total_seconds:,.0f}",
                             f"{ips:,.0f}" if ips and math.isfinite(ips) else "n/a"])
    return Table(["run", "protocol", "device", "wall time (s)", "training images/s"],
                 rows)


def quiet_timing(protocol: str = "cpu") -> dict | None:
    """The epoch times of every run of ``protocol`` on a quiet machine, if measured.

    ``benchmarks/study_time.py --protocol P --json benchmarks/study_time_P.json``
    writes them: per run the timed epochs (``epoch_s``) and the projected run
    time (``projected_run_s``), and the whole study's (``projected_total_s``).
    None when that file does not exist.
    """
    path = repo_root() / "benchmarks" / f"study_time_{protocol}.json"
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

