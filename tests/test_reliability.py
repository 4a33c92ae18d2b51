"""The runner never records a wrong result, never wastes a finished training, and never
shows a traceback for a user's mistake (issue: the runner's reliability).

Each test reproduces one way things went wrong -- a shared checkpoint prefix,
a changed configuration on resume, a bad output folder found only after
training, concurrent sweeps on one folder, leftovers of a kill, user errors
that ended in tracebacks -- and checks what happens now. Everything runs on
the CPU on the tiny synthetic CIFAR-10 folder of conftest.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import (SMALL, Killed, check_result_file, cli, kill_after_first_epoch,
                     kill_after_result_is_written, one_line_error, recording_env)
from hw2 import experiments as ex
from hw2.experiments import runner, sweep

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY_CIFAR_PER_CLASS = (4, 2)
# The same, as a grid file's hparams (the grid sets the widths and depths).
SMALL_HP = {k: v for k, v in SMALL.items() if k not in ("filters_per_layer",
                                                        "layers_per_block")}


# --------------------------------------------------------------------------
# 1. A shared --checkpoints prefix: another run's curves must never be recorded
# --------------------------------------------------------------------------

def test_a_sweep_never_shares_a_checkpoint_and_never_resumes_another_run(tiny_env, monkeypatch):
    grid = {"g": ex.Experiment.from_dict("g", {"model_type": "cnn", "grid": [[[4], [1]], [[6], [1]]],
                                               "hparams": dict(SMALL_HP, epochs=2)})}
    shared = tiny_env / "ckpt" / "shared"
    jobs = sweep.sweep_jobs(["g"], {"checkpoints": str(shared), "out_dir": str(tiny_env / "out")},
                            grid=grid, protocol=None)
    prefixes = [j["checkpoints"] for j in jobs]
    assert len(set(prefixes)) == 2 and all(p.startswith(str(shared)) for p in prefixes)

    # Run A finishes; the process dies between its result's rename and its
    # checkpoint's removal. (Run A's checkpoint stays behind.)
    with monkeypatch.context() as m:
        kill_after_result_is_written(m)
        with pytest.raises(Killed):
            sweep.run_job(jobs[0])
    a_ckpt = Path(f"{prefixes[0]}.pt")
    assert a_ckpt.exists() and ex.result_path(jobs[0]).exists()
    # Even a checkpoint of run A put where run B's would be is refused by B.
    b_ckpt = Path(f"{prefixes[1]}.pt")
    b_ckpt.write_bytes(a_ckpt.read_bytes())
    from hw2.training import CheckpointError

    with pytest.raises(CheckpointError, match="another run or with other settings.*filters_per_layer: \\[4\\] in "
                             "the checkpoint, \\[6\\] now"):
        sweep.run_job(jobs[1])
    b_ckpt.unlink()

    # The restarted sweep removes A's orphan checkpoint and trains B from scratch.
    import io
    stream = io.StringIO()
    assert sweep.run_sweep(jobs, ex.LocalExecutor(), stream=stream) == 0
    assert "seed42/g_L1_K4: removed the checkpoint its finished run left behind" in \
        stream.getvalue()
    assert not a_ckpt.exists() and not b_ckpt.exists()
    b = ex.load_record(ex.result_path(jobs[1]))
    assert b["resumed_from_checkpoint"] is False and b["config"]["filters_per_layer"] == [6]


# --------------------------------------------------------------------------
# 2. A resumed run must train what its file records
# --------------------------------------------------------------------------

def test_a_changed_configuration_does_not_resume_the_old_checkpoint(tiny_env, monkeypatch):
    out, ckpt = tiny_env / "out", tiny_env / "c"
    base = ["run-exp", "-n", "r", "-o", out, "--checkpoints", ckpt, "--epochs", "3",
            "--bs-train", "8", "-L", "1", "-H", "8", "-d", "cpu", "--early-stopping", "0"]
    with monkeypatch.context() as m:
        kill_after_first_epoch(m)
        with pytest.raises(Killed):
            ex.main([*map(str, base), "-K", "4"])
    assert Path(f"{ckpt}.pt").exists()
    env = {k: os.environ[k] for k in ("HW2_CIFAR10", "HW2_CACHE_DIR")}
    line = one_line_error(cli(*base, "-K", "4", "--lr", "0.5", env=env), "c.pt",
                          "lr: 0.001 in the checkpoint, 0.5 now", "Delete it")
    assert "another run or with other settings" in line
    one_line_error(cli(*base, "-K", "6", env=env), "filters_per_layer: [4] in the checkpoint")
    assert not (out / "r_L1_K4.json").exists() and not (out / "r_L1_K6.json").exists()
    # The same settings resume it.
    r = cli(*base, "-K", "4", env=env)
    assert r.returncode == 0, r.stderr
    record = check_result_file(out / "r_L1_K4.json", epochs=3)
    assert record["resumed_from_checkpoint"] is True and record["config"]["lr"] == 0.001


# --------------------------------------------------------------------------
# 3. Output problems are found before training
# --------------------------------------------------------------------------

def bad_outputs(tmp_path: Path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return [
        (["-o", a_file], "is a file, not a folder"),
        (["-o", a_file / "sub"], "cannot create the output folder"),
        (["-o", "/proc/hw2-results"], "cannot create the output folder /proc/hw2-results"),
        (["-o", tmp_path / "ok", "--checkpoints", a_file / "ck"], "a_file is a file, not a folder"),
        (["-o", tmp_path / "ok", "-n", "n" * 300], "bytes"),
        (["-o", tmp_path / "ok", "-K", *[8] * 130], "bytes"),
    ]


def test_output_problems_stop_run_exp_before_any_training(tmp_path, monkeypatch, capsys):
    # No data at all: a run that got as far as loading data would fail differently.
    env = {"HW2_CIFAR10": str(tmp_path / "no-such-data"), "HW2_CACHE_DIR": str(tmp_path / "c")}
    (first, first_words), *rest = bad_outputs(tmp_path)
    # One in a real process (exit code, one line on stderr) ...
    one_line_error(cli("run-exp", "-n", "x", "-K", "8", "-L", "1", *first, env=env),
                   first_words)
    # ... and the rest through the same entry point in this process (no torch import
    # per case): the same code, exit code and stderr.
    from hw2.experiments import cli as cli_module

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for args, words in rest:
        k = [] if "-K" in args else ["-K", "8"]
        code = cli_module.main(["run-exp", "-n", "x", *k, "-L", "1", *map(str, args)])
        err = capsys.readouterr().err
        one_line_error(subprocess.CompletedProcess([], code, "", err), words)


def test_output_problems_stop_a_sweep_before_any_training(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    env = {"HW2_CIFAR10": str(tmp_path / "no-such-data"), "HW2_CACHE_DIR": str(tmp_path / "c")}
    one_line_error(cli("sweep", "exp1_1", "--protocol", "cpu", "-o", a_file / "sub", env=env),
                   "cannot create the output folder")


def test_a_read_only_folder_is_refused(tmp_path, monkeypatch):
    """As root a chmod cannot refuse a write, so the refusal is simulated where it happens."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match="cannot write into the output folder .*Permission denied"):
        ex.results.check_output_location(ex.RunConfig(run_name="x", out_dir=str(tmp_path)))


# --------------------------------------------------------------------------
# 4. Concurrent sweeps on one folder: each run trained exactly once
# --------------------------------------------------------------------------

def write_grid(path: Path) -> Path:
    path.write_text(json.dumps({"tiny": {"model_type": "cnn",
                                         "grid": [[[4], [1, 2]], [[6], [1, 2]], [[8], [1]]],
                                         "hparams": dict(SMALL_HP, epochs=3)}}))
    return path


def test_three_concurrent_sweeps_on_one_folder_train_each_run_once(tiny_cifar, tmp_path):
    env = recording_env(tmp_path, tiny_cifar)
    out = tmp_path / "out" / "seed42"  # the sweep's folder of its one seed
    cmd = [sys.executable, "-m", "hw2.experiments", "sweep", "tiny", "--grid-file",
           str(write_grid(tmp_path / "grid.json")), "-o", str(out.parent)]
    env["HW2_CLAIM_STALE_S"] = "600"
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    started = (tmp_path / "runs.log").read_text().split()[1::2]
    names = ["tiny_L1_K4", "tiny_L2_K4", "tiny_L1_K6", "tiny_L2_K6", "tiny_L1_K8"]
    assert sorted(started) == sorted(names), f"runs trained: {started}"
    assert len({line.split()[0] for line in (tmp_path / "runs.log").read_text().splitlines()}) > 1
    for name in names:
        check_result_file(out / f"{name}.json", epochs=3)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.json" for n in names)
    assert all("5 of 5 runs have results" in o for o in outputs), outputs


@pytest.mark.parametrize("step", ["output check", "claim", "result file"])
def test_a_new_folder_removed_by_another_sweeps_check_is_made_again(tmp_path, monkeypatch,
                                                                    step):
    """The race CI met: sweeps started together on one new folder each create it
    to probe that they can write there, and remove it again. So the folder can
    vanish between one process's mkdir and its file: the probe, the claim and
    the result file each make the folder again."""
    from hw2._io import atomic_write
    from hw2.experiments import claims, results

    cfg = ex.RunConfig(run_name="c", out_dir=str(tmp_path / "out"), **SMALL)
    folder = results.result_path(cfg).parent
    real_mkdir = Path.mkdir
    removed = []

    def another_sweep_cleans_up(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if self == folder and len(removed) < 3:
            removed.append(self)
            self.rmdir()

    monkeypatch.setattr(Path, "mkdir", another_sweep_cleans_up)
    if step == "output check":
        results._check_folder(folder)
        assert not folder.exists()  # the check leaves nothing behind
    elif step == "claim":
        claim = claims.try_claim(cfg)
        assert isinstance(claim, claims.Claim) and claim.path.is_file()
    else:
        atomic_write(folder / "r.json", lambda f: f.write("{}"), text=True)
        assert (folder / "r.json").read_text() == "{}"
    assert len(removed) == 3


def test_a_claim_of_a_dead_process_is_taken_over(tiny_env):
    from hw2.experiments import claims

    cfg = ex.RunConfig(run_name="c", out_dir=str(tiny_env / "out"), **SMALL)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    path = claims.claim_path(cfg)
    path.parent.mkdir(parents=True)
    import platform
    path.write_text(json.dumps({"host": platform.node(), "pid": int(dead), "started": 0,
                                "token": "old"}))
    claim = claims.try_claim(cfg)
    assert isinstance(claim, claims.Claim) and json.loads(path.read_text())["pid"] == os.getpid()
    assert isinstance(claims.try_claim(cfg), str)  # held by this live process now
    claim.release()
    assert not path.exists()
    # Another host's claim is stale only when its heartbeat is old.
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0, "token": "x"}))
    assert "host elsewhere, process 1" in claims.try_claim(cfg)
    os.utime(path, (time.time() - 2 * claims.STALE_AFTER_S,) * 2)
    assert isinstance(claims.try_claim(cfg), claims.Claim)


# --------------------------------------------------------------------------
# 5. "Done" means a valid result file of this run
# --------------------------------------------------------------------------

@pytest.mark.parametrize("content", ['{"config": {"run_name": "x"}, "results": {"num_e',
                                     '{"foo": 1}', ""])
def test_a_corrupt_or_foreign_result_file_is_not_done(tiny_env, content, capsys):
    out = tiny_env / "out" / "seed42"
    out.mkdir(parents=True)
    grid = tiny_env / "grid.json"
    grid.write_text(json.dumps({"tiny": {"model_type": "cnn", "grid": [[[4], [1]]],
                                         "hparams": dict(SMALL_HP, epochs=1)}}))
    (out / "tiny_L1_K4.json").write_text(content)
    sweep = ["sweep", "tiny", "--grid-file", str(grid), "-o", str(out.parent)]
    assert ex.main([*sweep, "--dry-run"]) == 0
    assert "\nbad   seed42/tiny_L1_K4 " in capsys.readouterr().out
    assert ex.main(sweep) == 0
    text = capsys.readouterr().out
    assert "tiny_L1_K4: result file" in text and "training it again" in text
    check_result_file(out / "tiny_L1_K4.json", epochs=1)


def test_a_result_file_of_other_settings_is_not_done_and_never_replaced(tiny_env):
    out = tiny_env / "out"
    path = ex.run_experiment("r", out_dir=out, epochs=1, **SMALL)
    state, why = ex.result_state(ex.RunConfig(run_name="r", out_dir=str(out), epochs=2, **SMALL))
    assert state == "other" and "epochs: 1 in the file, 2 wanted" in why
    before = path.read_bytes()
    with pytest.raises(ValueError, match="other settings.*never replaces it"):
        sweep.run_job(ex.RunConfig(run_name="r", out_dir=str(out), epochs=2, **SMALL))
    assert path.read_bytes() == before
    assert ex.result_state(ex.RunConfig(run_name="r", out_dir=str(out), epochs=1, **SMALL)) \
        == ("done", "")
    assert path.exists()


# --------------------------------------------------------------------------
# 6 and 7. User errors: one named line, exit code 2, no traceback
# --------------------------------------------------------------------------

RUN = ["run-exp", "-n", "x", "-K", "8", "-L", "1"]


@pytest.mark.parametrize("args, words", [
    ([*RUN, "-d", "cuda:x"], ["device must be"]),
    ([*RUN, "-d", "mps"], ["mps"]),
    (["run-exp", "-n", "x", "-K", "1099511627776", "-L", "1"], ["filters_per_layer", "65,536"]),
    ([*RUN, "-H", "1099511627776"], ["hidden_dims", "65,536"]),
    ([*RUN, "-s", "99999999999999999999"], ["seed must be"]),
    ([*RUN, "--batches", "abc"], ["--batches", "'abc' is not an integer (or none)"]),
    ([*RUN, "--lr", "fast"], ["--lr", "'fast' is not a number"]),
])
def test_user_errors_are_one_named_line(tmp_path, args, words):
    if args[-1] == "mps":
        import torch.backends.mps
        if torch.backends.mps.is_available():
            pytest.skip("this machine has MPS")
    env = {"HW2_CIFAR10": str(tmp_path / "none"), "HW2_CACHE_DIR": str(tmp_path / "c"),
           "HW2_RESULTS_DIR": str(tmp_path / "r")}
    line = one_line_error(cli(*args, env=env), *words)
    assert "_int_or_none" not in line and "Overflow" not in line


def test_a_grid_file_with_L_zero_or_binary_content_is_named(tmp_path):
    grid = tmp_path / "zero.json"
    grid.write_text(json.dumps({"z": {"model_type": "cnn", "grid": [[[4], [0]]]}}))
    one_line_error(cli("sweep", "z", "--grid-file", grid), "zero.json", "layers_per_block",
                   "positive integer")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\x80\x81\xfe\xff" * 10)
    one_line_error(cli("sweep", "z", "--grid-file", binary), "binary.json", "not a text file")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "folder"])
def test_a_bad_checkpoint_in_run_exp_is_named_with_the_remedy(tiny_env, damage):
    ckpt = tiny_env / "ck"
    path = Path(f"{ckpt}.pt")
    if damage == "folder":
        path.mkdir()
    else:
        torch.save({"format": 3, "epoch": 1, "model": {"w": torch.zeros(100)}}, path)
        good = path.read_bytes()
        path.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"\x00garbage")
    env = {k: os.environ[k] for k in ("HW2_CIFAR10", "HW2_CACHE_DIR")}
    words = ["is a folder"] if damage == "folder" else ["cannot be read", "Delete it"]
    one_line_error(cli(*RUN, "-o", tiny_env / "o", "--checkpoints", ckpt, "-d", "cpu",
                       env=env), "ck.pt", *words)


def test_a_corrupt_checkpoint_in_a_sweep_says_it_can_be_deleted(tiny_env):
    grid = {"g": ex.Experiment.from_dict("g", {"model_type": "cnn", "grid": [[[4], [1]]],
                                               "hparams": dict(SMALL_HP, epochs=1)})}
    jobs = sweep.sweep_jobs(["g"], {"out_dir": str(tiny_env / "out")}, grid=grid, protocol=None)
    Path(f"{jobs[0]['checkpoints']}.pt").parent.mkdir(parents=True, exist_ok=True)
    Path(f"{jobs[0]['checkpoints']}.pt").write_bytes(b"half a checkpoint")
    import io
    stream = io.StringIO()
    assert sweep.run_sweep(jobs, ex.LocalExecutor(), stream=stream) == 1
    assert "cannot be read" in stream.getvalue() and "Delete it to start the run afresh" \
        in stream.getvalue()
