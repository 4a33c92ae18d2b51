"""Who is training a run: claim files, so that sweeps can share one results folder.

Several sweeps (local processes, SLURM array tasks, a requeued job) may work
on the same folder. Before a process trains a run it *claims* it: it creates
``.<result stem>.claim`` beside the result file with ``O_CREAT | O_EXCL``
(atomic on local and network file systems), holding its host, process id,
SLURM job (if any), start time and the run's whole configuration
(:meth:`RunConfig.identity`). While the run trains, a background thread
touches the claim every :func:`heartbeat_s` seconds (a heartbeat that does not
depend on how long an epoch takes); the claim is removed when the run ends,
also when it ends by SIGTERM or Ctrl-C (:func:`stop_on_signals`).

A claim is *stale*, and taken over, when

1. its process is gone: same host, and that process id no longer exists;
2. it belongs to this very SLURM job (a requeued job resuming its run); or
3. its heartbeat is older than :func:`stale_after_s` (``$HW2_CLAIM_STALE_S``,
   default :data:`STALE_AFTER_S`), the only test that works across hosts.

Taking over is a rename of the stale file to a unique name (only one process
can rename it), checked against the content that was judged stale. A live
claim of the same run with *other settings* (another sweep on the same folder
with other options) is a :class:`ClaimConflict`: the run is refused, never
trained twice in two ways.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hw2._io import create_in_folder
from hw2.experiments.config import RunConfig, result_path
from hw2.experiments.results import identity_differences

__all__ = ["STALE_AFTER_S", "MIN_STALE_S", "stale_after_s", "heartbeat_s", "Claim",
           "ClaimConflict", "claim_path", "try_claim", "check_conflict",
           "remove_if_orphan", "RunInterrupted", "stop_on_signals"]

#: Seconds without a heartbeat after which another host's claim is stale.
STALE_AFTER_S = 3600.0
#: The shortest ``$HW2_CLAIM_STALE_S`` accepted: four heartbeats must fit in it.
MIN_STALE_S = 4.0
#: Seconds a claim file may stay empty (being written) before it counts as stale.
_WRITING_GRACE_S = 60.0


def stale_after_s() -> float:
    """``$HW2_CLAIM_STALE_S`` as seconds, checked (default :data:`STALE_AFTER_S`).

    Raises:
        ValueError: not a number, not finite, or below :data:`MIN_STALE_S`.
    """
    text = os.environ.get("HW2_CLAIM_STALE_S")
    if text is None or not text.strip():
        return STALE_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < MIN_STALE_S:
        raise ValueError(f"HW2_CLAIM_STALE_S must be a number of seconds of at least "
                         f"{MIN_STALE_S:g} (after how long without a heartbeat a claim "
                         f"is stale), got {text!r}")
    return value


def heartbeat_s() -> float:
    """Seconds between heartbeats: a quarter of the staleness limit, at most 60."""
    return min(60.0, stale_after_s() / 4)


def claim_path(cfg: RunConfig) -> Path:
    """``<out_dir>/.<result stem>.claim``."""
    result = result_path(cfg)
    return result.with_name(f".{result.stem}.claim")


def _slurm_job() -> str | None:
    job = os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


@dataclass
class Claim:
    """A claim this process holds.

    While held, a daemon thread touches it every :func:`heartbeat_s` seconds;
    :meth:`release` stops the thread and removes the claim.
    """

    path: Path
    token: str
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def touch(self, *_) -> None:
        """The heartbeat: the claim's modification time is now."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def start_heartbeat(self, every: float | None = None) -> Claim:
        """Touch the claim every ``every`` seconds (heartbeat_s) until released."""
        every = heartbeat_s() if every is None else every

        def beat():
            while not self._stop.wait(every):
                self.touch()

        self._thread = threading.Thread(target=beat, name=f"heartbeat {self.path.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat; remove the claim if it is still this process's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if _read(self.path).get("token") == self.token:
            with contextlib.suppress(OSError):
                self.path.unlink()


class ClaimConflict(ValueError):
    """The run is being trained, live, by another process with other settings."""


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # exists (another user's), or unreadable: assume alive
    return True


def describe(holder: dict) -> str:
    """``host h, process 123 (SLURM job 45_6), since 2026-12-01 21:40:00``."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    job = f" (SLURM job {holder['slurm_job']})" if holder.get("slurm_job") else ""
    return (f"host {holder.get('host', '?')}, process {holder.get('pid', '?')}{job}, "
            f"since {since}")


def _stale(path: Path, holder: dict) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return True  # gone already
    if not holder:  # empty or unreadable: being written, unless for too long
        return age > _WRITING_GRACE_S
    if holder.get("host") == platform.node() and not _pid_alive(holder.get("pid")):
        return True
    if holder.get("slurm_job") and holder.get("slurm_job") == _slurm_job():
        return True
    return age > stale_after_s()


def try_claim(cfg: RunConfig) -> Claim | str:
    """Claim the run of ``cfg``: a :class:`Claim`, or a description of who holds it.

    Raises:
        ClaimConflict: a live claim of this run's file with other settings.
    """
    path = claim_path(cfg)
    identity = cfg.identity()
    for _ in range(5):
        token = secrets.token_hex(8)
        try:
            fd = create_in_folder(path.parent, lambda: os.open(
                path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            holder = _read(path)
            if not _stale(path, holder):
                check_conflict(cfg, holder)
                return describe(holder)
            # Take the stale claim over: only one process can rename it away. The
            # new name has a fixed length, so it fits wherever the claim's name fits.
            tomb = path.with_name(f".stale-claim.{token}")
            try:
                os.rename(path, tomb)
            except FileNotFoundError:
                continue  # another process got there first; look again
            if _read(tomb).get("token") != holder.get("token"):
                # A fresh claim replaced the stale one before the rename: give it back.
                with contextlib.suppress(FileExistsError):
                    os.link(tomb, path)
            tomb.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"host": platform.node(), "pid": os.getpid(),
                           "slurm_job": _slurm_job(), "started": time.time(),
                           "token": token, "run": identity}, f)
        except BaseException:  # a signal or a full disk: no half-made claim stays
            path.unlink(missing_ok=True)
            raise
        return Claim(path, token)
    return describe(_read(path))


def check_conflict(cfg: RunConfig, holder: dict | None = None) -> None:
    """Refuse a run whose live claim was taken with other settings.

    ``holder`` is the claim's content (read from the run's claim file when
    None; a missing or stale claim conflicts with nothing).

    Raises:
        ClaimConflict: naming the file, the holder and the settings that differ.
    """
    if holder is None:
        path = claim_path(cfg)
        holder = _read(path)
        if not holder or _stale(path, holder):
            return
    identity = cfg.identity()
    if isinstance(holder.get("run"), dict) and holder["run"] != identity:
        differ = identity_differences(holder["run"], identity, there="there")
        raise ClaimConflict(
            f"{result_path(cfg)} is being trained by another process "
            f"({describe(holder)}) with other settings ({differ}): two sweeps with "
            f"different options cannot share a folder; use another folder (-o) or "
            f"the same options")


def remove_if_orphan(cfg: RunConfig) -> bool:
    """Remove the claim of a finished run if no live process holds it.

    A process killed right after writing its result leaves its claim behind;
    once the result exists that claim belongs to nothing. A live holder's claim
    stays.
    """
    path = claim_path(cfg)
    if not path.exists() or not _stale(path, _read(path)):
        return False
    with contextlib.suppress(OSError):
        path.unlink()
        return True
    return False


# --------------------------------------------------------------------------
# Signals: a stopped run releases its claim
# --------------------------------------------------------------------------

class RunInterrupted(BaseException):
    """SIGTERM (``kill``, SLURM's scancel or preemption) stopped a run.

    A ``BaseException``, as ``KeyboardInterrupt`` (SIGINT, Ctrl-C) is, so that
    no ``except Exception`` takes it for a failed run: it ends the sweep. The
    claim is released on the way out and the last checkpoint stays, so a
    restart resumes at once. The command line exits with :attr:`exit_code`.
    """

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """``128 + signal number``, as shells report a process a signal ended: 143."""
        return 128 + self.signum


#: Whether a signal is stopping this process (set by the first SIGTERM or
#: SIGINT inside :func:`stop_on_signals`; cleared when the outermost block ends).
_stopping = False
_depth = 0


@contextlib.contextmanager
def stop_on_signals():
    """While the block runs, SIGTERM raises :class:`RunInterrupted`.

    SIGINT raises ``KeyboardInterrupt``, as Python always does (unless SIGINT is
    ignored, as in a background job). Either unwinds the run at once: the files
    a run writes are atomic (complete or absent), the claim is released by
    :func:`~hw2.experiments.sweep.run_job` (and ``run-exp``), the checkpoint of
    the last finished epoch stays. Only the first signal stops: a second one
    while the first unwinds (SLURM signals every process, and a parent passes
    the signal on to its workers) is ignored, so that the claim is still
    released. Blocks may nest (the command line holds one for the whole
    command, ``run_job`` one per run). Outside the main thread (where no
    handler can be set) it does nothing. The previous handlers are put back
    afterwards.
    """
    global _depth, _stopping
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        global _stopping
        if _stopping:
            return
        _stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise RunInterrupted(signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _stopping = False
        for signum, old in previous.items():
            signal.signal(signum, old)
