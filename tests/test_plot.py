"""Tests for hw2.plot.plot_fit."""
from __future__ import annotations

from collections import namedtuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hw2.plot import plot_fit  # noqa: E402

# Same fields as hw2.training.FitResult; plot_fit reads attributes or dict keys only.
Fit = namedtuple("Fit", "num_epochs train_loss train_acc test_loss test_acc")
RUN_A = Fit(3, [2.0, 1.5, 1.2], [20.0, 35.0, 45.0], [2.1, 1.7, 1.6], [18.0, 30.0, 38.0])
RUN_B = dict(num_epochs=2, train_loss=[1.0, 0.5], train_acc=[50.0, 80.0],
             test_loss=[1.1, 0.9], test_acc=[45.0, 60.0])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_grid_titles_and_data():
    fig, axes = plot_fit(RUN_A)
    assert len(axes) == 4 and len(fig.axes) == 4
    assert [ax.get_title() for ax in axes] == ["Training loss", "Training accuracy",
                                               "Test loss", "Test accuracy"]
    assert [ax.get_label() for ax in axes] == ["train_loss", "train_acc", "test_loss", "test_acc"]
    for ax, name in zip(axes, ("train_loss", "train_acc", "test_loss", "test_acc")):
        (line,) = ax.lines
        assert list(line.get_xdata()) == [1, 2, 3]
        assert list(line.get_ydata()) == getattr(RUN_A, name)
    assert axes[1].get_ylabel() == "Accuracy (%)" and axes[0].get_yscale() == "linear"
    assert axes[0].get_legend() is None  # no label, no legend


def test_overlay_with_legend_and_replace():
    fig, axes = plot_fit(RUN_A, legend="sgd")
    fig2, axes2 = plot_fit(RUN_B, fig=fig, legend="adam")
    assert fig2 is fig and all(a is b for a, b in zip(axes, axes2))
    for ax in axes2:
        assert [line.get_label() for line in ax.lines] == ["sgd", "adam"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sgd", "adam"]
    np.testing.assert_allclose(axes2[3].lines[1].get_ydata(), RUN_B["test_acc"])
    plot_fit(RUN_B, fig=fig, legend="sgd")  # same label: replaces the old curve
    assert [line.get_label() for line in axes2[0].lines] == ["adam", "sgd"]
    assert list(axes2[0].lines[1].get_ydata()) == RUN_B["train_loss"]


def test_log_loss_and_bad_input():
    _, axes = plot_fit(RUN_A, log_loss=True)
    assert axes[0].get_yscale() == "log" and axes[2].get_yscale() == "log"
    assert axes[1].get_yscale() == "linear"
    with pytest.raises(TypeError, match="test_acc"):
        plot_fit({"train_loss": [1.0], "train_acc": [1.0], "test_loss": [1.0]})
    other, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"4 or 6 panels\), it has 1 axes"):
        plot_fit(RUN_A, fig=other)


def test_accepts_training_fitresult():
    training = pytest.importorskip("hw2.training")
    fit = training.FitResult(*RUN_A)
    _, axes = plot_fit(fit)
    assert list(axes[2].lines[0].get_ydata()) == RUN_A.test_loss
    _, axes = plot_fit(fit.to_dict())
    assert list(axes[3].lines[0].get_ydata()) == RUN_A.test_acc


def test_a_run_with_a_validation_split_gets_a_row_of_its_own():
    training = pytest.importorskip("hw2.training")
    fit = training.FitResult(*RUN_A, val_loss=[2.2, 1.8, 1.7], val_acc=[15.0, 28.0, 36.0])
    fig, axes = plot_fit(fit, legend="with val")
    assert [ax.get_title() for ax in axes] == [
        "Training loss", "Training accuracy", "Validation loss", "Validation accuracy",
        "Test loss", "Test accuracy"]
    assert list(axes[3].lines[0].get_ydata()) == fit.val_acc
    # A run without validation overlays on such a figure, leaving the row empty.
    plot_fit(RUN_B, fig=fig, legend="no val")
    assert [line.get_label() for line in axes[2].lines] == ["with val"]
    assert [line.get_label() for line in axes[4].lines] == ["with val", "no val"]


def test_per_batch_losses_of_the_course_files_are_drawn_at_fractions_of_an_epoch():
    """The original course stores one loss per batch: 4 batches per epoch here."""
    course = dict(num_epochs=2, train_loss=[2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3],
                  train_acc=[20.0, 30.0], test_loss=[2.1, 2.0, 1.9, 1.8, 1.7, 1.7, 1.6, 1.6],
                  test_acc=[18.0, 25.0])
    _, axes = plot_fit(course)
    np.testing.assert_allclose(axes[0].lines[0].get_xdata(), np.arange(1, 9) / 4)
    assert list(axes[1].lines[0].get_xdata()) == [1, 2]

