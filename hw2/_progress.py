"""Progress bars: shown when a person is watching, never where chapters run unattended.

A training loop (``hw2.training.Trainer``) shows tqdm bars on a terminal and
in a notebook that a person runs, and none in the book build, under nbval or
in the tests, which set :data:`QUIET_ENV`, nor where its output goes to a file.
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm

__all__ = ["QUIET_ENV", "in_notebook", "resolve_verbose", "progress_bar"]

#: Set (to anything but "" or "0") where chapters run unattended -- the book
#: build and nbval set it (``book/_ext/hw2_site``, ``tools/check_chapters.py``) --
#: so a notebook's cells print no progress there.
QUIET_ENV = "HW2_QUIET"


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (JupyterLab, Colab, VS Code)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # noqa: BLE001 - no IPython, or a broken one: not a notebook
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def resolve_verbose(verbose: bool | None) -> bool:
    """None means: show progress when a person is watching.

    That is a terminal, or a notebook run interactively; never where
    :data:`QUIET_ENV` is set (the book build, nbval) or output goes to a file.
    """
    if verbose is None:
        if os.environ.get(QUIET_ENV, "") not in ("", "0"):
            return False
        return bool(getattr(sys.stderr, "isatty", lambda: False)()) or in_notebook()
    return bool(verbose)


def progress_bar(**kw):
    """A tqdm bar: the notebook widget in Jupyter when ipywidgets is installed.

    Otherwise the text bar on stderr, which Jupyter shows too.
    """
    if kw.get("disable") or not in_notebook():
        return tqdm(file=sys.stderr, dynamic_ncols=True, **kw)
    try:
        import ipywidgets  # noqa: F401 - tqdm's notebook bar is an ipywidget
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return tqdm(file=sys.stderr, **kw)
    return notebook_tqdm(**kw)
