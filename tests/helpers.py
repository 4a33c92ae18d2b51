"""Assertions shared by the test modules (import as ``from helpers import ...``)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hw2 import experiments

FIT_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
#: Child processes on one thread each (the suites run two at a time).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: The smallest run of the runner's tests (a grid file's hparams drop the widths).
SMALL = dict(bs_train=8, filters_per_layer=[4], layers_per_block=1, hidden_dims=[8],
             device="cpu", early_stopping=0)


def cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m hw2.experiments ARGS`` in a child process, output captured."""
    return subprocess.run([sys.executable, "-m", "hw2.experiments", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **ONE_THREAD, **(env or {})})


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


# Every process records each run it starts to train; every epoch takes at
# least 0.3 s, so that the sweeps overlap.
RECORD_RUNS = textwrap.dedent("""
    import os, time
    log = os.environ.get("HW2_TEST_RUN_LOG")
    if log:
        import hw2.experiments.runner as _r
        import hw2.training as _t
        _run = _r.run_config
        def run_config(cfg, **kw):
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {cfg.file_stem}\\n")
            return _run(cfg, **kw)
        _r.run_config = run_config
        import hw2.experiments.sweep as _s
        _s.run_config = run_config
        _save = _t.Trainer.save_checkpoint
        def save_checkpoint(self, *a, **k):
            _save(self, *a, **k)
            time.sleep(0.3)
        _t.Trainer.save_checkpoint = save_checkpoint
""")


def recording_env(tmp_path: Path, tiny_cifar: dict) -> dict:
    """The environment of a sweep process that logs every run it starts to
    ``tmp_path/runs.log`` ("<pid> <run>" lines) and sleeps 0.3 s per epoch."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(RECORD_RUNS)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **tiny_cifar,
            "PYTHONPATH": path,
            "HW2_TEST_RUN_LOG": str(tmp_path / "runs.log")}


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit code 2, one line on stderr naming ``words``, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


class Killed(BaseException):
    """Stands for SIGKILL at a chosen point of a run (not an Exception: nothing catches it)."""


def kill_after_result_is_written(monkeypatch):
    """The process dies right after the result file is renamed into place, before its
    checkpoint is removed."""
    from hw2.experiments import runner

    real = runner.write_result

    def write_then_die(path, record):
        real(path, record)
        raise Killed

    monkeypatch.setattr(runner, "write_result", write_then_die)


def kill_after_first_epoch(monkeypatch):
    from hw2.training import Trainer

    real = Trainer.save_checkpoint

    def save_then_die(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
