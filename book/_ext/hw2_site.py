"""Sphinx glue for the book's website (loaded through ``sphinx.local_extensions``).

Six jobs:

* **MathJax served with the book.** Jupyter Book 1.x loads MathJax 3 from a
  CDN by default; the site must also work offline (and the browser suite runs
  offline). ``mathjax_path`` in ``_config.yml`` names a file under
  ``_static/mathjax/``; this extension copies MathJax's ``es5`` tree there from
  the pip package ``django-static-mathjax`` (a plain copy of the ``mathjax``
  npm package, no Django needed; it is in the ``dev`` extras).
* **Colab opens notebooks, not MyST Markdown.** The theme's Colab button points
  at the chapter's ``.md`` source, which Colab cannot open. The Pages workflow
  publishes every chapter converted to ``.ipynb`` on the branch named by
  ``hw2_notebooks_branch``; the Colab button is pointed there.
* **No console errors.** sphinx-thebe registers its configuration script twice
  (``const THEBE_JS_URL`` declared twice: an uncaught SyntaxError on every
  page), so identical scripts are dropped from each page; and the theme's
  light/dark mode gets an explicit default (``auto``; an empty one logs
  "Got invalid theme mode" on every first visit).

* **Bibliography labels that match the citations.** The text cites author-year
  ("Kingma and Ba, 2015"); the ``hw2authoryear`` pybtex style labels the
  bibliography the same way instead of [1], [2], ...

* **Math macros in the downloaded notebooks.** The macros (``\\R``, ``\\vec``, ...)
  live in ``_config.yml``, which Jupyter and Colab never read; every
  ``_sources/**/*.ipynb`` offered for download starts with a markdown cell that
  defines them with ``\\newcommand``.

The browser suite ``tests/site/test_site.py`` checks all of this on the built site.
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


def _colab_to_notebooks_branch(app: Sphinx, pagename, templatename, context, doctree) -> None:
    branch = app.config.hw2_notebooks_branch
    if not branch:
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            url = button.get("url", "")
            if button.get("text") == "Colab" and "/blob/" in url:
                head, tail = url.split("/blob/", 1)
                path = tail.split("/", 1)[1]
                if path.endswith(".md"):
                    path = path[: -len(".md")] + ".ipynb"
                button["url"] = f"{head}/blob/{branch}/{path}"


def _theme_defaults(app: Sphinx, config) -> None:
    # pydata-sphinx-theme reads the mode from the HTML context, not a theme option.
    if not config.html_context.get("default_mode"):
        config.html_context["default_mode"] = "auto"


def _drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    unique, seen = [], set()
    for js in scripts:
        # Inline scripts are registered with filename None or '' (same script twice).
        key = (js.filename or "", tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


MACROS_MARKER = "<!-- hw2: math macros -->"


def macros_markdown(macros: dict) -> str:
    """A markdown cell's source defining MathJax macros (the ``tex.macros`` mapping)."""
    defs = []
    for name, value in macros.items():
        if isinstance(value, (list, tuple)):
            defs.append(f"\\newcommand{{\\{name}}}[{value[1]}]{{{value[0]}}}")
        else:
            defs.append(f"\\newcommand{{\\{name}}}{{{value}}}")
    return (f"{MACROS_MARKER}\n<!-- This book's math macros (from _config.yml), "
            f"for Jupyter and Colab. -->\n${' '.join(defs)}$")


def add_macros_cell(nb, macros: dict, index: int = 0) -> None:
    """Put the macros cell into a notebook (nbformat node) once."""
    import nbformat

    if not macros or any(MACROS_MARKER in c.get("source", "") for c in nb.cells[: index + 2]):
        return
    nb.cells.insert(index, nbformat.v4.new_markdown_cell(macros_markdown(macros)))


def _macros_in_downloads(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import nbformat

    macros = ((app.config.mathjax3_config or {}).get("tex") or {}).get("macros") or {}
    for path in sorted((Path(app.outdir) / "_sources").rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        add_macros_cell(nb, macros)
        nbformat.write(nb, path)


def _register_bibliography_style() -> None:
    from collections import Counter

    from pybtex.plugin import register_plugin
    from pybtex.richtext import Text
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle

    def last_name(person) -> str:
        return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")

    class AuthorYearLabels(BaseLabelStyle):
        """Labels like the author_year citations: "Rumelhart et al., 1986", "Kingma and Ba, 2015"."""

        def format_label(self, entry) -> str:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [last_name(p) for p in people]
            if not names:
                who = entry.key
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            return f"{who}, {entry.fields.get('year', 'n.d.')}"

        def format_labels(self, sorted_entries):
            labels = [self.format_label(entry) for entry in sorted_entries]
            total, seen = Counter(labels), Counter()
            for label in labels:
                if total[label] == 1:
                    yield label
                else:  # He et al., 2016a / 2016b
                    seen[label] += 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]

    class AuthorYearStyle(PlainStyle):
        default_label_style = AuthorYearLabels

    register_plugin("pybtex.style.labels", "hw2authoryear", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", "hw2authoryear", AuthorYearStyle, force=True)


def setup(app: Sphinx) -> dict:
    app.add_config_value("hw2_notebooks_branch", "", "html")
    _register_bibliography_style()
    app.connect("config-inited", _check_config)
    app.connect("config-inited", _theme_defaults)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    # After sphinx-book-theme's own html-page-context handler (priority 500).
    app.connect("html-page-context", _colab_to_notebooks_branch, priority=900)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _macros_in_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
