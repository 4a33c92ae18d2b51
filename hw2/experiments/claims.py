"""Who is training a run: claim files, so that sweeps can share one results folder.

Several sweeps (local processes, SLURM array tasks, a requeued job) may work
on the same folder. Before a process trains a run it *claims* it: it creates
``.<result stem>.claim`` beside the result file with ``O_CREAT | O_EXCL``
(atomic on local and network file systems), holding its host, process id,
SLURM job (if any) and start time. The claim is touched after every epoch
(a heartbeat) and removed when the run ends.

A claim is *stale*, and taken over, when

1. its process is gone: same host, and that process id no longer exists;
2. it belongs to this very SLURM job (a requeued job resuming its run); or
3. its heartbeat is older than :data:`STALE_AFTER_S` (``$HW2_CLAIM_STALE_S``),
   the only test that works across hosts.

Taking over is a rename of the stale file to a unique name (only one process
can rename it), checked against the content that was judged stale.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from hw2.experiments.config import RunConfig, result_path

__all__ = ["STALE_AFTER_S", "Claim", "claim_path", "try_claim"]

#: Seconds without a heartbeat after which another host's claim is stale.
STALE_AFTER_S = 3600.0
#: Seconds a claim file may stay empty (being written) before it counts as stale.
_WRITING_GRACE_S = 60.0


def _stale_after() -> float:
    return float(os.environ.get("HW2_CLAIM_STALE_S", STALE_AFTER_S))


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
    """A claim this process holds: touch it every epoch, release it at the end."""

    path: Path
    token: str

    def touch(self, *_) -> None:
        """The heartbeat: the claim's modification time is now."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def release(self) -> None:
        """Remove the claim, if it is still this process's."""
        if _read(self.path).get("token") == self.token:
            with contextlib.suppress(OSError):
                self.path.unlink()


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
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
    return age > _stale_after()


def try_claim(cfg: RunConfig) -> Claim | str:
    """Claim the run of ``cfg``: a :class:`Claim`, or a description of who holds it."""
    path = claim_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        token = secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if not _stale(path, holder):
                return describe(holder)
            # Take the stale claim over: only one process can rename it away.
            tomb = path.with_name(f"{path.name}.stale.{token}")
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
        with os.fdopen(fd, "w") as f:
            json.dump({"host": platform.node(), "pid": os.getpid(),
                       "slurm_job": _slurm_job(), "started": time.time(),
                       "token": token}, f)
        return Claim(path, token)
    return describe(_read(path))
