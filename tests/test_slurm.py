"""The sweep's SLURM executor against a real SLURM cluster started on this machine.

``slurm_cluster`` (tests/slurm_fixture.py, via conftest.py) runs munged,
slurmctld and slurmd for the session. Every test drives the command line a
user types, ``python -m hw2.experiments sweep ... --executor slurm``, on a
tiny CIFAR-10-shaped image folder (the ``tiny_cifar`` fixture of conftest.py), with a grid file of small CPU runs, and checks
the result files that come back, what the jobs logged, and the exit code.

Skipped, saying what to install, where the SLURM programs are missing.
The module's other tests (options, config file, skipping) need no cluster.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from helpers import check_result_file, recording_env, write_finished_result
from hw2 import experiments
from hw2.experiments import cli, executors, slurm, sweep

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "hw2.experiments"]

# Under pytest-xdist every test of this file runs in one worker (--dist loadgroup),
# so only that worker starts the session's one-node cluster.
pytestmark = pytest.mark.xdist_group("slurm")
TINY_CIFAR_PER_CLASS = (8, 4)  # images per class of the tiny_cifar fixture (conftest.py)

# Small CPU runs: a 1-conv net on 80 training images, batches of 8.
RUN = dict(bs_train=8, bs_test=20, batches=2, epochs=1, early_stopping=None, hidden_dims=[16],
           lr=1e-3, optimizer="adam", lr_schedule="constant", warmup=0.0, augment=False,
           device="cpu", amp=False, channels_last=False)


def grid_file(tmp_path: Path, experiments_: dict) -> Path:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(experiments_))
    return path


SLURM_OPTIONS = dict(partition="debug", time_min=30, cpus_per_task=1, mem_gb=1, poll_s=1,
                     max_requeues=3)


def slurm_config(tmp_path: Path) -> Path:
    """The sweep's SLURM options as a user writes them (TOML)."""
    values = dict(SLURM_OPTIONS, log_dir=str(tmp_path / "slurm_logs"))
    lines = ["[slurm]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / "slurm.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep_command(names, grid: Path, out: Path, config: Path) -> list[str]:
    return [*CLI, "sweep", *names, "--grid-file", str(grid),
            "-o", str(out), "--executor", "slurm", "--slurm-config", str(config)]


def job_env(tiny_cifar, extra: dict | None = None) -> dict:
    env = {**os.environ, **tiny_cifar, **(extra or {})}
    env.pop("HW2_RESULTS_DIR", None)
    return env


def run_cli(cmd, env, timeout=150) -> subprocess.CompletedProcess:
    """Run the CLI; its stdout and stderr together in ``.output``."""
    r = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    r.output = r.stdout
    print(r.output)
    return r


def check_result(path: Path, epochs: int) -> dict:
    """The result file loads and is complete (a CPU run on all 80 training images);
    returns the whole record."""
    record = check_result_file(path, epochs)
    assert record["device"]["type"] == "cpu"
    assert record["data"]["train_images"] == 80
    return record


def ledger(log_dir: Path) -> dict:
    return json.loads((log_dir / "submitted.json").read_text())


# A sitecustomize for the jobs of the preemption tests: every epoch takes at
# least HW2_TEST_EPOCH_SLEEP seconds, so a run is reliably still going when
# the test stops it after its first checkpoint.
SLOW_EPOCHS = textwrap.dedent("""
    import os, time
    delay = float(os.environ.get("HW2_TEST_EPOCH_SLEEP", "0"))
    if delay:
        import hw2.training as _t
        _save = _t.Trainer.save_checkpoint
        def save_checkpoint(self, *args, **kwargs):
            _save(self, *args, **kwargs)
            time.sleep(delay)
        _t.Trainer.save_checkpoint = save_checkpoint
""")


def slow_env(tmp_path: Path, tiny_cifar, delay: float = 1.0) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_EPOCHS)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return job_env(tiny_cifar, {"PYTHONPATH": path, "HW2_TEST_EPOCH_SLEEP": str(delay)})


def popen_lines(cmd, env):
    """Start the CLI; a thread collects its output lines (stdout and stderr) as they come."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)
            print(line, end="")

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
             lines: list[str] | None = None):
    """Poll ``predicate`` until it returns something true; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            text = "".join(lines) if lines is not None else proc.communicate()[0]
            pytest.fail(f"the sweep exited ({proc.returncode}) before {what}:\n{text}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def job_log(log_dir: Path, job_id: str, stream: str = "out") -> str:
    path = log_dir / job_id / f"{job_id}_0_log.{stream}"
    return path.read_text() if path.exists() else ""


# ---------------------------------------------------------------------------
# On the cluster
# ---------------------------------------------------------------------------

def test_smoke_sweep_on_slurm(slurm_cluster, tiny_cifar, tmp_path):
    """Three one-epoch runs go out as one job array; three complete result files come back;
    a second invocation finds them and submits nothing."""
    grid = grid_file(tmp_path, {"smoke": {"model_type": "cnn", "hparams": RUN,
                                          "grid": [[[8], [1, 2]], [[16], [1]]]}})
    # A sweep writes its seed's files to seed<N>/ (42 unless set).
    results, config = tmp_path / "results", slurm_config(tmp_path)
    out = results / "seed42"
    cmd = sweep_command(["smoke"], grid, results, config)
    env = job_env(tiny_cifar)

    r = run_cli(cmd, env)
    assert r.returncode == 0, r.output
    assert "submitted 3 runs as job array" in r.output
    assert "3 of 3 runs have results" in r.output
    names = sorted(p.name for p in out.glob("*.json"))
    assert names == ["smoke_L1_K16.json", "smoke_L1_K8.json", "smoke_L2_K8.json"]
    for p in out.glob("*.json"):
        check_result(p, epochs=1)
    # The jobs ran on the cluster, as array elements of one job, and logged there.
    jobs = ledger(tmp_path / "slurm_logs")
    assert len({v["job_id"].split("_")[0] for v in jobs.values()}) == 1
    for entry in jobs.values():
        assert "wrote" in job_log(tmp_path / "slurm_logs", entry["job_id"])
    assert not list(out.glob(".*"))  # no checkpoints or temporary files left

    again = run_cli(cmd, env)
    assert again.returncode == 0
    assert "3 already have result files (skipped), 0 to run" in again.output
    assert "submitted" not in again.output


def test_a_slurm_sweep_and_a_local_sweep_share_one_folder(slurm_cluster, tiny_cifar, tmp_path):
    """Two sweeps of the same grid into the same folder, one on the cluster, one here, at
    the same time (as requeued jobs or a second submission would): every run is trained
    exactly once, and both sweeps end with every result and exit code 0."""
    grid = grid_file(tmp_path, {"shared": {"model_type": "cnn", "hparams": dict(RUN, epochs=3),
                                           "grid": [[[8], [1, 2]], [[16], [1, 2]]]}})
    # A sweep writes its seed's files to seed<N>/ (42 unless set).
    results, config = tmp_path / "results", slurm_config(tmp_path)
    out = results / "seed42"
    env = recording_env(tmp_path, tiny_cifar)
    env.pop("HW2_RESULTS_DIR", None)
    on_cluster, cluster_lines = popen_lines(sweep_command(["shared"], grid, results, config), env)
    here, here_lines = popen_lines([*CLI, "sweep", "shared", "--grid-file", str(grid),
                                    "-o", str(results)], env)
    assert here.wait(timeout=240) == 0, "".join(here_lines)
    assert on_cluster.wait(timeout=240) == 0, "".join(cluster_lines)
    started = (tmp_path / "runs.log").read_text().split()[1::2]
    names = ["shared_L1_K8", "shared_L2_K8", "shared_L1_K16", "shared_L2_K16"]
    assert sorted(started) == sorted(names), f"runs trained: {started}"
    for name in names:
        check_result(out / f"{name}.json", epochs=3)
    for lines in (cluster_lines, here_lines):
        assert any("4 of 4 runs have results" in line for line in lines), "".join(lines)
    assert not [p for p in out.glob(".*") if p.is_file()]  # no claims, checkpoints, temp files


def test_cancelled_run_resumes_from_its_checkpoint(slurm_cluster, tiny_cifar, tmp_path):
    """scancel one job after its first epoch: the sweep reports the run with its log and
    exits 1; submitted again, the run continues from its checkpoint and completes."""
    epochs = 8
    grid = grid_file(tmp_path, {
        "quick": {"model_type": "cnn", "hparams": RUN, "grid": [[[8], [1]]]},
        "slow": {"model_type": "cnn", "hparams": dict(RUN, epochs=epochs), "grid": [[[8], [1]]]},
    })
    # A sweep writes its seed's files to seed<N>/ (42 unless set).
    results, config = tmp_path / "results", slurm_config(tmp_path)
    out = results / "seed42"
    log_dir = tmp_path / "slurm_logs"
    cmd = sweep_command(["quick", "slow"], grid, results, config)
    env = slow_env(tmp_path, tiny_cifar)

    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        checkpoint = wait_for(lambda: next(iter(out.glob(".slow_L1_K8.*.pt")), None), 120,
                              "the slow run's first checkpoint", proc)
        job_id = ledger(log_dir)[str(out / "slow_L1_K8.json")]["job_id"]
        subprocess.run(["scancel", job_id], check=True)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output)
    assert proc.returncode == 1
    assert f"FAILED seed42/slow_L1_K8 (job {job_id})" in output
    stderr_log = log_dir / job_id / f"{job_id}_0_log.err"
    assert f"seed42/slow_L1_K8: job {job_id} ended CANCELLED\n      log: {stderr_log}\n" \
        in output
    assert stderr_log.exists()
    assert checkpoint.exists() and not (out / "slow_L1_K8.json").exists()
    check_result(out / "quick_L1_K8.json", epochs=1)

    # Resubmit without waiting, the job held in the queue (a busy cluster) ...
    held = tmp_path / "held.json"
    held.write_text(json.dumps({"slurm": {**SLURM_OPTIONS,
                                          "log_dir": str(log_dir), "additional": {"hold": True}}}))
    r = run_cli(sweep_command(["quick", "slow"], grid, results, held) + ["--no-wait"], env)
    assert r.returncode == 0, r.output
    assert "1 already have result files (skipped), 1 to run" in r.output
    assert "not waiting" in r.output
    new_id = ledger(log_dir)[str(out / "slow_L1_K8.json")]["job_id"]
    assert new_id != job_id
    assert slurm.slurm_states([new_id]) == {new_id: "PENDING"}
    # ... then the same command again: it waits for that job instead of submitting another.
    proc, lines = popen_lines(cmd, env)
    try:
        wait_for(lambda: any(f"job {new_id} from an earlier submission is pending; waiting for it"
                             in line for line in lines), 120, "the sweep to find the queued job", proc, lines)
        subprocess.run(["scontrol", "release", new_id], check=True)
        assert proc.wait(timeout=120) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any("submitted" in line for line in lines)
    log = job_log(log_dir, new_id)
    assert "slow_L1_K8: resuming from checkpoint" in log, log
    resumed_after = int(log.split("resuming from checkpoint")[1].split("after epoch")[1].split()[0])
    assert 1 <= resumed_after < epochs
    record = check_result(out / "slow_L1_K8.json", epochs=epochs)
    assert record["resumed_from_checkpoint"] is True
    assert sorted(p.name for p in out.glob("slow*")) == ["slow_L1_K8.json"]  # one, complete
    assert not checkpoint.exists()  # removed once the result was written


def test_preempted_job_requeues_itself_and_resumes(slurm_cluster, tiny_cifar, tmp_path):
    """SLURM's preemption/timeout warning (USR2) makes submitit call SweepTask.checkpoint and
    requeue the job; the requeued job resumes from the checkpoint; the sweep, still waiting,
    ends with the complete result and exit code 0."""
    epochs = 6
    grid = grid_file(tmp_path, {"slow": {"model_type": "cnn", "hparams": dict(RUN, epochs=epochs),
                                         "grid": [[[8], [1]]]}})
    # A sweep writes its seed's files to seed<N>/ (42 unless set).
    results, config = tmp_path / "results", slurm_config(tmp_path)
    out = results / "seed42"
    log_dir = tmp_path / "slurm_logs"
    cmd = sweep_command(["slow"], grid, results, config)
    proc = subprocess.Popen(cmd, env=slow_env(tmp_path, tiny_cifar), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: next(iter(out.glob(".slow_L1_K8.*.pt")), None), 120,
                 "the run's first checkpoint", proc)
        job_id = ledger(log_dir)[str(out / "slow_L1_K8.json")]["job_id"]
        # What SLURM sends signal_delay_s before a time limit or on preemption.
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        output = proc.communicate(timeout=150)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output)
    assert proc.returncode == 0, output
    assert f"slow_L1_K8 (job {job_id}) was requeued" in output
    log = job_log(log_dir, job_id)
    assert "preempted or out of time; requeueing" in log, log
    assert "slow_L1_K8: resuming from checkpoint" in log, log  # the same job, started again
    record = check_result(out / "slow_L1_K8.json", epochs=epochs)
    assert record["resumed_from_checkpoint"] is True


# ---------------------------------------------------------------------------
# Without a cluster
# ---------------------------------------------------------------------------

def test_slurm_options_from_toml_and_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent("""
        [slurm]
        partition = "gpu"
        time_min = 90
        gpus_per_node = 1
        cpus_per_task = 8
        mem_gb = 32
        setup = ["module load cuda"]
        [slurm.additional]
        exclude = "node13"
    """))
    parser = cli.build_parser()
    args = parser.parse_args(["sweep", "exp1_1", "--executor", "slurm", "--slurm-config", str(path),
                              "--slurm-time", "30", "--no-wait"])
    ex = cli.executor_from_args(args)
    assert isinstance(ex, slurm.SlurmExecutor) and not ex.wait
    p = ex.options.submitit_parameters()
    assert p["partition"] == "gpu" and p["time"] == 30 and p["gpus_per_node"] == 1
    assert p["cpus_per_task"] == 8 and p["mem"] == "32GB" and p["setup"] == ["module load cuda"]
    assert p["additional_parameters"] == {"exclude": "node13"}
    local = cli.executor_from_args(parser.parse_args(["sweep", "exp1_1"]))
    assert isinstance(local, executors.LocalExecutor)


@pytest.mark.parametrize("text, match", [
    ("[slurm]\npartiton = 'gpu'\n", "unknown SLURM option.*partiton"),
    ("[slurm]\ntime_min = -5\n", "time_min .* positive"),
    ("[slurm\n", "not valid TOML"),
    ("[slurm]\nsetup = 'module load cuda'\n",
     r"SLURM options \(.*bad.toml\): setup must be a list of shell lines, got 'module"),
    ("[slurm]\nadditional = 3\n",
     r"SLURM options \(.*bad.toml\): additional must be a table of sbatch options, got 3"),
])
def test_bad_slurm_config_is_named(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        slurm.SlurmOptions.from_file(path)
    if "partiton" not in text:
        return  # one trip through the command line is enough
    r = subprocess.run([*CLI, "sweep", "exp1_1", "--executor",
                        "slurm", "--slurm-config", str(path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 2 and str(path) in r.stderr


TRACEBACK = """Traceback (most recent call last):
  File "/x/hw2/experiments/sweep.py", line 10, in run_job
    raise DataError("boom")
hw2.data.DataError: boom
  more words of the message
"""


def test_error_summary_names_the_exception():
    assert sweep.error_summary(TRACEBACK) == "hw2.data.DataError: boom"
    assert sweep.error_summary("job 3 ended CANCELLED") == "job 3 ended CANCELLED"
    assert sweep.error_summary("") == ""


def test_finished_runs_are_not_submitted(tmp_path):
    """Runs whose result file exists never reach the executor; the exit code counts failures."""
    specs = experiments.sweep_jobs(["exp1_3"], {"out_dir": str(tmp_path)})
    write_finished_result(specs[0])
    sweep.plan_run(specs[1]).result.write_text("{}")  # not a result: the run trains again
    seen = []

    class Recorder:
        name = "test"

        def execute(self, runs):
            seen.extend(r.name for r in runs)
            return [sweep.Outcome(r, "failed" if r.name.endswith("L4_K64-128-256") else "done",
                                    TRACEBACK, log=Path("/logs/x.err")) for r in runs]

    import io
    stream = io.StringIO()
    assert sweep.run_sweep(specs, Recorder(), stream=stream) == 1
    seeds = experiments.PROTOCOLS["gpu"].seeds
    assert seen[:3] == [f"seed{seeds[0]}/exp1_3_L{L}_K64-128-256" for L in (2, 3, 4)]
    assert len(seen) == 4 * len(seeds) - 1
    text = stream.getvalue()
    assert f"seed{seeds[0]}/exp1_3_L2_K64-128-256: result file " in text
    assert "is incomplete" in text
    assert (f"seed{seeds[0]}/exp1_3_L4_K64-128-256: hw2.data.DataError: boom\n"
            f"      log: /logs/x.err\n") in text
    assert f"1 already have result files (skipped), {len(seen)} to run" in text


@pytest.mark.filterwarnings("ignore::hw2.data.DataWarning")  # the tiny image folder is tiny
def test_local_executor_runs_the_sweep_here(tiny_cifar, tmp_path, monkeypatch):
    """The same run_sweep with the local executor: results land in the same files."""
    for key, value in tiny_cifar.items():
        monkeypatch.setenv(key, value)
    grid = {"smoke": experiments.Experiment.from_dict(
        "smoke", {"model_type": "cnn", "hparams": RUN, "grid": [[[8], [1, 2]]]})}
    specs = experiments.sweep_jobs(["smoke"], {"out_dir": str(tmp_path)}, grid=grid, protocol=None)
    import io
    stream = io.StringIO()
    assert sweep.run_sweep(specs, executors.LocalExecutor(gpus=0), stream=stream) == 0
    for name in ("smoke_L1_K8.json", "smoke_L2_K8.json"):
        check_result(tmp_path / "seed42" / name, epochs=1)
    assert "2 of 2 runs have results" in stream.getvalue()
    stream = io.StringIO()
    assert sweep.run_sweep(specs, executors.LocalExecutor(), stream=stream) == 0
    assert "2 already have result files (skipped), 0 to run" in stream.getvalue()
