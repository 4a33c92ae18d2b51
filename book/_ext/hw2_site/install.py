"""Notebooks that run outside the repository: the package as a wheel, and a first cell.

A learner who downloads a chapter's ``.ipynb`` from the site has no checkout.
The build makes a wheel of ``hw2`` (``pip wheel --no-deps``; ``setup.py``
bundles the book's committed data into it: the study's results, the
benchmarks, the chapters the answers are read from) and serves it with the
site (``_static/<wheel>``). Every downloaded notebook's first code cell
installs ``hw2`` where it is missing: from the book's public repository when
one is configured (:mod:`hw2_site.buttons`), else from that wheel, downloaded
next to the notebook. In a checkout, Binder or the book build ``hw2`` is
installed already, and the cell does nothing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
#: Where the build puts the wheel (beside ``_build/html``); served as ``_static/``.
WHEEL_DIR = "wheel"
CELL_TAG = "hw2-install"

INSTALL_CELL = """\
# Run this cell first where the book's package hw2 is not installed (Colab, a laptop
# with only this notebook); elsewhere (a clone of the book, Binder) it does nothing.
import importlib.util
import sys
import tempfile
from pathlib import Path

if importlib.util.find_spec("hw2") is None:
{install}
"""
FROM_REPOSITORY = """\
    spec = "{spec}"
    no_deps = "--no-deps " if "google.colab" in sys.modules else ""  # Colab's own torch
    get_ipython().run_line_magic("pip", f"install -q {{no_deps}}{{spec}}")"""
FROM_WHEEL = """\
    # The wheel: download it from the book's site (the introduction says where).
    wheel = Path("{wheel}")
    if not wheel.is_file():
        raise FileNotFoundError(f"hw2 is not installed, and {{wheel}} is not in this "
                                "folder: download it from the book's site")
    get_ipython().run_line_magic("pip", f"install -q {{wheel}}")"""


def wheel_name() -> str:
    """``hw2-<version>-py3-none-any.whl``, the file name of the package's wheel."""
    import hw2

    return f"hw2-{hw2.__version__}-py3-none-any.whl"


def install_source(repository: str | None, branch: str = "main") -> str:
    """The install cell's code: from the repository when configured, else the wheel."""
    if repository:
        spec = f"git+{repository}@{branch}"
        return INSTALL_CELL.format(install=FROM_REPOSITORY.format(spec=spec))
    return INSTALL_CELL.format(install=FROM_WHEEL.format(wheel=wheel_name()))


def add_install_cell(nb, repository: str | None, branch: str = "main") -> None:
    """Put the install cell before a notebook's first code cell (nbformat node), once."""
    import nbformat

    if any(CELL_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        return
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"),
                      len(nb.cells))
    cell = nbformat.v4.new_code_cell(install_source(repository, branch),
                                     metadata={"tags": [CELL_TAG]})
    nb.cells.insert(first_code, cell)


def _build_wheel(app: Sphinx, config) -> None:
    """``pip wheel`` the package into ``_build/wheel`` and serve that folder."""
    if app.builder is not None and app.builder.format != "html":
        return
    out = Path(app.outdir).parent / WHEEL_DIR
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("hw2-*.whl"):
        old.unlink()
    from hw2._io import in_checkout, repo_root

    if not in_checkout():
        raise ExtensionError("the site serves a wheel of hw2, built from the "
                             "repository: install hw2 from a checkout (pip install -e .)")
    root = repo_root()
    # A build folder of its own (setup.py): another book build at the same time
    # (the site-configuration tests build two) must not empty this one's.
    with tempfile.TemporaryDirectory(prefix="setuptools-", dir=out.parent) as base:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                               "--no-build-isolation", "-q", "-w", str(out), str(root)],
                              capture_output=True, text=True,
                              env={**os.environ, "HW2_BUILD_BASE": base})
    if done.returncode != 0 or not (out / wheel_name()).is_file():
        raise ExtensionError(f"could not build the wheel of hw2 for the site:\n"
                             f"{done.stdout}{done.stderr}")
    config.html_static_path = [*config.html_static_path, str(out)]
    LOGGER.info("hw2: the site serves _static/%s", wheel_name())


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", lambda app: _build_wheel(app, app.config))
