"""Every chapter runs, top to bottom, as a learner's downloaded notebook would.

Each MyST chapter of the table of contents is converted to ``.ipynb`` with
jupytext inside a throwaway copy of its own folder, then executed by nbclient in
a fresh ``python3`` kernel whose working directory is that folder: the same
thing that happens when a learner opens the chapter in JupyterLab (jupytext) or
downloads the ``.ipynb`` and runs all cells. A cell that raises fails the test
with the cell's traceback.

Slow (it executes the whole book): run it in the site step, not with the unit tests::

    .venv/bin/python -m pytest tests/site/test_notebooks.py

CIFAR-10 comes from ``$HW2_CIFAR10`` like everywhere else (the Makefile exports an
absolute path). The per-cell timeout is ``$HW2_CELL_TIMEOUT`` seconds (default 900).
"""
from __future__ import annotations

import os
import shutil
import sys

import jupytext
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

CELL_TIMEOUT = int(os.environ.get("HW2_CELL_TIMEOUT", "900"))


@pytest.fixture(scope="session")
def kernel_name() -> str:
    """``python3`` must be this interpreter's kernel (the one with ``hw2`` installed)."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    argv0 = spec.argv[0]
    # jupyter_client starts a kernel whose argv[0] is a bare "python" with this interpreter.
    bare = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
    python = sys.executable if argv0 in bare else os.path.abspath(shutil.which(argv0) or argv0)
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        pytest.fail(f"the python3 kernel runs {python}, not this interpreter {sys.executable}: "
                    "remove the stale kernelspec (see `jupyter kernelspec list`)")
    return "python3"


def test_chapter_runs_in_its_own_folder(chapter, book_root, kernel_name, tmp_path):
    src = book_root / chapter
    if not src.exists():
        pytest.fail(f"{chapter} is listed in the table of contents but does not exist")
    folder = tmp_path / src.parent.name
    shutil.copytree(src.parent, folder, ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", "__pycache__", "*.ipynb"))
    notebook_path = folder / src.with_suffix(".ipynb").name
    notebook = jupytext.read(src)
    jupytext.write(notebook, notebook_path)

    client = NotebookClient(
        jupytext.read(notebook_path), timeout=CELL_TIMEOUT, kernel_name=kernel_name,
        resources={"metadata": {"path": str(folder)}}, allow_errors=False,
    )
    client.execute()
