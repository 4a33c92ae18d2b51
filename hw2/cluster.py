"""Where a sweep's runs execute: this machine, or a SLURM cluster through submitit.

``python -m hw2.experiments sweep exp1_1 exp1_2 --executor slurm`` hands the
sweep's runs -- one JSON-able job spec per run, from :mod:`hw2.experiments` --
to :func:`run_sweep`, which

1. skips every run whose result file already exists (results are written
   atomically, so a file that exists is complete);
2. runs each with its Trainer checkpoint path (every spec of
   :func:`hw2.experiments.sweep_jobs` has one; a spec without gets the
   same one, ``<out_dir>/.<result file stem>.<config hash>.ckpt``), so a run that is stopped
   -- preempted, timed out, cancelled, killed -- continues from its last
   finished epoch the next time it is started;
3. executes them with an executor:

   - :class:`LocalExecutor`: this machine. With several GPUs, one worker
     process per GPU (each sees only its own card), runs handed out as
     workers free up; otherwise one run after the other in this process.
   - :class:`SlurmExecutor`: one submitit job array on a SLURM cluster
     (partition, time limit, CPUs, GPUs and memory from options or a TOML/JSON
     file, see :class:`SlurmOptions`), waiting with a progress line. A job
     that SLURM preempts or that reaches its time limit is sent ``USR2``
     first; submitit then calls :meth:`SweepTask.checkpoint` and requeues the
     job, which resumes from the Trainer checkpoint. A job that was cancelled
     or failed is resubmitted by running the same command again; jobs of an
     earlier invocation that are still queued or running are waited for, not
     submitted twice.

4. prints one line per failed run (its name and the path of its log) and
   returns the sweep's exit code: 0 when every run has its result file, 1
   otherwise.

Importing this module does no work; submitit and torch are imported when used.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

from hw2._io import atomic_write

__all__ = [
    "Run", "Outcome", "SweepTask", "LocalExecutor", "SlurmOptions", "SlurmExecutor",
    "run_sweep", "add_executor_arguments", "executor_from_args", "slurm_states",
]

#: SLURM job states after which a job will not run again by itself.
FINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE", "REVOKED", "SPECIAL_EXIT",
})
#: Not known to SLURM (None: not yet in, or already gone from, sacct/squeue), or
#: preempted, which is final unless the cluster requeues the job: a job that stays
#: in one of these for UNSETTLED_GRACE_S seconds without a result has failed.
UNSETTLED_STATES = frozenset({None, "PREEMPTED"})
UNSETTLED_GRACE_S = 120
#: States of a job that is still in the queue or on a node.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "COMPLETING",
    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD",
})


# ---------------------------------------------------------------------------
# Runs and what happened to them
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One run of a sweep: the experiment runner's job spec and where its files go.

    ``name`` is the result file's stem (``exp1_1_L2_K32``), ``result`` the result
    file, ``checkpoint`` the Trainer's checkpoint prefix (the file is
    ``f"{checkpoint}.pt"``).
    """

    name: str
    spec: Any
    result: Path
    checkpoint: Path


@dataclass
class Outcome:
    """What became of one run: ``state`` is 'done', 'failed' or 'submitted' (not waited for)."""

    run: Run
    state: str
    message: str = ""
    log: Path | None = None
    job_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "done"


def _experiments():
    from hw2 import experiments
    return experiments


def _spec_get(spec: Any, key: str, default: Any = None) -> Any:
    if isinstance(spec, dict):
        return spec.get(key, default)
    return getattr(spec, key, default)


def _spec_with(spec: Any, **changes: Any) -> Any:
    if isinstance(spec, dict):
        return {**spec, **changes}
    return replace(spec, **changes)


def plan_run(spec: Any) -> Run:
    """The :class:`Run` of one job spec of :func:`hw2.experiments.sweep_jobs`.

    Those specs carry a checkpoint prefix already; a spec without one gets
    the one :func:`hw2.experiments.sweep_jobs` would give it (in the output
    folder, named after the result file and a hash of the configuration), so
    a run resumes the same checkpoint whichever executor runs it.
    """
    experiments = _experiments()
    result = Path(experiments.result_path(spec)).resolve()
    checkpoint = _spec_get(spec, "checkpoints")
    if not checkpoint:
        checkpoint = Path(experiments._checkpoint_prefix(spec)).resolve()
        spec = _spec_with(spec, checkpoints=str(checkpoint))
    return Run(name=result.stem, spec=spec, result=result, checkpoint=Path(checkpoint))


def checkpoint_epoch(run: Run) -> int:
    """Epochs finished according to the run's Trainer checkpoint (0 when there is none)."""
    path = Path(f"{run.checkpoint}.pt")
    if not path.exists():
        return 0
    try:
        import torch
        state = torch.load(path, map_location="cpu", weights_only=True)
        return int(state.get("epoch", 0))
    except Exception:  # unreadable: the Trainer decides what to do with it
        return 0


def error_summary(message: str) -> str:
    """The line of a traceback (or message) that names the error: ``DataError: no data``."""
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    for line in lines[frames[-1] + 1 if frames else 0:]:
        if not line.startswith((" ", "\t")):
            return line.strip()
    return lines[-1].strip() if lines else ""


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
        if run.result.exists():
            print(f"{run.name}: result file already exists, nothing to do", flush=True)
            return str(run.result)
        start = checkpoint_epoch(run)
        if start:
            print(f"{run.name}: resuming from checkpoint {run.checkpoint}.pt after epoch {start}",
                  flush=True)
        else:
            print(f"{run.name}: starting", flush=True)
        _experiments().run_job(run.spec)
        if not run.result.exists():
            raise RuntimeError(f"{run.name}: the run finished but wrote no result file {run.result}")
        print(f"{run.name}: wrote {run.result}", flush=True)
        return str(run.result)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on preemption/timeout: requeue the same run."""
        from submitit.helpers import DelayedSubmission
        print(f"{self.run.name}: preempted or out of time; requeueing "
              f"(resumes after epoch {checkpoint_epoch(self.run)})", flush=True)
        return DelayedSubmission(SweepTask(self.run))

    def __repr__(self) -> str:
        return f"SweepTask({self.run.name})"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


# ---------------------------------------------------------------------------
# Progress display
# ---------------------------------------------------------------------------

class Progress:
    """Counts of pending / running / done / failed runs, on one refreshing line on a
    terminal, or one line per change otherwise (logs, CI)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.total, self.label = total, label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._last = None

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

    def update(self, pending: int, running: int, done: int, failed: int) -> None:
        counts = (pending, running, done, failed)
        text = (f"[{self.label}] {_runs(self.total)}: {pending} pending, {running} running, "
                f"{done} finished, {failed} failed")
        if self.tty:
            self.stream.write(f"\r{text}  ({self._elapsed()})\x1b[K")
            self.stream.flush()
        elif counts != self._last:
            self.stream.write(f"{text}  ({self._elapsed()})\n")
            self.stream.flush()
        self._last = counts

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = None

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------
# This machine
# ---------------------------------------------------------------------------

class LocalExecutor:
    """Runs a sweep on this machine with :func:`hw2.experiments.run_sweep`.

    ``gpus``: how many GPUs to use (default: every visible one). With more than
    one, each gets a worker process of its own (``CUDA_VISIBLE_DEVICES`` set to
    that card) taking runs from a queue; with one GPU or none the runs execute
    one after the other in this process.
    """

    name = "local"

    def __init__(self, gpus: int | None = None, stream: TextIO | None = None):
        if gpus is not None and gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {gpus}")
        self.gpus = gpus
        self.stream = stream

    def execute(self, runs: Sequence[Run]) -> list[Outcome]:
        if not runs:
            return []
        stream = self.stream if self.stream is not None else sys.stdout

        def log(text: str) -> None:
            print(text, file=stream, flush=True)

        failed = set(_experiments().run_sweep([r.spec for r in runs], gpus=self.gpus, log=log))
        return [Outcome(r, "failed" if (r.name in failed or not r.result.exists()) else "done",
                        "failed (see the output above)" if r.name in failed else
                        ("" if r.result.exists() else f"no result file {r.result}"))
                for r in runs]


# ---------------------------------------------------------------------------
# SLURM
# ---------------------------------------------------------------------------

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
            raise ValueError(f"cannot read the SLURM config file {path}: {e.strerror}") from None
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import tomllib
                data = tomllib.loads(text)
        except ValueError as e:
            raise ValueError(f"the SLURM config file {path} is not valid "
                             f"{'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from None
        if isinstance(data.get("slurm"), dict):
            data = data["slurm"]
        return cls().updated(data, source=str(path))

    def updated(self, values: dict, source: str = "options") -> "SlurmOptions":
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown SLURM option(s) {', '.join(unknown)} in {source}; "
                             f"known: {', '.join(known)}")
        new = replace(self, **{k: v for k, v in values.items() if v is not None})
        new.validate(source)
        return new

    def validate(self, source: str = "options") -> None:
        def positive(name, value, allow_zero=False):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    value < 0 or (value == 0 and not allow_zero):
                raise ValueError(f"SLURM option {name} in {source} must be a "
                                 f"{'non-negative' if allow_zero else 'positive'} number, got {value!r}")
        positive("time_min", self.time_min)
        positive("cpus_per_task", self.cpus_per_task)
        positive("gpus_per_node", self.gpus_per_node, allow_zero=True)
        positive("array_parallelism", self.array_parallelism)
        positive("max_requeues", self.max_requeues, allow_zero=True)
        positive("poll_s", self.poll_s)
        if self.mem_gb is not None:
            positive("mem_gb", self.mem_gb)
        if not isinstance(self.setup, list) or not all(isinstance(s, str) for s in self.setup):
            raise ValueError(f"SLURM option setup in {source} must be a list of shell lines")
        if not isinstance(self.additional, dict):
            raise ValueError(f"SLURM option additional in {source} must be a table of sbatch options")

    def submitit_parameters(self) -> dict:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        p: dict[str, Any] = dict(
            job_name=self.job_name, time=int(self.time_min), cpus_per_task=int(self.cpus_per_task),
            array_parallelism=int(self.array_parallelism), signal_delay_s=int(self.signal_delay_s),
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

    def sbatch_script(self, log_dir: str | os.PathLike = "slurm_logs", runs: int = 1) -> str:
        """The batch script submitit writes for a sweep of ``runs`` runs with these options
        (what ``sbatch`` receives), to check a configuration without a cluster."""
        from submitit.slurm.slurm import _make_sbatch_string

        python = self.python or sys.executable
        return _make_sbatch_string(
            command=f"{python} -u -m submitit.core._submit {Path(log_dir) / '%j'}",
            folder=Path(log_dir) / "%j", map_count=runs if runs > 1 else None,
            **self.submitit_parameters())


def _run_slurm_command(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def slurm_states(job_ids: Iterable[str]) -> dict[str, str]:
    """SLURM's state (``PENDING``, ``RUNNING``, ``COMPLETED``, ``CANCELLED`` ...) of each job.

    Job ids may be array elements (``1234_5``). Asks ``sacct``; on clusters without
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
        for b in bases:  # one at a time: squeue fails outright on an id it has forgotten
            r = _run_slurm_command(["squeue", "-h", "-r", "-t", "all", "-j", b, "-o", "%i|%T"])
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
        atomic_write(path, lambda f: f.write(json.dumps(ledger, indent=1, sort_keys=True)), text=True)

    def execute(self, runs: Sequence[Run]) -> list[Outcome]:
        import submitit
        from submitit.core.utils import JobPaths

        if not runs:
            return []
        if shutil.which("sbatch") is None or shutil.which("srun") is None:
            message = ("SLURM's sbatch and srun are not on PATH here: run the sweep on a "
                       "cluster's login node (or start a test cluster with "
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
                progress.message(f"[slurm] {run.name}: job {jid} from an earlier submission is "
                                 f"{alive[jid].lower()}; waiting for it")
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
                message = f"submission failed: {said[-1].strip() if said else type(e).__name__}"
                progress.message(f"[slurm] {str(e).strip()}")
                return [Outcome(run, "failed", message) for run in to_submit] + \
                    [Outcome(run, "failed", "not waited for (the submission failed)")
                     for run in runs if str(run.result) in jobs]
            for run, job in zip(to_submit, submitted):
                jobs[str(run.result)] = job.job_id
                ledger[str(run.result)] = {"job_id": job.job_id, "run": run.name,
                                           "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self._save_ledger(ledger_path, ledger)
            first = submitted[0].job_id.split("_")[0]
            what = (f"{len(submitted)} runs as job array {first}" if len(submitted) > 1
                    else f"1 run as job {first}")
            progress.message(f"[slurm] submitted {what} "
                             f"(partition {self.options.partition or 'default'}, "
                             f"{self.options.time_min} min, {self.options.cpus_per_task} CPUs, "
                             f"{self.options.gpus_per_node} GPUs each); logs in {log_dir}")

        def paths(jid: str) -> JobPaths:
            return JobPaths(log_dir / "%j", job_id=jid, task_id=0)

        if not self.wait:
            progress.message("[slurm] not waiting (--no-wait): run the same command again to "
                             "wait for these jobs and resubmit what failed")
            return [Outcome(run, "submitted", job_id=jobs[str(run.result)],
                            log=paths(jobs[str(run.result)]).stderr) for run in runs]

        outcomes: dict[str, Outcome] = {}
        unsettled_since: dict[str, float] = {}
        last_state: dict[str, str] = {}
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
                    elif state in FINAL_STATES or (state in UNSETTLED_STATES and time.monotonic() -
                                                   unsettled_since.setdefault(jid, time.monotonic())
                                                   > UNSETTLED_GRACE_S):
                        # Give the result pickle a moment to appear on shared file systems.
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
                        progress.message(f"[slurm] {run.name} (job {jid}) was requeued "
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
            progress.message("\n[slurm] stopped waiting; the jobs keep running on the cluster. "
                             "Run the same command again to wait for them, or scancel "
                             f"{' '.join(sorted({j.split('_')[0] for j in jobs.values()}))}.")
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


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------

def run_sweep(jobs: Iterable[Any], executor: str | LocalExecutor | SlurmExecutor = "local",
              *, stream: TextIO | None = None, **options: Any) -> int:
    """Run a sweep's job specs with an executor; return the exit code (0: all results exist).

    ``executor``: an executor instance, or ``"local"`` / ``"slurm"`` with
    ``options`` passed to :class:`LocalExecutor` / :class:`SlurmOptions`.
    Runs whose result file exists are skipped before anything is submitted.
    """
    stream = stream if stream is not None else sys.stderr
    if isinstance(executor, str):
        if executor == "local":
            executor = LocalExecutor(stream=stream, **options)
        elif executor == "slurm":
            wait = options.pop("wait", True)
            executor = SlurmExecutor(SlurmOptions().updated(options), wait=wait, stream=stream)
        else:
            raise ValueError(f"unknown executor {executor!r}; choose 'local' or 'slurm'")
    elif options:
        raise TypeError("options are given to the executor instance, not to run_sweep")
    if getattr(executor, "stream", None) is None:
        executor.stream = stream

    runs = [plan_run(spec) for spec in jobs]
    names = [r.result for r in runs]
    dup = sorted({str(n) for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"the sweep holds several runs writing the same result file: {', '.join(dup)}")
    todo = [r for r in runs if not r.result.exists()]
    print(f"[{executor.name}] sweep of {_runs(len(runs))}: {len(runs) - len(todo)} already have "
          f"result files (skipped), {len(todo)} to run", file=stream, flush=True)
    outcomes = executor.execute(todo)
    failed = [o for o in outcomes if o.state == "failed"]
    submitted = [o for o in outcomes if o.state == "submitted"]
    done = len(outcomes) - len(failed) - len(submitted)
    if failed:
        print(f"[{executor.name}] {len(failed)} of {_runs(len(runs))} failed:", file=stream)
        for o in failed:
            print(f"  {o.run.name}: {error_summary(o.message)}", file=stream)
            if o.log:
                print(f"      log: {o.log}", file=stream)
        print(f"[{executor.name}] run the same command again to resume the failed runs from "
              f"their last finished epoch", file=stream)
    summary = f"[{executor.name}] {done + len(runs) - len(todo)} of {_runs(len(runs))} have results"
    if submitted:
        summary += f", {len(submitted)} submitted"
    print(summary, file=stream, flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# Command line (the sweep subcommand of hw2.experiments)
# ---------------------------------------------------------------------------

def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--executor`` and the ``--slurm-*`` options to a sweep command's parser.

    The local executor's GPU count is the sweep command's own ``--gpus``.
    """
    g = parser.add_argument_group("where the runs execute")
    g.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: this machine, one worker per GPU when there are several "
                        "(default); slurm: a job array on a SLURM cluster, through submitit")
    g.add_argument("--slurm-config", metavar="FILE",
                   help="TOML or JSON file of SLURM options (tools/slurm/sweep.example.toml); "
                        "the flags below override it")
    g.add_argument("--slurm-partition", metavar="NAME", help="partition to submit to")
    g.add_argument("--slurm-time", type=int, metavar="MIN", help="time limit per run, minutes")
    g.add_argument("--slurm-cpus", type=int, metavar="N", help="CPUs per run")
    g.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs per run")
    g.add_argument("--slurm-mem-gb", type=float, metavar="GB", help="memory per run")
    g.add_argument("--slurm-log-dir", metavar="DIR",
                   help="job logs and submitit's files (default: <out dir>/slurm_logs; "
                        "on a cluster a folder every node can read)")
    g.add_argument("--no-wait", action="store_true",
                   help="submit and return; running the same command again waits for the jobs")


def executor_from_args(args: argparse.Namespace) -> LocalExecutor | SlurmExecutor:
    """The executor the flags of :func:`add_executor_arguments` describe.

    Raises ``ValueError`` naming a bad value (the CLI turns it into exit code 2).
    """
    executor = getattr(args, "executor", None) or "local"
    if executor == "local":
        return LocalExecutor(gpus=getattr(args, "gpus", None))
    if executor != "slurm":
        raise ValueError(f"unknown executor {executor!r}; choose local or slurm")
    config = getattr(args, "slurm_config", None)
    options = SlurmOptions.from_file(config) if config else SlurmOptions()
    options = options.updated({
        "partition": getattr(args, "slurm_partition", None),
        "time_min": getattr(args, "slurm_time", None),
        "cpus_per_task": getattr(args, "slurm_cpus", None),
        "gpus_per_node": getattr(args, "slurm_gpus", None),
        "mem_gb": getattr(args, "slurm_mem_gb", None),
        "log_dir": getattr(args, "slurm_log_dir", None),
    }, source="the command line")
    return SlurmExecutor(options, wait=not getattr(args, "no_wait", False))
