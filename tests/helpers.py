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


def write_finished_result(spec: dict) -> Path:
    """A minimal valid result file of the run ``spec`` (as if it had trained 1 epoch)."""
    from hw2.experiments.results import RESULT_FORMAT, write_result

    cfg = experiments.RunConfig.from_dict(spec)
    path = experiments.result_path(cfg)
    write_result(path, {
        "format": RESULT_FORMAT,
        "config": {**cfg.to_dict(), "pool_every": cfg.resolved_pool_every,
                   "bs_test": cfg.bs_test or cfg.bs_train, "channels": cfg.channels},
        "results": {"num_epochs": 1, "train_loss": [1.0], "train_acc": [50.0],
                    "test_loss": [1.0], "test_acc": [50.0]},
    })
    return path
