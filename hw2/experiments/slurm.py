"""Where a sweep's runs execute on a SLURM cluster: one submitit job array.

``python -m hw2.experiments sweep exp1_1 exp1_2 --executor slurm`` hands the
sweep's runs to :class:`SlurmExecutor`, which submits one job array (one job
per run: partition, time limit, CPUs, GPUs and memory from options or a
TOML/JSON file, see :class:`SlurmOptions`) and waits with a progress line.

- A job that SLURM preempts or that reaches its time limit is sent ``USR2``
  first; submitit then calls :meth:`SweepTask.checkpoint` and requeues the
  job, which resumes from the Trainer checkpoint its run writes every epoch.
- A job that was cancelled or failed is resubmitted by running the same
  command again; jobs of an earlier invocation that are still queued or
  running are waited for, not submitted twice.

Importing this module does no work; submitit and torch are imported when used.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

from hw2 import _checks
from hw2._io import atomic_write
from hw2.experiments.executors import Progress
from hw2.experiments.results import result_state
from hw2.experiments.config import RunConfig
from hw2.experiments.sweep import Outcome, Run, error_summary, run_job

__all__ = ["SweepTask", "SlurmOptions", "SlurmExecutor", "slurm_states"]

#: SLURM job states after which a job will not run again by itself.
FINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
    "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT",
})
#: Not known to SLURM (None: not yet in, or already gone from, sacct/squeue), or
#: preempted, which is final unless the cluster requeues the job: a job that stays
#: in one of these for UNSETTLED_GRACE_S seconds without a result has failed.
UNSETTLED_STATES = frozenset({None, "PREEMPTED"})
UNSETTLED_GRACE_S = 120
#: States of a job that is still in the queue or on a node.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING",
    "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
    "RESV_DEL_HOLD",
})


def _checkpoint_epoch(run: Run) -> int:
    """Epochs finished according to the run's Trainer checkpoint (0 without one)."""
    from hw2.training import checkpoint_epoch

    return checkpoint_epoch(f"{run.checkpoint}.pt")


class SweepTask:
    """The callable a SLURM job runs: one run of the sweep.

    submitit pickles it into the job; in the job, ``__call__`` runs the spec with
    :func:`hw2.experiments.run_job` and returns the result file's path. When the
    job is preempted or reaches its time limit, submitit calls
    :meth:`checkpoint`, which resubmits the same task: the Trainer's checkpoint
    on disk, written after every epoch, is what carries the progress.
    """

    def __init__(self, run: Run):
        self.run = run

    def __call__(self) -> str:
        run = self.run
        if result_state(RunConfig.from_dict(run.spec))[0] == "done":
            print(f"{run.name}: result file already exists, nothing to do", flush=True)
            return str(run.result)
        start = _checkpoint_epoch(run)
        if start:
            print(f"{run.name}: resuming from checkpoint {run.checkpoint}.pt after "
                  f"epoch {start}", flush=True)
        else:
            print(f"{run.name}: starting", flush=True)
        run_job(run.spec, log=lambda text: print(text, flush=True))
        if not run.result.exists():
            raise RuntimeError(f"{run.name}: the run finished but wrote no result file "
                               f"{run.result}")
        print(f"{run.name}: wrote {run.result}", flush=True)
        return str(run.result)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on preemption/timeout: requeue the same run."""
        from submitit.helpers import DelayedSubmission
        print(f"{self.run.name}: preempted or out of time; requeueing "
              f"(resumes after epoch {_checkpoint_epoch(self.run)})", flush=True)
        return DelayedSubmission(SweepTask(self.run))

    def __repr__(self) -> str:
        return f"SweepTask({self.run.name})"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


@dataclass
class SlurmOptions:
    """What each SLURM job of a sweep asks for; one job = one run.

    Read from a TOML or JSON file by :meth:`from_file` (keys as below, at the top
    level or under a ``[slurm]`` table); command-line flags override the file.
    ``setup`` holds shell lines run before the job's python (``module load ...``);
    ``additional`` any further ``#SBATCH --key=value`` option.
    """

    partition: str | None = None
    time_min: int = 60
    cpus_per_task: int = 4
    gpus_per_node: int = 0
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 64
    max_requeues: int = 3
    signal_delay_s: int = 120
    job_name: str = "hw2-sweep"
    log_dir: str | None = None
    python: str | None = None
    poll_s: float = 10.0
    setup: list = field(default_factory=list)
    additional: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SlurmOptions":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"cannot read the SLURM config file {path}: "
                             f"{e.strerror}") from None
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import tomllib
                data = tomllib.loads(text)
        except ValueError as e:
            kind = "JSON" if path.suffix == ".json" else "TOML"
            raise ValueError(f"the SLURM config file {path} is not valid "
                             f"{kind}: {e}") from None
        if isinstance(data.get("slurm"), dict):
            data = data["slurm"]
        return cls().updated(data, source=str(path))

    def updated(self, values: dict, source: str = "options") -> "SlurmOptions":
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown SLURM option(s) {', '.join(unknown)} in "
                             f"{source}; known: {', '.join(known)}")
        new = replace(self, **{k: v for k, v in values.items() if v is not None})
        new.validate(source)
        return new

    def validate(self, source: str = "options") -> None:
        owner = f"SLURM options ({source})"

        def positive(name, value, allow_zero=False):
            if allow_zero:
                _checks.real_in(name, value, 0, math.inf, owner=owner)
            else:
                _checks.positive_real(name, value, owner=owner)
        positive("time_min", self.time_min)
        positive("cpus_per_task", self.cpus_per_task)
        positive("gpus_per_node", self.gpus_per_node, allow_zero=True)
        positive("array_parallelism", self.array_parallelism)
        positive("max_requeues", self.max_requeues, allow_zero=True)
        positive("poll_s", self.poll_s)
        if self.mem_gb is not None:
            positive("mem_gb", self.mem_gb)
        if (not isinstance(self.setup, list)
                or not all(isinstance(s, str) for s in self.setup)):
            _checks.fail("setup", "a list of shell lines", self.setup, owner)
        if not isinstance(self.additional, dict):
            _checks.fail("additional", "a table of sbatch options", self.additional,
                         owner)

    def submitit_parameters(self) -> dict:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        p: dict[str, Any] = dict(
            job_name=self.job_name, time=int(self.time_min),
            cpus_per_task=int(self.cpus_per_task),
            array_parallelism=int(self.array_parallelism),
            signal_delay_s=int(self.signal_delay_s),
        )
        if self.gpus_per_node:
            p["gpus_per_node"] = int(self.gpus_per_node)
        if self.mem_gb:
            mem = float(self.mem_gb)
            p["mem"] = f"{int(mem)}GB" if mem == int(mem) else f"{int(mem * 1024)}MB"
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                p[key] = getattr(self, key)
        if self.setup:
            p["setup"] = list(self.setup)
        if self.additional:
            p["additional_parameters"] = dict(self.additional)
        return p

    def sbatch_script(self, log_dir: str | os.PathLike = "slurm_logs",
                      runs: int = 1) -> str:
        """The batch script submitit writes for a sweep of ``runs`` runs.

        With these options: what ``sbatch`` receives, to check a configuration
        without a cluster.
        """
        from submitit.slurm.slurm import _make_sbatch_string

        python = self.python or sys.executable
        return _make_sbatch_string(
            command=f"{python} -u -m submitit.core._submit {Path(log_dir) / '%j'}",
            folder=Path(log_dir) / "%j", map_count=runs if runs > 1 else None,
            **self.submitit_parameters())


def _run_slurm_command(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def slurm_states(job_ids: Iterable[str]) -> dict[str, str]:
    """SLURM's state of each job.

    ``PENDING``, ``RUNNING``, ``COMPLETED``, ``CANCELLED`` ... Job ids may be
    array elements (``1234_5``). Asks ``sacct``; on clusters without
    accounting it asks ``squeue``, which forgets finished jobs after SLURM's
    ``MinJobAge``: jobs it does not know are left out of the answer.
    """
    job_ids = list(job_ids)
    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    r = _run_slurm_command(["sacct", "-X", "-n", "-P", "-o", "JobID,State"] +
                           [a for b in bases for a in ("-j", b)])
    if r.returncode == 0:
        from submitit.slurm.slurm import SlurmInfoWatcher
        info = SlurmInfoWatcher().read_info("JobID|State\n" + r.stdout)
        states = {k: v["State"].split()[0] for k, v in info.items() if v.get("State")}
    else:
        # one at a time: squeue fails outright on an id it has forgotten
        for b in bases:
            r = _run_slurm_command(["squeue", "-h", "-r", "-t", "all", "-j", b,
                                    "-o", "%i|%T"])
            for line in r.stdout.splitlines() if r.returncode == 0 else []:
                jid, _, state = line.strip().partition("|")
                if jid and state:
                    states[jid] = state.split()[0]
    return {j: states[j] for j in job_ids if j in states}


class SlurmExecutor:
    """Submits a sweep's runs as one submitit job array and waits for them.

    Logs and submitit's files go to ``<log_dir>/<job id>/`` (default
    ``<results dir>/slurm_logs``; on a cluster it must be on a file system the
    nodes share). ``<log_dir>/submitted.json`` remembers which job runs which
    result file, so running the sweep again waits for jobs still queued or
    running instead of submitting them twice.
    """

    name = "slurm"

    def __init__(self, options: SlurmOptions | None = None, wait: bool = True,
                 stream: TextIO | None = None):
        self.options = options or SlurmOptions()
        self.options.validate()
        self.wait = wait
        self.stream = stream

    # -- bookkeeping of submitted jobs ---------------------------------------
    def _log_dir(self, runs: Sequence[Run]) -> Path:
        if self.options.log_dir:
            return Path(self.options.log_dir).resolve()
        return (runs[0].result.parent / "slurm_logs").resolve()

    @staticmethod
    def _load_ledger(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _save_ledger(path: Path, ledger: dict) -> None:
        content = json.dumps(ledger, indent=1, sort_keys=True)
        atomic_write(path, lambda f: f.write(content), text=True)

    def execute(self, runs: Sequence[Run]) -> list[Outcome]:
        import submitit
        from submitit.core.utils import JobPaths

        if not runs:
            return []
        if shutil.which("sbatch") is None or shutil.which("srun") is None:
            message = ("SLURM's sbatch and srun are not on PATH here: run the sweep "
                       "on a cluster's login node (or start a test cluster with "
                       "tools/slurm/local_cluster.py)")
            print(f"[slurm] {message}", file=self.stream or sys.stderr)
            return [Outcome(run, "failed", message) for run in runs]
        log_dir = self._log_dir(runs)
        log_dir.mkdir(parents=True, exist_ok=True)
        ledger_path = log_dir / "submitted.json"
        ledger = self._load_ledger(ledger_path)
        progress = Progress(len(runs), "slurm", self.stream)

        # Jobs of an earlier invocation that are still alive: wait for them.
        earlier = {str(r.result): ledger[str(r.result)]["job_id"] for r in runs
                   if str(r.result) in ledger}
        alive = slurm_states(earlier.values())
        jobs: dict[str, str] = {}   # result path -> job id
        to_submit = []
        for run in runs:
            jid = earlier.get(str(run.result))
            if jid is not None and alive.get(jid) in ACTIVE_STATES:
                jobs[str(run.result)] = jid
                progress.message(f"[slurm] {run.name}: job {jid} from an earlier "
                                 f"submission is {alive[jid].lower()}; waiting for it")
            else:
                to_submit.append(run)

        if to_submit:
            ex = submitit.SlurmExecutor(folder=log_dir / "%j",
                                        max_num_timeout=self.options.max_requeues,
                                        python=self.options.python)
            ex.update_parameters(**self.options.submitit_parameters())
            try:
                with ex.batch():
                    submitted = [ex.submit(SweepTask(run)) for run in to_submit]
            except Exception as e:  # sbatch refused: no controller, bad partition, ...
                said = [line for line in str(e).strip().splitlines() if line.strip()]
                reason = said[-1].strip() if said else type(e).__name__
                message = f"submission failed: {reason}"
                progress.message(f"[slurm] {str(e).strip()}")
                return [Outcome(run, "failed", message) for run in to_submit] + \
                    [Outcome(run, "failed", "not waited for (the submission failed)")
                     for run in runs if str(run.result) in jobs]
            for run, job in zip(to_submit, submitted):
                jobs[str(run.result)] = job.job_id
                ledger[str(run.result)] = {
                    "job_id": job.job_id, "run": run.name,
                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self._save_ledger(ledger_path, ledger)
            first = submitted[0].job_id.split("_")[0]
            what = (f"{len(submitted)} runs as job array {first}" if len(submitted) > 1
                    else f"1 run as job {first}")
            progress.message(f"[slurm] submitted {what} "
                             f"(partition {self.options.partition or 'default'}, "
                             f"{self.options.time_min} min, "
                             f"{self.options.cpus_per_task} CPUs, "
                             f"{self.options.gpus_per_node} GPUs each); "
                             f"logs in {log_dir}")

        def paths(jid: str) -> JobPaths:
            return JobPaths(log_dir / "%j", job_id=jid, task_id=0)

        if not self.wait:
            progress.message("[slurm] not waiting (--no-wait): run the same command "
                             "again to wait for these jobs and resubmit what failed")
            return [Outcome(run, "submitted", job_id=jobs[str(run.result)],
                            log=paths(jobs[str(run.result)]).stderr) for run in runs]

        outcomes: dict[str, Outcome] = {}
        unsettled_since: dict[str, float] = {}
        last_state: dict[str, str] = {}

        def unsettled_for(jid: str) -> float:
            """Seconds since the job was first seen unknown to SLURM or preempted."""
            return time.monotonic() - unsettled_since.setdefault(jid, time.monotonic())

        try:
            while len(outcomes) < len(runs):
                waiting = [r for r in runs if str(r.result) not in outcomes]
                states = slurm_states(jobs[str(r.result)] for r in waiting)
                running = 0
                for run in waiting:
                    jid = jobs[str(run.result)]
                    p = paths(jid)
                    state = states.get(jid)
                    outcome = None
                    if p.result_pickle.exists():
                        outcome = self._outcome_from_pickle(run, jid, p)
                    elif (state in FINAL_STATES
                          or (state in UNSETTLED_STATES
                              and unsettled_for(jid) > UNSETTLED_GRACE_S)):
                        # Give the result pickle a moment to appear on shared file
                        # systems.
                        time.sleep(1)
                        if p.result_pickle.exists():
                            outcome = self._outcome_from_pickle(run, jid, p)
                        else:
                            why = state or "no longer known to SLURM"
                            outcome = Outcome(run, "failed", f"job {jid} ended {why}",
                                              log=p.stderr, job_id=jid)
                    elif state == "RUNNING":
                        running += 1
                    elif last_state.get(jid) == "RUNNING" and state in ACTIVE_STATES:
                        progress.message(
                            f"[slurm] {run.name} (job {jid}) was requeued "
                            f"({state.lower()}): preempted or out of time; it "
                            f"resumes from its last finished epoch")
                    if state is not None:
                        last_state[jid] = state
                    if state not in UNSETTLED_STATES:
                        unsettled_since.pop(jid, None)
                    if outcome is not None:
                        outcomes[str(run.result)] = outcome
                        if not outcome.ok:
                            progress.message(f"[slurm] FAILED {run.name} (job {jid}): "
                                             f"{error_summary(outcome.message)}"
                                             f"\n        stderr: {outcome.log}")
                failed = sum(not o.ok for o in outcomes.values())
                progress.update(len(runs) - len(outcomes) - running, running,
                                len(outcomes) - failed, failed)
                if len(outcomes) < len(runs):
                    time.sleep(self.options.poll_s)
        except KeyboardInterrupt:
            job_ids = " ".join(sorted({j.split("_")[0] for j in jobs.values()}))
            progress.message("\n[slurm] stopped waiting; the jobs keep running on the "
                             "cluster. Run the same command again to wait for them, or "
                             f"scancel {job_ids}.")
            raise
        finally:
            progress.close()
        return [outcomes[str(r.result)] for r in runs]

    @staticmethod
    def _outcome_from_pickle(run: Run, jid: str, p) -> Outcome:
        from submitit.core.utils import pickle_load
        try:
            kind, value = pickle_load(p.result_pickle)
        except Exception as e:  # truncated, unreadable
            return Outcome(run, "failed", f"unreadable result {p.result_pickle}: {e}",
                           log=p.stderr, job_id=jid)
        if kind == "success" and run.result.exists():
            return Outcome(run, "done", log=p.stderr, job_id=jid)
        message = value if kind == "error" else f"no result file {run.result}"
        return Outcome(run, "failed", str(message).strip(), log=p.stderr, job_id=jid)
