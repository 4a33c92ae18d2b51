"""pytest fixture: a real one-node SLURM cluster.

``slurm_cluster`` (session scope) starts munged, slurmctld and slurmd on this
machine with ``tools/slurm/local_cluster.py`` -- every file under one short
temporary folder, ports of its own -- waits until ``sinfo`` shows the node
idle, points ``SLURM_CONF`` at it for the session, and afterwards cancels the
jobs, stops the daemons and removes the folder. Where the SLURM or munge
programs are missing, tests using it are skipped and say what to install.

tests/conftest.py imports it, so every test module can ask for it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "apt-get install -y slurm-wlm munge"


def _local_cluster_module():
    path = ROOT / "tools" / "slurm" / "local_cluster.py"
    spec = importlib.util.spec_from_file_location("hw2_local_cluster", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM cluster; ``SLURM_CONF`` points at it meanwhile."""
    lc = _local_cluster_module()
    missing = lc.missing_binaries()
    if missing:
        pytest.skip(f"SLURM is not installed here (missing: {', '.join(missing)}); "
                    f"on Debian/Ubuntu: {INSTALL_HINT}")
    # Short path: munge's socket lives in it (UNIX socket paths are limited to 108 bytes).
    root = tempfile.mkdtemp(prefix="hw2slurm-", dir="/tmp")
    cluster = lc.start(root)
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.conf
    try:
        yield cluster
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        keep = os.environ.get("HW2_KEEP_SLURM")  # debugging: keep logs and state
        cluster.stop(remove=not keep)
