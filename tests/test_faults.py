"""Reliability, round 2: each fault a user or a cluster met, reproduced, and what happens now.

One section per item of the issue (numbers in the headings): a run that takes
another's seed or settings, grid-file keys that were silently ignored, a full
disk or a bad output path found only after training, claims that were stolen
or left behind, SIGTERM, model keywords and numbers that crashed after setup,
dry runs that said "todo" for plans the sweep refuses, deep JSON, the decode
cache, leftovers. Every check runs on the CPU on the tiny synthetic CIFAR-10
folder of conftest.py.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (ONE_THREAD, SMALL, Killed, check_result_file, cli,
                     kill_after_first_epoch, one_line_error)
from hw2 import experiments as ex
from hw2.experiments import claims, sweep

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY_CIFAR_PER_CLASS = (4, 2)
RUN = ["run-exp", "-n", "r", "-K", "4", "-L", "1", "-H", "8", "--bs-train", "8",
       "--early-stopping", "0", "-d", "cpu"]


def popen(*args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hw2.experiments", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD, **env})


def slow_env(tmp_path: Path, tiny_cifar: dict, seconds: float = 0.5) -> dict:
    """A process environment in which every epoch takes at least ``seconds``."""
    site = tmp_path / "slow-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import time\nimport hw2.training as _t\n_save = _t.Trainer.save_checkpoint\n"
        "def save_checkpoint(self, *a, **k):\n    _save(self, *a, **k)\n"
        f"    time.sleep({seconds})\n_t.Trainer.save_checkpoint = save_checkpoint\n")
    return {**tiny_cifar, "PYTHONPATH": os.pathsep.join(
        [str(site), os.environ.get("PYTHONPATH", "")])}


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def no_data_env(tmp_path: Path) -> dict:
    """No data at all: a run that got as far as loading it would fail differently."""
    return {"HW2_CIFAR10": str(tmp_path / "no-such-data"),
            "HW2_CACHE_DIR": str(tmp_path / "no-cache")}


def grid_file(path: Path, experiments: dict) -> Path:
    path.write_text(json.dumps(experiments))
    return path


def tiny_grid(path: Path, epochs: int = 2, widths=((4,), (6,))) -> Path:
    return grid_file(path, {"g": {"model_type": "cnn",
                                  "grid": [[list(k), [1]] for k in widths],
                                  "hparams": {"bs_train": 8, "hidden_dims": [8],
                                              "device": "cpu", "early_stopping": 0,
                                              "epochs": epochs}}})


# --------------------------------------------------------------------------
# 1. A drawn seed (-s none) survives a kill and a resume
# --------------------------------------------------------------------------

def test_a_drawn_seed_is_kept_by_the_checkpoint_and_the_resume_uses_it(tiny_env,
                                                                        monkeypatch):
    out, ckpt = tiny_env / "out", tiny_env / "ck"
    args = [*RUN, "-o", out, "--checkpoints", ckpt, "--epochs", "3", "-s", "none"]
    with monkeypatch.context() as m:
        kill_after_first_epoch(m)
        with pytest.raises(Killed):
            ex.main(list(map(str, args)))
    from hw2.training import checkpoint_seed

    drawn = checkpoint_seed(f"{ckpt}.pt")
    assert isinstance(drawn, int)
    # Two resumes from copies of the one checkpoint: both continue the same run.
    saved = Path(f"{ckpt}.pt").read_bytes()
    records = []
    for attempt in range(2):
        Path(f"{ckpt}.pt").write_bytes(saved)
        assert ex.main(list(map(str, args))) == 0
        records.append(check_result_file(out / "r_L1_K4.json", epochs=3))
    assert [r["config"]["seed"] for r in records] == [drawn, drawn]
    assert records[0]["results"] == records[1]["results"]
    assert all(r["resumed_from_checkpoint"] for r in records)
    # ... and they equal the uninterrupted run of that seed.
    ex.main(list(map(str, [*RUN, "-o", tiny_env / "fixed", "--epochs", "3", "-s", drawn])))
    fixed = ex.load_record(tiny_env / "fixed" / "r_L1_K4.json")
    assert fixed["results"] == records[0]["results"]


# --------------------------------------------------------------------------
# 2. Grid files are checked against their schema
# --------------------------------------------------------------------------

@pytest.mark.parametrize("entry, words", [
    ({"model_type": "cnn", "grid": [[[8], [1]]], "hparam": {"epochs": 1}},
     ["unknown key(s) 'hparam'", "g.json"]),
    ({"model_type": "cnn", "grid": [[[8], [1]]], "hparams": {"run_name": "x"}},
     ["hparams may not set run_name"]),
    ({"model_type": "cnn", "grid": [[[8], [1]]], "hparams": {"filters_per_layer": [3]}},
     ["hparams may not set filters_per_layer"]),
    ({"model_type": "cnn", "grid": [[[8], [1]]], "hparams": {"out_dir": "x"}},
     ["hparams may not set out_dir"]),
    ({"model_type": "cnn", "grid": [[[8], [1]]], "hparams": {"epoch": 1}},
     ["unknown run configuration key(s): epoch"]),
    ({"model_type": "cnn", "grid": []}, ["has no runs"]),
])
def test_a_grid_file_with_a_wrong_key_is_refused_naming_it(tmp_path, entry, words):
    path = grid_file(tmp_path / "g.json", {"g": entry})
    for extra in ([], ["--dry-run"]):
        one_line_error(cli("sweep", "g", "--grid-file", path, "-o", tmp_path / "o", *extra,
                           env=no_data_env(tmp_path)), "g.json", *words)


@pytest.mark.parametrize("extra, source", [
    (["--protocol", "cpu"], "the protocol cpu gives the seeds 42 43 44"),
    (["--seeds", "1", "2"], "--seeds gives the seeds 1 2"),
    (["-s", "3"], "-s gives the seed 3"),
])
def test_a_grid_file_seed_that_other_seeds_would_replace_is_refused(tmp_path, extra,
                                                                     source):
    path = grid_file(tmp_path / "g.json", {"g": {
        "model_type": "cnn", "grid": [[[8], [1]]], "hparams": {"seed": 7}}})
    for dry in ([], ["--dry-run"]):
        one_line_error(cli("sweep", "g", "--grid-file", path, "-o", tmp_path / "o",
                           *extra, *dry, env=no_data_env(tmp_path)),
                       "grid file", "g.json", "experiment 'g' sets seed 7 in its "
                       "hparams", source, "remove the key seed")
    # The file's seed is the run's seed when nothing else gives seeds, or the same.
    for same in ([], ["--protocol", "cpu", "--seeds", "7"], ["-s", "7"]):
        jobs = sweep.sweep_jobs(["g"], {"out_dir": str(tmp_path / "o"),
                                        **({"seed": 7} if "-s" in same else {})},
                                grid=str(path),
                                seeds=[7] if "--seeds" in same else None,
                                protocol="cpu" if "--protocol" in same else None)
        assert [j["seed"] for j in jobs] == [7]


# --------------------------------------------------------------------------
# 3. A full disk is found before training; a write error names the file and disk
# --------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (root can mount one), else None."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s disk until ``leave`` bytes are free (a new filler file)."""
    import shutil
    import tempfile

    free = shutil.disk_usage(folder).free
    with tempfile.NamedTemporaryFile(dir=folder, prefix="filler-", delete=False) as f:
        try:
            f.write(b"\0" * max(0, free - leave))
        except OSError:  # full: as full as it gets
            pass


def test_a_full_disk_is_refused_before_training_on_a_real_small_disk(tiny_env, small_disk,
                                                                      capsys):
    if small_disk is None:
        pytest.skip("cannot mount a tmpfs here; the simulated disk test below covers "
                    "the same checks")
    fill(small_disk, leave=2 << 20)  # 2 MB: less than the run's files plus the spare
    code = ex.main(list(map(str, [*RUN, "-o", small_disk / "out", "--epochs", "1"])))
    err = capsys.readouterr().err
    assert code == 2 and "not enough free space" in err and str(small_disk) in err
    assert not (small_disk / "out").exists()
    # Enough for the check, then the disk fills during the run: the error names
    # the file and the disk, in one line, and no half-written file is left.
    for filler in small_disk.glob("filler-*"):
        filler.unlink()
    fill(small_disk, leave=10 << 20)
    from hw2.training import Trainer

    real = Trainer.save_checkpoint

    def fill_then_save(self, *args, **kwargs):
        fill(small_disk, leave=0)
        real(self, *args, **kwargs)

    Trainer.save_checkpoint = fill_then_save
    try:
        code = ex.main(list(map(str, [*RUN, "-o", small_disk / "out", "--checkpoints",
                                      small_disk / "out" / "ck", "--epochs", "2"])))
    finally:
        Trainer.save_checkpoint = real
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert f"cannot write {small_disk / 'out' / 'ck.pt'}" in err[0]
    assert "No space left on device" in err[0] and f"disk of {small_disk / 'out'}" in err[0]
    assert not list((small_disk / "out").glob(".*.tmp"))


def test_a_full_disk_is_refused_before_training_simulated(tiny_env, monkeypatch, capsys):
    from hw2.experiments import results

    monkeypatch.setattr(results, "free_bytes", lambda folder: 1 << 20)
    code = ex.main(list(map(str, [*RUN, "-o", tiny_env / "out", "--epochs", "1"])))
    err = capsys.readouterr().err
    assert code == 2 and "not enough free space for the run's files" in err
    assert "1.0 MB free" in err and "8.4 MB spare" in err
    # The checkpoint's size counts: 3 float32 copies of every parameter, twice.
    cfg = ex.RunConfig(run_name="r", out_dir=str(tiny_env / "o"),
                       checkpoints=str(tiny_env / "c" / "ck"), **SMALL)
    need = results.run_bytes(cfg, parameters=1_000_000)
    assert need[tiny_env / "c"] == 2 * (12_000_000 + (64 << 10))
    # A torch.save that fails like on a full disk names the file and the disk.
    from hw2._io import WriteError, atomic_write

    monkeypatch.setattr("hw2._io.free_bytes", lambda folder: 0)

    def broken(f):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . unexpected pos "
                           "1536 vs 1430")

    with pytest.raises(WriteError, match=r"cannot write .*x\.pt: No space left on "
                                         r"device; 0 bytes free on the disk of"):
        atomic_write(tiny_env / "x.pt", broken)
    assert not list(tiny_env.glob(".x.pt.*"))


# --------------------------------------------------------------------------
# 4 and 5. A result path that is a folder; names too long in bytes
# --------------------------------------------------------------------------

def test_a_name_too_long_in_bytes_is_refused_before_training(tmp_path):
    # 70 emoji: 70 characters, 280 bytes in UTF-8 (291 with _L1_K8.json).
    emoji = "\N{GRINNING FACE}" * 70
    one_line_error(cli("run-exp", "-n", emoji, "-K", "8", "-L", "1", "-o", tmp_path / "o",
                       env=no_data_env(tmp_path)), "is 291 bytes", "use a shorter run name")
    # 110 accented letters (220 bytes): the result fits, but a sweep's checkpoint
    # name (.<name>_L1_K4.<hash>.ckpt.pt, then its temporary suffix) does not.
    accented = "\N{LATIN SMALL LETTER E WITH ACUTE}" * 110
    grid = grid_file(tmp_path / "g.json", {accented: {
        "model_type": "cnn", "grid": [[[4], [1]]], "hparams": {"epochs": 1}}})
    for extra in ([], ["--dry-run"]):
        one_line_error(cli("sweep", accented, "--grid-file", grid, "-o", tmp_path / "o",
                           *extra, env=no_data_env(tmp_path)), "ckpt.pt", "bytes")
    assert not (tmp_path / "o").exists()


def test_a_dead_claim_of_the_longest_allowed_name_is_taken_over(tiny_cifar, tmp_path):
    # The stem (227 + len("_L1_K4") = 233 bytes) is the longest the check allows for
    # its claim file; taking a dead process's claim over renames it, and that name
    # must fit as well.
    name = "a" * 227
    out = tmp_path / "o"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    claim = out / f".{name}_L1_K4.claim"
    claim.write_text(json.dumps({"host": platform.node(), "pid": int(dead),
                                 "started": 0, "token": "old"}))
    r = cli(*RUN[:1], "-n", name, *RUN[3:], "-o", out, "--epochs", "1", env=tiny_cifar)
    assert r.returncode == 0, r.stderr
    check_result_file(out / f"{name}_L1_K4.json", epochs=1)
    assert not claim.exists() and not list(out.glob(".*"))
    one_line_error(cli(*RUN[:1], "-n", name + "a", *RUN[3:], "-o", out,
                       env=no_data_env(tmp_path)), "is 241 bytes")


def test_a_result_path_that_is_a_folder_is_refused_before_training(tiny_env, tmp_path):
    out = tiny_env / "out"
    (out / "r_L1_K4.json").mkdir(parents=True)
    one_line_error(cli(*RUN, "-o", out, env=no_data_env(tmp_path)),
                   "r_L1_K4.json is a folder")
    grid = tiny_grid(tmp_path / "g.json", widths=((4,),))
    (out / "seed42" / "g_L1_K4.json").mkdir(parents=True)
    for extra in ([], ["--dry-run"]):
        one_line_error(cli("sweep", "g", "--grid-file", grid, "-o", out, *extra),
                       "g_L1_K4.json is a folder")


# --------------------------------------------------------------------------
# 6. A live claim is never stolen: the heartbeat does not depend on the epoch
# --------------------------------------------------------------------------

def test_the_heartbeat_keeps_a_claim_alive_through_a_long_epoch(tiny_env, monkeypatch):
    monkeypatch.setenv("HW2_CLAIM_STALE_S", "4")
    assert claims.heartbeat_s() == 1.0
    cfg = ex.RunConfig(run_name="c", out_dir=str(tiny_env / "out"), **SMALL)
    claim = claims.try_claim(cfg)
    assert isinstance(claim, claims.Claim)
    # Seen from another host, only the heartbeat's age tells: a claim untouched
    # for longer than the limit is stale ...
    monkeypatch.setattr(claims.platform, "node", lambda: "another-host")
    os.utime(claim.path, (time.time() - 10,) * 2)
    assert claims._stale(claim.path, claims._read(claim.path))
    # ... but with the heartbeat thread running, it is refreshed within a second,
    # whatever the training loop does meanwhile.
    claim.start_heartbeat()
    try:
        time.sleep(1.5)
        assert "process" in claims.try_claim(cfg)  # held, not taken over
    finally:
        claim.release()
    assert not claim.path.exists() and not claim._thread.is_alive()


@pytest.mark.parametrize("value", ["-5", "0", "abc", "nan", "inf", "3"])
def test_a_bad_stale_limit_is_refused(tmp_path, value):
    grid = tiny_grid(tmp_path / "g.json")
    env = {"HW2_CLAIM_STALE_S": value, **no_data_env(tmp_path)}
    one_line_error(cli("sweep", "g", "--grid-file", grid, "-o", tmp_path / "o", env=env),
                   "HW2_CLAIM_STALE_S must be a number of seconds of at least 4")
    one_line_error(cli(*RUN, "-o", tmp_path / "o", env=env), "HW2_CLAIM_STALE_S")


# --------------------------------------------------------------------------
# 7. Two differently configured sweeps on one folder
# --------------------------------------------------------------------------

def test_two_differently_configured_sweeps_on_one_folder(tiny_cifar, tmp_path):
    env = slow_env(tmp_path, tiny_cifar, seconds=1.0)
    grid = tiny_grid(tmp_path / "g.json", epochs=3, widths=((4,), (6,), (8,)))
    out = tmp_path / "out"
    first = popen("sweep", "g", "--grid-file", grid, "-o", out, env=env)
    wait_for(lambda: list((out / "seed42").glob(".*.claim")) if out.exists() else [],
             60, "the first sweep's claim")
    second = cli("sweep", "g", "--grid-file", grid, "-o", out, "--set", "epochs=1",
                 env=env)
    # Refused before it trains anything: the first sweep's live claim, or a file the
    # first sweep finished already, has other settings.
    line = one_line_error(second, "other settings", "epochs: 3")
    assert "another folder (-o)" in line
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stdout + stderr
    # Every file is the first sweep's; the second trained nothing.
    files = sorted((out / "seed42").glob("*.json"))
    assert len(files) == 3
    assert {ex.load_record(f)["config"]["epochs"] for f in files} == {3}
    # Afterwards the other settings are refused too: a sweep never replaces results.
    one_line_error(cli("sweep", "g", "--grid-file", grid, "-o", out, "--set", "epochs=1",
                       env=env), "holds a run with other settings",
                   "epochs: 3 in the file, 1 wanted", "never replaces it")
    assert {ex.load_record(f)["config"]["epochs"] for f in files} == {3}


# --------------------------------------------------------------------------
# 8. SIGTERM: the checkpoint stays, the claim goes, a restart resumes at once
# --------------------------------------------------------------------------

def test_sigterm_during_a_sweep_releases_the_claim_and_a_restart_resumes_at_once(
        tiny_cifar, tmp_path):
    env = slow_env(tmp_path, tiny_cifar, seconds=1.0)
    grid = tiny_grid(tmp_path / "g.json", epochs=4, widths=((4,),))
    out = tmp_path / "out"
    seed_dir = out / "seed42"
    proc = popen("sweep", "g", "--grid-file", grid, "-o", out, env=env)
    ckpt = wait_for(lambda: next(iter(seed_dir.glob(".*.ckpt.pt")), None)
                    if seed_dir.exists() else None, 60, "the first checkpoint")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, (proc.returncode, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0], stderr
    assert ckpt.exists() and not list(seed_dir.glob(".*.claim"))
    assert not (seed_dir / "g_L1_K4.json").exists()
    # Restarted at once (as SLURM's requeue does): no waiting on a claim, and the
    # run resumes from the checkpoint.
    start = time.monotonic()
    again = cli("sweep", "g", "--grid-file", grid, "-o", out, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "waiting" not in again.stdout and time.monotonic() - start < 60
    record = check_result_file(seed_dir / "g_L1_K4.json", epochs=4)
    assert record["resumed_from_checkpoint"] is True
    assert not list(seed_dir.glob(".*"))  # no claim, checkpoint or temp file left


STOPPED = ("python -m hw2.experiments: stopped by {}; any claim is released, and runs "
           "with checkpoints resume from their last finished epoch when restarted")

# The data load (a sweep) or the model build (run-exp) writes a marker, then takes
# a minute: a signal that arrives meanwhile comes before any training. The command
# runs as in a terminal's foreground: a background job (nohup, `&`, some CI
# runners) starts with SIGINT ignored, and Python then keeps ignoring it.
SLOW_START = """
import os, signal, time
signal.signal(signal.SIGINT, signal.default_int_handler)
import hw2.data as _d
import hw2.experiments.cli as _c
def _slow(real):
    def slow(*a, **k):
        open(os.environ["HW2_TEST_STARTED"], "w").close()
        time.sleep(60)
        return real(*a, **k)
    return slow
_d.load_cifar10 = _slow(_d.load_cifar10)
_c.build_model = _slow(_c.build_model)
"""


@pytest.mark.parametrize("sig, name, code", [(signal.SIGTERM, "SIGTERM", 143),
                                             (signal.SIGINT, "SIGINT (Ctrl-C)", 130)])
@pytest.mark.parametrize("command", ["run-exp", "sweep"])
def test_a_signal_before_training_stops_the_command_in_one_line(
        tiny_cifar, tmp_path, command, sig, name, code):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_START)
    started = tmp_path / "started"
    env = {**tiny_cifar, "HW2_TEST_STARTED": str(started),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    args = ([*RUN, "-o", out] if command == "run-exp" else
            ["sweep", "g", "--grid-file", tiny_grid(tmp_path / "g.json"), "-o", out])
    proc = popen(*args, env=env)
    wait_for(started.exists, 60, "the slow start")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, (proc.returncode, stdout, stderr)
    assert stderr.strip().splitlines() == [STOPPED.format(name)], stderr
    assert not list(out.rglob("*.json")) and not list(out.rglob(".*.claim"))


def test_sigterm_stops_the_workers_of_a_multi_gpu_sweep(tiny_cifar, tmp_path):
    # The one-process-per-GPU path on the CPU (forked workers, as in
    # test_experiments): SIGTERM to the parent stops its workers, which release
    # their claims, and the parent exits 143 in one line.
    script = tmp_path / "two_workers.py"
    script.write_text(
        "import sys\nfrom hw2.experiments import cli, executors\n"
        "executors._MP_START = 'fork'\n"
        "cli.executor_from_args = lambda args: executors.LocalExecutor(gpus=[0, 1])\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    env = slow_env(tmp_path, tiny_cifar, seconds=1.0)
    grid = tiny_grid(tmp_path / "g.json", epochs=6)
    seed_dir = tmp_path / "out" / "seed42"
    proc = subprocess.Popen(
        [sys.executable, str(script), "sweep", "g", "--grid-file", str(grid), "-o",
         str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, **ONE_THREAD, **env})
    wait_for(lambda: len(list(seed_dir.glob(".*.ckpt.pt"))) == 2
             if seed_dir.exists() else False, 90, "both workers' first checkpoints")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, stdout, stderr)
    assert stderr.strip().splitlines() == [STOPPED.format("SIGTERM")], stderr
    assert not list(seed_dir.glob(".*.claim")) and not list(seed_dir.glob("*.json"))
    assert len(list(seed_dir.glob(".*.ckpt.pt"))) == 2


# --------------------------------------------------------------------------
# 9. run-exp claims its run
# --------------------------------------------------------------------------

def test_two_identical_run_exp_commands_train_once(tiny_cifar, tmp_path):
    env = slow_env(tmp_path, tiny_cifar)
    out = tmp_path / "out"
    args = [*RUN, "-o", out, "--checkpoints", tmp_path / "ck", "--epochs", "3"]
    first = popen(*args, env=env)
    wait_for(lambda: list(out.glob(".*.claim")) if out.exists() else [], 60,
             "the first run's claim")
    one_line_error(cli(*args, env=env), "being trained by another process",
                   "r_L1_K4.json")
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    check_result_file(out / "r_L1_K4.json", epochs=3)


# --------------------------------------------------------------------------
# 10. Numbers in range
# --------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--lr", "1e39"], ["lr must be a positive number of at most 3.40282e+38"]),
    (["--lr", "inf"], ["lr must be a positive number"]),
    (["--reg", "1e39"], ["reg must be a number in [0, 3.40282e+38]"]),
    (["--momentum", "nan"], ["momentum"]),
])
def test_numbers_out_of_range_are_refused(tmp_path, args, words):
    one_line_error(cli(*RUN, "-o", tmp_path / "o", *args, env=no_data_env(tmp_path)),
                   *words)


@pytest.mark.parametrize("lr", [float("inf"), 1e39, float("nan")])
def test_optimizers_refuse_a_learning_rate_float32_cannot_hold(lr):
    from hw2 import optimizers

    params = [(torch.zeros(2), torch.zeros(2))]
    for cls in (optimizers.VanillaSGD, optimizers.MomentumSGD, optimizers.RMSProp,
                optimizers.Adam):
        with pytest.raises(ValueError, match="learn_rate must be a number in"):
            cls(params, learn_rate=lr, reg=0.0)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_an_adam_learning_rate_whose_first_step_overflows_is_refused(tmp_path,
                                                                      optimizer):
    # 1e38 fits in float32, but Adam's first step is lr/(1 - beta1) = 1e39.
    one_line_error(cli(*RUN, "-o", tmp_path / "o", "--lr", "1e38", "--optimizer",
                       optimizer, env=no_data_env(tmp_path)),
                   f"lr must be at most 3.40282e+37 for {optimizer} with momentum "
                   f"(beta1) 0.9", "got 1e+38")
    # With beta1 = 0 the first step is lr itself, which fits.
    cfg = ex.RunConfig(run_name="r", lr=1e38, momentum=0.0, optimizer=optimizer)
    assert cfg.lr == 1e38


def test_the_adam_optimizer_refuses_a_first_step_float32_cannot_hold():
    from hw2 import optimizers

    params = [(torch.zeros(2), torch.ones(2))]
    with pytest.raises(ValueError, match=r"learn_rate/\(1 - betas\[0\]\), the first "
                                         r"step's size, must be at most 3.40282e\+38"):
        optimizers.Adam(params, learn_rate=1e38)
    adam = optimizers.Adam(params, learn_rate=1e38, betas=(0.0, 0.999))
    adam.step()  # the largest step that fits: no overflow
    state = adam.state_dict()
    state["hyperparameters"]["betas"] = (0.9, 0.999)
    with pytest.raises(ValueError, match="the first step's size"):
        adam.load_state_dict(state)
    assert adam.betas == (0.0, 0.999)  # a refused state changes nothing


# --------------------------------------------------------------------------
# 11. Model keywords are checked before any data is loaded
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kw, words", [
    ('conv_params={"stride":0}', ["conv_params['stride'] must be a positive int"]),
    ('pooling_params={"kernel_size":0}', ["pooling_params['kernel_size']"]),
    ('conv_params={"kernel_size":0}', ["conv_params['kernel_size']"]),
    ('conv_params={"padding":-1}', ["conv_params['padding'] must be a non-negative"]),
    ('conv_params={"dilation":0}', ["conv_params['dilation']"]),
    ('pooling_params={"stride":0}', ["pooling_params['stride']"]),
    ('pooling_params={"padding":5}', ["pooling_params['padding'] must be at most half"]),
    ('activation_params={"negative_slope":"x"}', ["fails on a batch", "negative_slope"]),
    ('conv_params={"bias":"abc"}', ["conv_params['bias'] must be true or false"]),
])
def test_a_bad_model_keyword_fails_before_the_data_in_one_line(tmp_path, kw, words):
    extra = ["activation_type=lrelu"] if "negative_slope" in kw else []
    r = cli("run-exp", "-n", "x", "-K", "8", "-L", "1", "-o", tmp_path / "o",
            "--model-kw", kw, *extra, env=no_data_env(tmp_path))
    one_line_error(r, "ConvClassifier", *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("model, kw", [("resnet", "batchnorm"),
                                       ("resnet", "bottleneck"),
                                       ("ycn", "zero_init_residual")])
def test_a_flag_given_as_a_string_is_refused_naming_it(tmp_path, model, kw):
    # --model-kw batchnorm=False is not JSON (false is): the string 'False' would
    # count as true.
    r = cli("run-exp", "-n", "x", "-K", "8", "16", "-L", "1", "-M", model, "-o",
            tmp_path / "o", "--model-kw", f"{kw}=False", env=no_data_env(tmp_path))
    one_line_error(r, f"{kw} must be true or false, got 'False'")
    assert not (tmp_path / "o").exists()


def test_a_whitening_window_the_image_cannot_hold_is_one_line(tmp_path):
    # whiten=40 on 32×32 images: the error names the stage in one line, not the
    # many-line repr of the stage's modules.
    for whiten, layer in ((40, "layer 0 (Sequential)"), (31, "layer 2 (_Stage)")):
        r = cli("run-exp", "-n", "x", "-K", "8", "16", "-L", "1", "-M", "ycn", "-o",
                tmp_path / "o", "--model-kw", f"whiten={whiten}",
                env=no_data_env(tmp_path))
        one_line_error(r, "YourCodeNet", f"feature map vanishes at {layer}")


def test_the_residual_blocks_refuse_a_flag_that_is_not_a_bool():
    from hw2.cnn import ResidualBlock, ResNetClassifier, YourCodeNet

    with pytest.raises(ValueError, match="batchnorm must be true or false, got 'no'"):
        ResidualBlock(4, [4], [3], batchnorm="no")
    with pytest.raises(ValueError, match="bottleneck must be true or false, got 1"):
        ResNetClassifier((3, 32, 32), 10, [8], 1, [], bottleneck=1)
    with pytest.raises(ValueError, match="zero_init_residual must be true or false"):
        YourCodeNet((3, 32, 32), 10, [8], 1, [], zero_init_residual=None)


# --------------------------------------------------------------------------
# 12. A dry run makes the sweep's own checks
# --------------------------------------------------------------------------

def test_a_dry_run_refuses_what_the_sweep_refuses(tmp_path):
    grid = tiny_grid(tmp_path / "g.json")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    twice = grid_file(tmp_path / "twice.json", {
        "a": {"model_type": "cnn", "grid": [[[4], [1]], [[4], [1]]]}})
    for extra in ([], ["--dry-run"]):
        one_line_error(cli("sweep", "g", "--grid-file", grid, "-o", a_file, *extra,
                           env=no_data_env(tmp_path)), "a_file", "Not a directory")
        one_line_error(cli("sweep", "a", "--grid-file", twice, "-o", tmp_path / "o",
                           *extra, env=no_data_env(tmp_path)),
                       "several runs writing the same result file")


# --------------------------------------------------------------------------
# 13. Deeply nested JSON is an invalid file, not a RecursionError
# --------------------------------------------------------------------------

def test_deeply_nested_json_is_counted_as_invalid(tiny_env, tmp_path, capsys):
    deep = "[" * 200_000 + "]" * 200_000
    grid = tiny_grid(tmp_path / "g.json", widths=((4,),))
    result = tiny_env / "out" / "seed42" / "g_L1_K4.json"
    result.parent.mkdir(parents=True)
    result.write_text(deep)
    assert ex.main(["sweep", "g", "--grid-file", str(grid), "-o", str(tiny_env / "out"),
                    "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nests too deeply" in out and "bad   seed42/g_L1_K4" in out
    with pytest.raises(ex.ExperimentFileError, match="g_L1_K4.json nests too deeply"):
        ex.load_experiment(result)
    from hw2.plot import plot_exp_results

    with pytest.raises(ex.ExperimentFileError, match="nests too deeply"):
        plot_exp_results("g_*", results_dir=result.parent)
    (tmp_path / "deep.json").write_text(deep)
    one_line_error(cli("sweep", "g", "--grid-file", tmp_path / "deep.json"),
                   "deep.json nests too deeply")
    big = tmp_path / "big.json"
    big.write_text(" " * (5 << 20))
    one_line_error(cli("sweep", "g", "--grid-file", big), "big.json is 5.2 MB")


def test_a_grid_file_that_is_no_regular_file_is_refused_unread(tmp_path, monkeypatch):
    # /dev/zero has size 0 and no end: it was read until memory ran out.
    for path, words in (("/dev/zero", "is not a regular file"),
                        (tmp_path, "is a folder, not a file")):
        one_line_error(cli("sweep", "g", "--grid-file", path, timeout=60),
                       f"grid file {path}", words)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it would wait for a writer
    one_line_error(cli("sweep", "g", "--grid-file", fifo, timeout=60), "fifo.json",
                   "is not a regular file")
    # A file larger than it says (it grew after its size was read) is read only up
    # to the limit.
    from hw2 import _io

    grown = tmp_path / "grown.json"
    grown.write_text("[" + " " * 100 + "]")
    real_stat = Path.stat
    monkeypatch.setattr(Path, "stat", lambda self, **kw: os.stat_result(
        (*real_stat(self, **kw)[:6], 10, *real_stat(self, **kw)[7:]))
        if self == grown else real_stat(self, **kw))
    with pytest.raises(ValueError, match="grown.json is larger than 50 bytes"):
        _io.read_json(grown, what="grid file", max_bytes=50)


# --------------------------------------------------------------------------
# 14. The decode cache is checked and cleaned
# --------------------------------------------------------------------------

def _cache_file(tiny_cifar) -> Path:
    (path,) = Path(tiny_cifar["HW2_CACHE_DIR"]).glob("cifar10-*.pt")
    return path


def test_a_cache_with_impossible_labels_is_decoded_again(tiny_cifar, monkeypatch):
    from hw2 import data

    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    cache = _cache_file(tiny_cifar)
    saved = torch.load(cache, weights_only=True)
    bad = {**saved, "train_y": saved["train_y"] + 10}
    torch.save(bad, cache)
    with pytest.warns(data.DataWarning, match="train_y holds labels from 10 to 19; 10 "
                                               "classes need 0 to 9"):
        loaded = data.load_cifar10()
    assert int(loaded.train_y.max()) == 9
    assert int(torch.load(cache, weights_only=True)["train_y"].max()) == 9  # replaced


def test_an_unreadable_cache_is_a_permissions_error(tiny_cifar, monkeypatch):
    from hw2 import data

    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    cache = _cache_file(tiny_cifar)
    real_access = os.access
    monkeypatch.setattr(data.cache.os, "access",
                        lambda p, mode: False if Path(p) == cache else real_access(p, mode))
    with pytest.raises(data.CorruptDataError, match="may not read it.*chmod a\\+r"):
        data.load_cifar10()


def test_temporary_files_of_a_killed_cache_writer_are_removed(tiny_cifar, monkeypatch):
    from hw2 import data

    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    folder = Path(tiny_cifar["HW2_CACHE_DIR"])
    old = folder / ".cifar10-0123456789abcdef0123.pt.k1ll3d00.tmp"
    fresh = folder / ".cifar10-0123456789abcdef0123.pt.wr1t1ng0.tmp"
    for path in (old, fresh):
        path.write_bytes(b"\0" * 1000)
    os.utime(old, (time.time() - 3600,) * 2)
    data.load_cifar10()
    assert not old.exists() and fresh.exists()  # a live writer's file stays
    fresh.unlink()


# --------------------------------------------------------------------------
# 15. Leftovers
# --------------------------------------------------------------------------

def test_the_claim_a_kill_left_after_the_result_is_removed(tiny_env, tmp_path):
    grid = tiny_grid(tmp_path / "g.json", epochs=1, widths=((4,),))
    jobs = sweep.sweep_jobs(["g"], {"out_dir": str(tiny_env / "out")}, grid=str(grid),
                            protocol=None)
    cfg = ex.RunConfig.from_dict(jobs[0])
    from helpers import write_finished_result

    write_finished_result(jobs[0])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    path = claims.claim_path(cfg)
    path.write_text(json.dumps({"host": platform.node(), "pid": int(dead), "started": 0,
                                "token": "old"}))
    import io

    stream = io.StringIO()
    assert sweep.run_sweep(jobs, ex.LocalExecutor(), stream=stream) == 0
    assert "removed the claim its finished run left behind" in stream.getvalue()
    assert not path.exists()


def test_a_checkpoint_folder_that_is_a_file_is_refused_before_an_epoch(tmp_path):
    from hw2.training import CheckpointError, TorchTrainer

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    trainer = TorchTrainer(model, torch.nn.CrossEntropyLoss(),
                           torch.optim.SGD(model.parameters(), lr=0.1))
    calls = []
    trainer.train_epoch = lambda *a, **k: calls.append(1)
    batches = [(torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(CheckpointError, match="a_file is a file, not a folder"):
        trainer.fit(batches, batches, 2, checkpoints=a_file / "ck")
    assert not calls


@pytest.mark.parametrize("lost", ["rng", "loaders"])
def test_a_checkpoint_without_a_part_is_a_checkpoint_error(tiny_env, monkeypatch, lost):
    from hw2.training import CheckpointError

    ckpt = tiny_env / "ck"
    args = [*RUN, "-o", tiny_env / "out", "--checkpoints", ckpt, "--epochs", "3"]
    with monkeypatch.context() as m:
        kill_after_first_epoch(m)
        with pytest.raises(Killed):
            ex.main(list(map(str, args)))
    saved = torch.load(f"{ckpt}.pt", weights_only=True)
    del saved[lost]
    torch.save(saved, f"{ckpt}.pt")
    cfg = ex.RunConfig(run_name="r", out_dir=str(tiny_env / "out"),
                       checkpoints=str(ckpt), epochs=3, **SMALL)
    with pytest.raises(CheckpointError, match=f"incomplete: it lacks {lost}"):
        ex.run_config(cfg)


# --------------------------------------------------------------------------
# 16. Minor
# --------------------------------------------------------------------------

def test_a_run_name_with_a_newline_is_refused(tmp_path):
    one_line_error(cli("run-exp", "-n", "a\nb", "-K", "8", "-L", "1",
                       env=no_data_env(tmp_path)), "without control characters")


def test_models_name_a_wrong_input():
    from hw2.cnn import ConvClassifier, ResidualBlock, YourCodeNet

    net = ConvClassifier((3, 32, 32), 10, [8], 1, [16])
    with pytest.raises(ValueError, match=r"takes a batch of images \(B, C, H, W\), got a "
                                         r"tensor of shape \(3, 32, 32\)"):
        net(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="takes images of 3 channels, got 1"):
        net(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="built for 32×32 images, got 28×28"):
        net(torch.zeros(2, 3, 28, 28))
    with pytest.raises(TypeError, match=r"floating-point images, got torch.uint8 .*x.float\(\) / 255"):
        net(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ResidualBlock takes images of 4 channels"):
        ResidualBlock(4, [4], [3])(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="YourCodeNet takes a batch"):
        YourCodeNet((3, 32, 32), 10, [8, 16], 1, [])(torch.zeros(32, 32))


def test_an_mlp_with_a_number_for_its_hidden_layers_says_so():
    from hw2.layers import MLP

    with pytest.raises(TypeError, match=r"hidden_features must be a list of layer widths, "
                                        r"e.g. \[100, 50\] .* got 5"):
        MLP(10, 3, hidden_features=5)


def test_a_sweep_on_a_missing_gpu_fails_before_loading_the_data(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    grid = tiny_grid(tmp_path / "g.json", widths=((4,),))
    r = cli("sweep", "g", "--grid-file", grid, "-o", tmp_path / "o", "-d", "cuda",
            env=no_data_env(tmp_path))
    assert r.returncode == 2 and "CUDA is not available" in r.stderr, r.stderr
    assert "CIFAR-10" not in r.stderr  # the data was never looked for
