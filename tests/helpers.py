"""Assertions shared by the test modules (import as ``from helpers import ...``)."""
from __future__ import annotations

from pathlib import Path

from hw2 import experiments

FIT_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")


def check_result_file(path: Path, epochs: int) -> dict:
    """A run's result file loads and is complete; returns its whole record.

    Complete: ``epochs`` epochs of every result list, the run's name, its
    output folder (the file's folder), and the timing, device, versions,
    model and data sections.
    """
    config, fit = experiments.load_experiment(path)
    record = experiments.load_record(path)
    assert fit.num_epochs == epochs
    for key in FIT_KEYS:
        assert len(getattr(fit, key)) == epochs, key
    assert config["run_name"] and config["out_dir"] == str(path.parent)
    for key in ("timing", "device", "versions", "model", "data"):
        assert key in record, key
    return record
