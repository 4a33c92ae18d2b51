"""Plots of training results; they read only plain data (FitResult or its JSON dict)."""
from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

__all__ = ["plot_fit", "plot_exp_results", "PANEL_TITLES"]

_SPLITS = ("train", "val", "test")
# Panel titles in words, for readers (the curve's field name is kept as the axes'
# label).
PANEL_TITLES = {
    "train_loss": "Training loss", "train_acc": "Training accuracy",
    "val_loss": "Validation loss", "val_acc": "Validation accuracy",
    "test_loss": "Test loss", "test_acc": "Test accuracy",
}


def _curves(fit_res) -> dict[str, list[float]]:
    """The curves of a FitResult, its ``to_dict()``, or any mapping/object with them.

    Training and test curves are required; validation curves are taken when
    present and not empty.
    """
    if isinstance(fit_res, Mapping):
        get = fit_res.get
    else:
        def get(name):
            return getattr(fit_res, name, None)
    curves = {}
    for name in PANEL_TITLES:
        values = get(name)
        if values is None or (name.startswith("val") and not len(values)):
            if name.startswith("val"):
                continue
            raise TypeError(
                f"plot_fit needs a FitResult or a dict with train_loss, "
                f"train_acc, test_loss, test_acc; {type(fit_res).__name__} has "
                f"no {name!r}"
            )
        curves[name] = [float("nan") if v is None else float(v) for v in values]
    return curves


def _epochs_axis(values: list[float], epochs: int) -> np.ndarray:
    """Where each value sits on the epoch axis.

    One value per epoch: at 1, 2, ... A loss per *batch* (the original
    course's files hold ``k`` losses per epoch): at fractions of an epoch,
    ``1/k, 2/k, ...``, so both kinds of curve share the axis.
    """
    n = len(values)
    if epochs and n > epochs and n % epochs == 0:
        return np.arange(1, n + 1) / (n // epochs)
    return np.arange(1, n + 1)


def plot_fit(fit_res, fig=None, log_loss: bool = False, legend: str | None = None):
    """Plot a FitResult as a grid: one row per split, columns loss and accuracy.

    Args:
        fit_res: a ``hw2.training.FitResult`` or its ``to_dict()``. The rows
            are training, validation (when the run has a validation split) and
            test. Losses recorded per batch (the original course's files) are
            drawn at fractions of an epoch.
        fig: a figure returned by an earlier call; the curves are added to it,
            so several runs overlay (a run plotted again under the same legend
            label replaces its old curves). The first call's rows stay.
        log_loss: plot the losses on a log scale.
        legend: the label of this run in the legends.

    Returns:
        ``(fig, axes)``: ``axes`` holds the panels row by row (``train_loss,
        train_acc, [val_loss, val_acc,] test_loss, test_acc``); each panel is
        titled in words (:data:`PANEL_TITLES`) and its axes carry the field
        name as their label (``ax.get_label() == "train_loss"``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = _curves(fit_res)
    if fig is None:
        splits = [s for s in _SPLITS if f"{s}_loss" in curves]
        fig, axes = plt.subplots(
            nrows=len(splits), ncols=2, figsize=(12, 4 * len(splits)), sharex="col"
        )
        axes = axes.reshape(-1)
    else:
        axes = np.array(fig.axes)
        names = [ax.get_label() for ax in axes]
        if len(axes) not in (4, 6) or not set(names) <= set(PANEL_TITLES):
            raise ValueError(f"fig must come from plot_fit (4 or 6 panels), it has "
                             f"{len(axes)} axes")
    if legend is not None:  # re-plotting a run replaces it
        for ax in axes:
            for line in list(ax.lines):
                if line.get_label() == legend:
                    line.remove()

    epochs = len(curves["train_acc"])
    rows = len(axes) // 2
    splits = [s for s in _SPLITS if rows == 3 or s != "val"]
    for ax, (split, metric) in zip(axes, itertools.product(splits, ("loss", "acc"))):
        name = f"{split}_{metric}"
        ax.set_title(PANEL_TITLES[name])
        ax.set_label(name)
        if name in curves:
            values = curves[name]
            ax.plot(_epochs_axis(values, epochs), values, label=legend)
        # epochs are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if split == "test":  # the bottom row; the rows above share its x axis
            ax.set_xlabel("Epoch")
        if metric == "loss":
            ax.set_ylabel("Loss (log)" if log_loss else "Loss")
            if log_loss:
                ax.set_yscale("log")
        else:
            ax.set_ylabel("Accuracy (%)")
        if any(not line.get_label().startswith("_") for line in ax.lines):
            ax.legend()
        ax.grid(True)
    return fig, axes


# ---------------------------------------------------------------------------
# Experiment results (the JSON files of hw2.experiments)
# ---------------------------------------------------------------------------

def _run_label(config: Mapping) -> str:
    """``L8_K64`` (or ``L2_K64-128-256``) from a result file's config."""
    ks = "-".join(str(k) for k in config.get("filters_per_layer", []))
    return f"L{config.get('layers_per_block', '?')}_K{ks}"


def _run_sort_key(config: Mapping):
    return (list(config.get("filters_per_layer", [])),
            config.get("layers_per_block", 0))


def plot_exp_results(pattern: str, results_dir=None, log_loss: bool = False, fig=None):
    """Overlay the curves of every result file matching a glob pattern.

    Each run is labelled ``L<L>_K<k1>-<k2>...`` from its config; runs are
    ordered by K, then L.

    Args:
        pattern: a file-name glob inside ``results_dir``, e.g.
            ``"exp1_1_L*_K32.json"`` (``.json`` is appended when missing).
        results_dir: folder of the result files; default
            :func:`hw2.experiments.results_dir` (``$HW2_RESULTS_DIR``, the
            repository's ``results/``, or ``./results`` outside the
            repository).
        log_loss, fig: as for :func:`plot_fit`.

    Returns:
        ``(fig, axes)``, or None after printing a plain message when no file
        matches.

    Raises:
        ExperimentFileError: a corrupt file (the message names it).
    """
    from pathlib import Path

    from hw2.experiments import load_experiment, results_dir as default_results_dir

    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    if not pattern.endswith(".json"):
        pattern += ".json"
    files = sorted(folder.glob(pattern))
    if not files:
        print(f"No result files match {pattern!r} in {folder}.")
        return None
    runs = [load_experiment(path) for path in files]
    runs.sort(key=lambda run: _run_sort_key(run[0]))
    axes = None
    for config, fit_res in runs:
        fig, axes = plot_fit(
            fit_res, fig=fig, log_loss=log_loss, legend=_run_label(config)
        )
    return fig, axes

