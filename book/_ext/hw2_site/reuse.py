"""One execution: the book renders the chapters nbval executed.

``tools/check_chapters.py`` runs every chapter under nbval and keeps the
outputs (``tools/nbval_record.py``) in ``_build/executed/<docname>.ipynb``.
With ``HW2_REUSE_EXECUTED=1`` the build renders those outputs: each chapter,
as myst-nb reads it, is given the outputs of the same code cells and put into
a fresh jupyter-cache, and myst-nb runs in "cache" mode, where it finds every
chapter. A chapter without an executed copy, or whose code differs from it,
stops the build with the command to run; and a chapter the build executed
anyway fails it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)


def executed_dir(app: Sphinx) -> Path:
    value = os.environ.get("HW2_EXECUTED_DIR")
    return Path(value).resolve() if value else Path(app.srcdir) / "_build" / "executed"


def _reuse_cache_dir(app: Sphinx) -> Path:
    return Path(app.outdir).parent / ".jupyter_cache_reuse"


def _reuse_mode(app: Sphinx, config) -> None:
    if os.environ.get("HW2_REUSE_EXECUTED", "") not in ("", "0"):
        config.nb_execution_mode = "cache"
        config.nb_execution_cache_path = str(_reuse_cache_dir(app))
        shutil.rmtree(_reuse_cache_dir(app), ignore_errors=True)
        LOGGER.info("hw2: rendering the outputs of %s (no chapter executes)", executed_dir(app))


def reusing(app: Sphinx) -> bool:
    return (app.config.nb_execution_mode == "cache"
            and Path(app.config.nb_execution_cache_path or ".") == _reuse_cache_dir(app))


def _cache_executed(app: Sphinx, env, docnames) -> None:
    if not reusing(app):
        return
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import create_nb_reader

    cache = get_cache(str(_reuse_cache_dir(app)))
    problems = []
    for docname in sorted(docnames):
        path = Path(env.doc2path(docname))
        content = path.read_text(encoding="utf-8")
        reader = create_nb_reader(str(path), env.myst_config, env.mystnb_config, content)
        if reader is None:
            continue
        nb = reader.read(content)
        if not any(cell.cell_type == "code" for cell in nb.cells):
            continue
        executed_path = executed_dir(app) / f"{docname}.ipynb"
        if not executed_path.is_file():
            problems.append(f"{docname}: no executed notebook {executed_path}")
            continue
        executed = nbformat.read(executed_path, as_version=4)
        ours = [c for c in nb.cells if c.cell_type == "code"]
        theirs = [c for c in executed.cells if c.cell_type == "code"]
        if [c.source for c in ours] != [c.source for c in theirs]:
            problems.append(f"{docname}: its code changed after {executed_path} was executed")
            continue
        for cell, done in zip(ours, theirs):
            cell.outputs = done.outputs
            cell.execution_count = done.execution_count
        seconds = executed.metadata.get("hw2_execution", {}).get("seconds")
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(path), data={"execution_seconds": seconds}),
                                    check_validity=False, overwrite=True)
    if problems:
        raise ExtensionError(
            "HW2_REUSE_EXECUTED: the book renders the chapters executed by nbval, but\n  "
            + "\n  ".join(problems)
            + "\nRun `python tools/check_chapters.py` first (or build without HW2_REUSE_EXECUTED).")


def _nothing_executed(app: Sphinx, exception) -> None:
    if exception is not None or not reusing(app):
        return
    from jupyter_cache import get_cache

    executed = [rec.uri for rec in get_cache(str(_reuse_cache_dir(app))).list_project_records()]
    if executed:
        raise ExtensionError("HW2_REUSE_EXECUTED: the build executed chapters that nbval had "
                             f"already run (a second execution): {', '.join(executed)}")


def setup(app: Sphinx) -> None:
    app.connect("config-inited", _reuse_mode)
    app.connect("env-before-read-docs", _cache_executed, priority=900)
    app.connect("build-finished", _nothing_executed)
