"""Where a sweep's runs execute on this machine.

In this process, or one process per GPU. :class:`LocalExecutor` is the
executor of ``sweep --executor local`` (the default). With several GPUs each
gets a worker process of its own (``CUDA_VISIBLE_DEVICES`` set to that card)
taking runs from a queue; with one GPU or none the runs execute one after
the other in this process, which loads CIFAR-10 once for all of them. The
SLURM executor is in :mod:`hw2.experiments.slurm`.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from typing import Sequence, TextIO

from hw2 import _checks
from hw2.experiments.results import summary_line
from hw2.experiments.device import resolve_device
from hw2.experiments.sweep import (ClaimConflict, Outcome, Run, RunInterrupted, run_job,
                                   stop_on_signals)

__all__ = ["LocalExecutor", "Progress"]

# Fresh worker processes: CUDA cannot be used in a process forked from one
# that has initialised it. (The tests use "fork" for CPU-only runs: cheaper.)
_MP_START = "spawn"


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
        runs = f"{self.total} run" + ("" if self.total == 1 else "s")
        text = (f"[{self.label}] {runs}: {pending} pending, {running} running, "
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


def _gpu_worker(gpu: int, jobs, reports) -> None:
    """One process per GPU: takes jobs from a queue until it gets None.

    Only GPU ``gpu`` is visible here, so device 'auto' / 'cuda' means that GPU.
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before CUDA is initialised here
    name = None
    try:
        with stop_on_signals():  # also while it waits for a job: a quiet exit
            while (item := jobs.get()) is not None:
                name, spec = item
                try:
                    reports.put((gpu, name, True, summary_line(run_job(spec))))
                except Exception as e:  # report, and go on with the next job
                    reports.put((gpu, name, False, f"{type(e).__name__}: {e}"))
                name = None
    except (RunInterrupted, KeyboardInterrupt) as e:  # the claim is released
        if name is not None:
            reports.put((gpu, name, False, f"{type(e).__name__}: {e}"))


def _stop_workers(procs, signum: int, grace_s: float = 60.0) -> None:
    """Pass the signal on to the workers still running, and wait for them.

    Each releases the claim of the run it trains and exits; one that has not
    within ``grace_s`` seconds is killed.
    """
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(OSError):
                os.kill(p.pid, signum)
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


class LocalExecutor:
    """Runs a sweep on this machine.

    Args:
        gpus: how many GPUs to use, or a list of their indices (default:
            every visible one, when the runs ask for CUDA).
        stream: where progress lines go (default: standard output).

    Raises:
        ValueError: a number of GPUs that is not a non-negative integer.
    """

    name = "local"

    def __init__(self, gpus: int | Sequence[int] | None = None,
                 stream: TextIO | None = None):
        if not isinstance(gpus, (list, tuple)):
            gpus = _checks.non_negative_int("gpus", gpus, allow_none=True)
        self.gpus = gpus
        self.stream = stream

    def _log(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        print(text, file=stream, flush=True)

    def _gpu_ids(self, runs: Sequence[Run]) -> list[int]:
        if isinstance(self.gpus, (list, tuple)):
            return list(self.gpus)
        wants_cuda = any(r.spec.get("device", "auto") in ("auto", "cuda") for r in runs)
        if not wants_cuda:
            return []
        import torch

        available = torch.cuda.device_count()
        count = available if self.gpus is None else min(int(self.gpus), available)
        return list(range(count))

    def execute(self, runs: Sequence[Run]) -> list[Outcome]:
        if not runs:
            return []
        gpu_ids = self._gpu_ids(runs)
        if len(gpu_ids) > 1:
            return self._execute_on_gpus(runs, gpu_ids)
        from hw2.data import load_cifar10

        # A device this machine lacks fails before the data is loaded.
        for device in sorted({r.spec.get("device", "auto") for r in runs}):
            resolve_device(device)
        data = load_cifar10()  # once for the whole sweep; no data -> one clear error
        outcomes: dict[str, Outcome] = {}
        # 1. Every run nobody else is training; 2. then wait for the others'
        #    results (or take their claims over when they go stale).
        for wait in (False, True):
            for i, run in enumerate(runs, 1):
                if run.name in outcomes:
                    continue
                tag = f"[{i}/{len(runs)}] {run.name}"
                if not wait:
                    self._log(f"{tag} ...")
                try:
                    path = run_job(run.spec, data=data, wait=wait, log=self._log)
                except ClaimConflict:
                    raise  # another sweep with other settings: stop this one
                except Exception as e:  # report, and go on with the next job
                    self._log(f"{tag}: FAILED {type(e).__name__}: {e}")
                    outcomes[run.name] = Outcome(run, "failed",
                                                 f"{type(e).__name__}: {e}")
                    continue
                if path is None:
                    self._log(f"{tag}: another process is training it; "
                              f"back to it later")
                    continue
                self._log(f"{tag}: {summary_line(path)}")
                outcomes[run.name] = Outcome(run, "done")
        return [outcomes[run.name] for run in runs]

    def _execute_on_gpus(self, runs: Sequence[Run],
                         gpu_ids: list[int]) -> list[Outcome]:
        ctx = mp.get_context(_MP_START)
        job_q, report_q = ctx.Queue(), ctx.Queue()
        for run in runs:
            job_q.put((run.name, run.spec))
        for _ in gpu_ids:
            job_q.put(None)
        procs = [ctx.Process(target=_gpu_worker, args=(g, job_q, report_q))
                 for g in gpu_ids]
        for p in procs:
            p.start()
        self._log(f"{len(runs)} runs on GPUs {', '.join(map(str, gpu_ids))}")
        by_name = {run.name: run for run in runs}
        outcomes: dict[str, Outcome] = {}
        try:
            while len(outcomes) < len(runs):
                try:
                    gpu, name, ok, text = report_q.get(timeout=5)
                except queue.Empty:  # check the workers are alive
                    if not any(p.is_alive() for p in procs):
                        break
                    continue
                outcomes[name] = Outcome(by_name[name], "done" if ok else "failed",
                                         "" if ok else text)
                self._log(f"[{len(outcomes)}/{len(runs)}] gpu{gpu} {name}: {text}")
        except (RunInterrupted, KeyboardInterrupt) as e:
            # Stopped (by the command line's handler): the workers stop too,
            # releasing their claims, and the jobs nobody took are dropped.
            _stop_workers(procs, getattr(e, "signum", signal.SIGINT))
            job_q.cancel_join_thread()
            raise
        for p in procs:
            p.join()
        return [outcomes.get(run.name) or Outcome(run, "failed", "the worker processes "
                                                  "exited before this run reported")
                for run in runs]
