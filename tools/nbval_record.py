"""pytest plugin: keep what nbval's kernel produced, as executed notebooks.

nbval executes every cell of a notebook in a fresh kernel and compares
nothing for MyST chapters (they store no outputs); it throws the outputs
away. This plugin puts each cell's outputs back into the notebook nbval
collected and, at the end of the session, writes every notebook whose
cells all passed to ``$HW2_EXECUTED_DIR/<path relative to the rootdir>``.
The book build then renders those outputs instead of executing the chapters
a second time (``book/_ext/hw2_site/reuse.py``).

Loaded by ``tools/check_chapters.py`` with ``-p nbval_record``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

_notebooks: dict[str, dict] = {}   # nodeid of the notebook file -> bookkeeping


def pytest_configure(config):
    """Execute cells as Jupyter does, with history: nbval sends store_history=False,
    which makes IPython ignore a trailing ';' (it reads the cell from the history),
    so a plot cell's last value would show up as an output it does not have in Jupyter."""
    from nbval.kernel import RunningKernel

    def execute_cell_input(self, cell_input, allow_stdin=None):
        return self.kc.execute(cell_input, allow_stdin=allow_stdin, store_history=True,
                               stop_on_error=False)

    RunningKernel.execute_cell_input = execute_cell_input


def _entry(item) -> dict | None:
    parent = getattr(item, "parent", None)
    nb = getattr(parent, "nb", None)
    if nb is None or not hasattr(item, "cell"):
        return None
    return _notebooks.setdefault(parent.nodeid, {
        "nb": nb, "path": Path(str(parent.path)), "failed": False, "count": 0,
        "seconds": 0.0, "cells": 0})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    entry = _entry(item)
    start = time.perf_counter()
    yield
    if entry is None:
        return
    entry["seconds"] += time.perf_counter() - start
    outputs = getattr(item, "test_outputs", None)
    if outputs is not None and item.cell.cell_type == "code":
        entry["count"] += 1
        item.cell.outputs = [nbformat.from_dict(dict(out)) for out in outputs]
        for out in item.cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = entry["count"]
        item.cell.execution_count = entry["count"]
        entry["cells"] += 1


def pytest_runtest_logreport(report):
    if report.failed or report.skipped:
        for nodeid, entry in _notebooks.items():
            if report.nodeid.startswith(nodeid + "::"):
                # A skipped cell was not executed: its outputs would be missing.
                entry["failed"] = True


def pytest_sessionfinish(session, exitstatus):
    out_dir = os.environ.get("HW2_EXECUTED_DIR")
    if not out_dir:
        return
    root = Path(str(session.config.rootpath)).resolve()
    for entry in _notebooks.values():
        dest = Path(out_dir) / entry["path"].resolve().relative_to(root)
        if entry["failed"] or entry["cells"] == 0:
            dest.unlink(missing_ok=True)   # never leave a stale copy behind
            continue
        nb = entry["nb"]
        nb.metadata["hw2_execution"] = {"by": "nbval", "seconds": round(entry["seconds"], 2)}
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".ipynb.tmp")
        nbformat.write(nb, str(tmp))
        os.replace(tmp, dest)
