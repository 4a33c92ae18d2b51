"""Start and stop a one-node SLURM cluster on this machine.

The cluster is real SLURM (``munged``, ``slurmctld``, ``slurmd`` from
Debian's ``slurm-wlm`` and ``munge`` packages) with every file it writes --
configuration, munge key and socket, state, spool, logs, pid files -- under
one folder, and its own ports, so it touches nothing in ``/etc`` and several
can coexist. The tests start one per session (``tests/slurm_fixture.py``);
from a shell::

    python tools/slurm/local_cluster.py start /tmp/hw2slurm   # prints SLURM_CONF=...
    export SLURM_CONF=/tmp/hw2slurm/slurm.conf
    sinfo; python -m hw2.experiments sweep ... --executor slurm
    python tools/slurm/local_cluster.py stop /tmp/hw2slurm

It is made for containers: no systemd, no cgroups (``proctrack/linuxproc``,
``task/none``), no accounting database (``sacct`` is unavailable, so the
sweep executor asks ``squeue``, and finished jobs stay visible to it for ten
minutes). Run it as root, or as the user every daemon and job will run as.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "slurm.conf.template"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")


def missing_binaries() -> list[str]:
    """The SLURM and munge programs this machine lacks (empty when all are there)."""
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [b for b in DAEMONS + CLIENTS + ("mungekey",) if shutil.which(b, path=sbin) is None]


def _which(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if path is None:
        raise FileNotFoundError(
            f"{name} is not installed; on Debian/Ubuntu: apt-get install -y slurm-wlm munge")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> tuple[int, int, str]:
    """(CPUs, RealMemory in MB, topology fields) as ``slurmd -C`` sees this machine."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    cpus = int(re.search(r"\bCPUs=(\d+)", out).group(1))
    mem = int(re.search(r"\bRealMemory=(\d+)", out).group(1))
    topology = " ".join(m.group(0) for key in ("Boards", "SocketsPerBoard", "CoresPerSocket",
                                               "ThreadsPerCore")
                        if (m := re.search(rf"\b{key}=\d+", out)))
    return cpus, mem, topology


@dataclass
class LocalCluster:
    """A running cluster: its folder, configuration file and daemon pids."""

    root: str
    conf: str
    host: str
    partition: str
    cpus: int
    pids: dict

    @property
    def env(self) -> dict[str, str]:
        """Environment variables SLURM's clients need to talk to this cluster."""
        return {"SLURM_CONF": self.conf}

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``sinfo``, ``squeue`` ...) against this cluster."""
        env = {**os.environ, **self.env}
        return subprocess.run(list(cmd), env=env, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = []
        for log in sorted(Path(self.root, "log").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def node_state(self) -> str:
        r = self.run("sinfo", "-h", "-N", "-n", self.host, "-o", "%t", check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.node_state()
            if state in ("idle", "mix", "alloc"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node {self.host} did not become idle in {timeout:.0f} s "
                           f"(sinfo state: {state!r})\n{self.log_tail()}")

    def stop(self, remove: bool = True) -> None:
        """Cancel every job, stop the daemons (and any job process left), remove the folder."""
        if any(_alive(p) for p in self.pids.values()):
            self.run("scancel", "--full", "--user", getpass.getuser(), check=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = self.run("squeue", "-h", "-o", "%i", check=False)
                if r.returncode != 0 or not r.stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            _terminate(self.pids.get(name))
        # Job processes this cluster started and SLURM did not reap: they carry
        # our configuration path in their environment.
        for pid in _pids_with_env("SLURM_CONF", self.conf):
            _terminate(pid)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def _terminate(pid: int | None, timeout: float = 10) -> None:
    if not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pids_with_env(key: str, value: str) -> list[int]:
    needle = f"{key}={value}".encode() + b"\0"
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes():
                found.append(int(d.name))
        except OSError:
            continue
    return found


def _read_pid(path: Path, timeout: float, what: str, cluster: LocalCluster | None = None) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    tail = cluster.log_tail() if cluster else ""
    raise RuntimeError(f"{what} did not start (no pid file {path} after {timeout:.0f} s)\n{tail}")


def start(root: str | os.PathLike, partition: str = "debug", timeout: float = 60) -> LocalCluster:
    """Write a configuration under ``root``, start munged, slurmctld and slurmd, wait for idle.

    ``root`` should be short (a UNIX socket path lives in it) and is created if absent.
    Raises ``RuntimeError`` with the daemons' log tails when the node does not come up.
    """
    root = Path(root).resolve()
    host = socket.gethostname().split(".")[0]
    for sub in ("munge", "state", f"spool/slurmd-{host}", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # munged needs its socket's folder open to everyone (the key itself is 0600).
    os.chmod(root / "munge", 0o755)
    user = getpass.getuser()
    cpus, mem, topology = _node_hardware()
    values = dict(
        root=str(root), host=host, addr="127.0.0.1", user=user, partition=partition,
        ctld_port=_free_port(), slurmd_port=_free_port(), cpus=cpus, topology=topology,
        # Slightly under what slurmd measures, so the node is never drained for
        # "low RealMemory" when memory use changes between the measurement and now.
        memory_mb=max(1, int(mem * 0.9)),
        munge_socket=str(root / "munge" / "munge.socket.2"),
    )
    conf = root / "slurm.conf"
    conf.write_text(TEMPLATE.read_text().format(**values))
    cluster = LocalCluster(root=str(root), conf=str(conf), host=host, partition=partition,
                           cpus=cpus, pids={})
    env = {**os.environ, "SLURM_CONF": str(conf)}

    key = root / "munge" / "munge.key"
    if not key.exists():
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True,
                       capture_output=True)
    os.chmod(key, 0o600)
    munge_pid = root / "run" / "munged.pid"
    subprocess.run([_which("munged"), "--force", f"--socket={values['munge_socket']}",
                    f"--key-file={key}", f"--log-file={root / 'log' / 'munged.log'}",
                    f"--pid-file={munge_pid}", f"--seed-file={root / 'munge' / 'munged.seed'}"],
                   check=True, capture_output=True, env=env)
    cluster.pids["munged"] = _read_pid(munge_pid, 10, "munged", cluster)

    try:
        # -i: ignore state left by an earlier cluster in the same folder.
        subprocess.run([_which("slurmctld"), "-f", str(conf), "-i"], check=True,
                       capture_output=True, env=env)
        cluster.pids["slurmctld"] = _read_pid(root / "run" / "slurmctld.pid", timeout, "slurmctld",
                                              cluster)
        subprocess.run([_which("slurmd"), "-f", str(conf), "-N", host], check=True,
                       capture_output=True, env=env)
        cluster.pids["slurmd"] = _read_pid(root / "run" / f"slurmd-{host}.pid", timeout, "slurmd",
                                           cluster)
        cluster.wait_idle(timeout)
    except BaseException:
        cluster.stop(remove=False)
        raise
    (root / "cluster.json").write_text(json.dumps(asdict(cluster), indent=1))
    return cluster


def load(root: str | os.PathLike) -> LocalCluster:
    """The cluster started earlier in ``root`` (from its ``cluster.json``)."""
    return LocalCluster(**json.loads(Path(root, "cluster.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="start a cluster whose files live in ROOT")
    p.add_argument("root")
    p.add_argument("--partition", default="debug")
    p = sub.add_parser("stop", help="stop the cluster in ROOT and remove ROOT")
    p.add_argument("root")
    p.add_argument("--keep", action="store_true", help="keep the folder (logs) after stopping")
    args = parser.parse_args(argv)
    if args.cmd == "start":
        missing = missing_binaries()
        if missing:
            print(f"missing: {' '.join(missing)}; install with: apt-get install -y slurm-wlm munge",
                  file=sys.stderr)
            return 1
        cluster = start(args.root, partition=args.partition)
        print(f"export SLURM_CONF={cluster.conf}")
        print(f"# node {cluster.host}: {cluster.cpus} CPUs, partition {cluster.partition}; "
              f"stop with: python {Path(__file__).relative_to(Path.cwd()) if Path(__file__).is_relative_to(Path.cwd()) else __file__} stop {args.root}",
              file=sys.stderr)
        return 0
    load(args.root).stop(remove=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
