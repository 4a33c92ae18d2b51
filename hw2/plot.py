"""Plots of training results; they read only plain data (FitResult or its JSON dict)."""
from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

__all__ = ["plot_fit", "plot_exp_results", "PANEL_TITLES"]

_CURVES = ("train_loss", "train_acc", "test_loss", "test_acc")
# Panel titles in words, for readers (the curve's field name is kept as the axes' label).
PANEL_TITLES = {
    "train_loss": "Training loss", "train_acc": "Training accuracy",
    "test_loss": "Test loss", "test_acc": "Test accuracy",
}


def _curves(fit_res) -> dict[str, list[float]]:
    """The four per-epoch curves of a FitResult, a FitResult.to_dict(), or any mapping/object with them."""
    get = fit_res.get if isinstance(fit_res, Mapping) else lambda name: getattr(fit_res, name, None)
    curves = {}
    for name in _CURVES:
        values = get(name)
        if values is None:
            raise TypeError(f"plot_fit needs a FitResult or a dict with {', '.join(_CURVES)}; "
                            f"{type(fit_res).__name__} has no {name!r}")
        curves[name] = [float(v) for v in values]
    return curves


def plot_fit(fit_res, fig=None, log_loss: bool = False, legend: str | None = None):
    """Plot a FitResult as a 2x2 grid: rows train/test, columns loss/accuracy.

    fit_res: a ``hw2.training.FitResult`` or its ``to_dict()`` (one value per epoch).
    fig: a figure returned by an earlier call; the curves are added to it, so
        several runs overlay (a run plotted again under the same legend label
        replaces its old curves).
    log_loss: plot the losses on a log scale.
    legend: the label of this run in the legends.

    Returns (fig, axes) with axes a length-4 array in the order
    train_loss, train_acc, test_loss, test_acc; each panel is titled in words
    (:data:`PANEL_TITLES`, "Training loss", ...) and its axes carry the field
    name as their label (``ax.get_label() == "train_loss"``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = _curves(fit_res)
    if fig is None:
        fig, axes = plt.subplots(nrows=2, ncols=2, figsize=(12, 8), sharex="col")
        axes = axes.reshape(-1)
    else:
        if len(fig.axes) != 4:
            raise ValueError(f"fig must come from plot_fit (4 axes), it has {len(fig.axes)}")
        axes = np.array(fig.axes)
    if legend is not None:  # re-plotting a run replaces it
        for ax in axes:
            for line in list(ax.lines):
                if line.get_label() == legend:
                    line.remove()

    for ax, (split, metric) in zip(axes, itertools.product(("train", "test"), ("loss", "acc"))):
        values = curves[f"{split}_{metric}"]
        ax.plot(np.arange(1, len(values) + 1), values, label=legend)
        ax.set_title(PANEL_TITLES[f"{split}_{metric}"])
        ax.set_label(f"{split}_{metric}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if split == "test":  # the bottom row; the top row shares its x axis
            ax.set_xlabel("Epoch #")
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
    return (list(config.get("filters_per_layer", [])), config.get("layers_per_block", 0))


def plot_exp_results(pattern: str, results_dir=None, log_loss: bool = False, fig=None):
    """Overlay the curves of every result file matching a glob pattern.

    pattern: a file-name glob inside ``results_dir``, e.g. ``"exp1_1_L*_K32.json"``
        (``.json`` is appended when missing).
    results_dir: folder of the result files; default
        :func:`hw2.experiments.results_dir` (``$HW2_RESULTS_DIR`` or ``<repo>/results``).
    log_loss, fig: as for :func:`plot_fit`.

    Each run is labelled ``L<L>_K<k1>-<k2>...`` from its config; runs are
    ordered by K, then L. Returns ``(fig, axes)``, or None after printing a
    plain message when no file matches. A corrupt file raises an error naming it.
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
        fig, axes = plot_fit(fit_res, fig=fig, log_loss=log_loss, legend=_run_label(config))
    return fig, axes

