"""MathJax served with the book.

Jupyter Book 1.x loads MathJax 3 from a CDN by default; the site must also
work offline (and the browser suite runs offline). ``mathjax_path`` in
``_config.yml`` names a file under ``_static/mathjax/``; this module copies
MathJax's ``es5`` tree there from the pip package ``django-static-mathjax`` (a
plain copy of the ``mathjax`` npm package, no Django needed; it is in the
``dev`` extras).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
PREFIX = "mathjax/"
# Alternative single-file bundles we do not load (about 13 MB together).
_UNUSED_BUNDLES = {
    "mml-chtml.js", "mml-svg.js", "tex-chtml.js", "tex-chtml-full.js",
    "tex-chtml-full-speech.js", "tex-mml-svg.js", "tex-svg.js", "tex-svg-full.js",
    "node-main.js", "startup.js",
}


def mathjax_es5_dir() -> Path:
    """The ``es5`` folder of the MathJax copy installed by ``django-static-mathjax``."""
    try:
        import mathjax  # the package django-static-mathjax installs
    except ImportError as exc:  # pragma: no cover - message for a broken install
        raise ExtensionError(
            "MathJax is served with the book from the pip package "
            "'django-static-mathjax', which is not installed: run "
            "`pip install -e '.[dev]'` (or `make book`)."
        ) from exc
    es5 = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"no MathJax es5 build found under {es5}")
    return es5


def _check_config(app: Sphinx, config) -> None:
    path = config.mathjax_path
    if "://" in path:
        LOGGER.warning(
            "mathjax_path %s loads MathJax from the network; the site is meant to "
            "serve its own copy (mathjax/tex-mml-chtml.js)", path, type="hw2", subtype="mathjax")
    elif path.startswith(PREFIX):
        name = path[len(PREFIX):]
        if not (mathjax_es5_dir() / name).is_file():
            raise ExtensionError(f"mathjax_path {path}: MathJax has no file {name}")


def _copy_mathjax(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not app.config.mathjax_path.startswith(PREFIX):
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    if dest.exists():
        shutil.rmtree(dest)

    def ignore(folder, names):
        top = Path(folder) == mathjax_es5_dir()
        return [n for n in names if top and n in _UNUSED_BUNDLES or n.endswith(".map")]

    shutil.copytree(mathjax_es5_dir(), dest, ignore=ignore)


def setup(app: Sphinx) -> None:
    app.connect("config-inited", _check_config)
    app.connect("build-finished", _copy_mathjax)
