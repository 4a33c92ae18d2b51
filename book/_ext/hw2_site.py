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

* **The notebook edition.** Every chapter starts with a markdown cell that
  defines the math macros (``_config.yml``'s, for Jupyter and Colab, which
  never read it); the page drops it after checking it matches. Every
  ``_sources/**/*.ipynb`` offered for download is made to read as plain
  Markdown: glued numbers, ``{numref}``/``{eq}``/``{ref}`` and ``{cite}``
  resolved, equation numbers as ``\\tag``, each figure followed by its
  caption, and exercises, solutions and admonitions written as plain Markdown
  ("**Exercise 3.2** (title)", "**Solution** (Exercise 3.2)", a block quote),
  with the code cells of a solution collapsed in JupyterLab.
* **One execution.** With ``HW2_REUSE_EXECUTED=1`` the build renders the
  notebooks nbval executed (``tools/check_chapters.py``) instead of executing
  the chapters again.

The browser suite ``tests/site/test_site.py`` checks all of this on the built site.
"""
from __future__ import annotations

import os
import posixpath
import re
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


def config_macros(config) -> dict:
    """The ``tex.macros`` mapping of ``mathjax3_config`` (``_config.yml``)."""
    return ((config.mathjax3_config or {}).get("tex") or {}).get("macros") or {}


def _macros_cell_check(app: Sphinx, doctree) -> None:
    """Drop a chapter's macros cell from the page (the site defines the macros through
    MathJax's configuration), after checking it matches ``_config.yml``."""
    from docutils import nodes as dn

    expected = macros_markdown(config_macros(app.config)).splitlines()[-1].strip("$")
    for para in list(doctree.findall(dn.paragraph)):
        children = [c for c in para.children if not (isinstance(c, dn.Text) and not c.strip())]
        if not children or not all(c.tagname == "math" for c in children):
            continue
        text = " ".join(c.astext() for c in children)
        if not text.lstrip().startswith("\\newcommand"):
            continue
        if text.strip() != expected:
            LOGGER.warning("the math macros cell differs from _config.yml's "
                           "mathjax3_config.tex.macros; paste this line instead: $%s$",
                           expected, location=para, type="hw2", subtype="macros")
        para.parent.remove(para)
    for comment in list(doctree.findall(dn.comment)):
        if MACROS_MARKER.strip("<!->").strip() in comment.astext():
            comment.parent.remove(comment)


# --- one execution for nbval and the book ----------------------------------------------
#
# tools/check_chapters.py runs every chapter under nbval and keeps the outputs
# (tools/nbval_record.py) in _build/executed/<docname>.ipynb. With
# HW2_REUSE_EXECUTED=1 the build renders those outputs: each chapter, as myst-nb
# reads it, is given the outputs of the same code cells and put into a fresh
# jupyter-cache, and myst-nb runs in "cache" mode, where it finds every chapter.
# A chapter without an executed copy, or whose code differs from it, stops the
# build with the command to run; and a chapter the build executed anyway fails it.

def _executed_dir(app: Sphinx) -> Path:
    value = os.environ.get("HW2_EXECUTED_DIR")
    return Path(value).resolve() if value else Path(app.srcdir) / "_build" / "executed"


def _reuse_cache_dir(app: Sphinx) -> Path:
    return Path(app.outdir).parent / ".jupyter_cache_reuse"


def _reuse_mode(app: Sphinx, config) -> None:
    if os.environ.get("HW2_REUSE_EXECUTED", "") not in ("", "0"):
        config.nb_execution_mode = "cache"
        config.nb_execution_cache_path = str(_reuse_cache_dir(app))
        shutil.rmtree(_reuse_cache_dir(app), ignore_errors=True)
        LOGGER.info("hw2: rendering the outputs of %s (no chapter executes)", _executed_dir(app))


def _reusing(app: Sphinx) -> bool:
    return (app.config.nb_execution_mode == "cache"
            and Path(app.config.nb_execution_cache_path or ".") == _reuse_cache_dir(app))


def _cache_executed(app: Sphinx, env, docnames) -> None:
    if not _reusing(app):
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
        executed_path = _executed_dir(app) / f"{docname}.ipynb"
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
    if exception is not None or not _reusing(app):
        return
    from jupyter_cache import get_cache

    executed = [rec.uri for rec in get_cache(str(_reuse_cache_dir(app))).list_project_records()]
    if executed:
        raise ExtensionError("HW2_REUSE_EXECUTED: the build executed chapters that nbval had "
                             f"already run (a second execution): {', '.join(executed)}")


# --- the notebook edition: the site's downloadable .ipynb ------------------------------
#
# What Jupyter and Colab cannot render is replaced by what the page shows: glued
# numbers by their values, {numref}/{eq}/{ref} by "Figure 5.1", "(5.1)" and the
# section's title, {cite} by "(Author, Year)", (label)= targets are dropped, a
# labelled display equation gets its number as \tag, and every captioned figure
# cell is followed by its caption. The book's macros cell stays first.

_ROLE = re.compile(r"\{(?P<role>[a-z]+(?::[a-z]+)?)\}`(?P<body>[^`]*)`")
_TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$", re.M)
_EQ_LABEL = re.compile(r"\$\$(?P<body>(?:(?!\$\$).)*?)\$\$[ \t]*\((?P<label>[\w:.-]+)\)", re.S)


def _glued_values(nb) -> dict[str, str]:
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = (out.get("metadata") or {}).get("scrapbook", {}).get("name")
            if not name:
                continue
            data = out.get("data", {})
            text = next((data[k] for k in ("application/papermill.record/text/plain", "text/plain")
                         if k in data), None)
            if text is not None:
                values[name] = text if isinstance(text, str) else "".join(text)
    return values


def _format_glued(text: str, spec: str) -> str:
    if not spec:
        return text.strip("'\"")
    try:
        return format(float(text), spec)
    except ValueError:
        try:
            return format(int(text), spec)
        except ValueError:
            return text.strip("'\"")


def _other_glued(app: Sphinx, docname: str) -> dict[str, str]:
    """The values a chapter glued: myst-nb takes them out of the executed notebook
    and writes them to ``jupyter_execute/<docname>.glue.json``."""
    import json

    path = Path(app.outdir).parent / "jupyter_execute" / f"{docname}.glue.json"
    if not path.is_file():
        return {}
    values = {}
    for key, output in json.loads(path.read_text(encoding="utf-8")).items():
        text = output.get("data", {}).get("text/plain")
        if text is not None:
            values[key] = text if isinstance(text, str) else "".join(text)
    return values


# MyST directives the notebook edition writes as Markdown. A directive is a fence
# (``:::{name} argument`` or ```` ```{name} argument ````), option lines (``:key: value``),
# then its body, up to a closing fence of the same character and at least the same length.
_FENCE_OPEN = re.compile(r"^(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*?)\s*$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*?)\s*$")
_ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
                "warning": "Warning", "caution": "Caution", "attention": "Attention",
                "danger": "Danger", "error": "Error", "seealso": "See also"}
EXERCISE_DIRECTIVES = ("exercise", "exercise-start", "exercise-end", "solution",
                       "solution-start", "solution-end")


def _closing(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the fence opened at ``start`` (len(lines) if none)."""
    char = fence[0]
    for i in range(start + 1, len(lines)):
        text = lines[i].strip()
        if text and set(text) == {char} and len(text) >= len(fence):
            return i
    return len(lines)


def plain_directives(source: str, exercise_number) -> str:
    """Write the exercise, solution and admonition directives of MyST Markdown as
    plain Markdown, which Jupyter and Colab render; other directives are left as
    they are (the site suite reports them).

    ``exercise_number(label)`` gives an exercise's number ("3.2") or None.

    >>> plain_directives(":::{exercise} Softplus\\n:label: ex-a\\n\\nWrite it.\\n:::",
    ...                  {"ex-a": "3.2"}.get)
    '**Exercise 3.2** (Softplus)\\n\\nWrite it.'
    """
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        name = match["name"] if match else None
        if name not in EXERCISE_DIRECTIVES and name not in _ADMONITIONS and name != "admonition":
            out.append(lines[i])
            i += 1
            continue
        stop = _closing(lines, i, match["fence"])
        j, options = i + 1, {}
        while j < stop and _OPTION.match(lines[j]):
            option = _OPTION.match(lines[j])
            options[option["key"]] = option["value"]
            j += 1
        body = plain_directives("\n".join(lines[j:stop]), exercise_number).strip("\n")
        arg = match["arg"]
        if name in ("exercise", "exercise-start"):
            number = exercise_number(options.get("label", "")) if "nonumber" not in options else None
            head = f"**Exercise {number}**" if number else "**Exercise**"
            out.append(head + (f" ({arg})" if arg else ""))
        elif name in ("solution", "solution-start"):
            number = exercise_number(arg)
            out.append(f"**Solution** (Exercise {number})" if number else "**Solution**")
        elif name in _ADMONITIONS or name == "admonition":
            title = arg or _ADMONITIONS.get(name, "Note")
            quoted = [f"> **{title}**", ">"] + [f"> {line}".rstrip() for line in body.split("\n")]
            out.append("\n".join(quoted))
            body = ""
        if body:
            out.extend(["", body])
        i = stop + 1
    return "\n".join(out)


class _Edition:
    """Resolves the roles of one document's markdown into plain text."""

    def __init__(self, app: Sphinx, docname: str, glued: dict[str, str]):
        self.app, self.env, self.docname, self.glued = app, app.env, docname, glued
        self.missing: list[str] = []

    def _fignumber(self, docname: str, kind: str, node_id: str) -> str:
        numbers = self.env.toc_fignumbers.get(docname, {}).get(kind, {}).get(node_id)
        return ".".join(map(str, numbers)) if numbers else ""

    def eq_number(self, label: str) -> str:
        math = self.env.get_domain("math")
        if label not in math.equations:
            self.missing.append(f"{{eq}}`{label}`")
            return label
        docname, number = math.equations[label]
        return self._fignumber(docname, "displaymath", f"equation-{label}") or str(number)

    def exercise_number(self, label: str) -> str | None:
        """The number of the exercise labelled ``label`` ("3.2"), None if unknown
        (an exercise needs a ``:label:`` to be numbered in the notebook)."""
        found = self._label(label) if label else None
        number = self._fignumber(found[0], "exercise", found[1]) if found else ""
        if not number:
            self.missing.append(f"the number of exercise {label or '(without :label:)'}")
        return number or None

    def _label(self, label: str):
        return self.env.get_domain("std").labels.get(label.lower())

    def role(self, match: re.Match) -> str:
        role, body = match["role"], match["body"]
        text, _, target = body.rpartition("<") if body.endswith(">") else ("", "", body)
        target, text = target.rstrip(">").strip(), text.strip()
        if role in ("glue", "glue:text", "glue:any"):
            other, sep, rest = body.partition("::")
            key, _, spec = (rest if sep else body).partition(":")
            glued = self.glued
            if sep:  # {glue:text}`dropout.md::key` -- a value glued by another chapter
                folder = posixpath.dirname(self.docname)
                docname = posixpath.normpath(posixpath.join(folder, other)).rsplit(".", 1)[0]
                glued = _other_glued(self.app, docname)
            if key.strip() not in glued:
                self.missing.append(f"{{{role}}}`{body}`")
                return body
            return _format_glued(glued[key.strip()], spec if role == "glue:text" else "")
        if role == "eq":
            return f"({self.eq_number(target)})"
        if role == "numref":
            found = self._label(target)
            if not found:
                self.missing.append(f"{{numref}}`{body}`")
                return text or target
            docname, node_id, _ = found
            number = self._fignumber(docname, "figure", node_id) or self._fignumber(
                docname, "table", node_id) or self._fignumber(docname, "code-block", node_id)
            kind = "Table" if self._fignumber(docname, "table", node_id) else "Figure"
            if not number and self._fignumber(docname, "exercise", node_id):
                number, kind = self._fignumber(docname, "exercise", node_id), "Exercise"
            if text:
                return text.replace("%s", number).replace("{number}", number)
            return f"{kind} {number}"
        if role == "ref":
            found = self._label(target)
            if not found:
                self.missing.append(f"{{ref}}`{body}`")
                return text or target
            return text or found[2]
        if role.startswith("cite"):
            return _citation(self.app, role, body)
        if role in ("fa", "fab", "fas"):
            return ""
        return f"`{body}`"

    def markdown(self, source: str) -> str:
        source = _TARGET.sub("", source)
        source = plain_directives(source, self.exercise_number)
        source = _EQ_LABEL.sub(
            lambda m: f"$${m['body'].rstrip()}\n\\tag{{{self.eq_number(m['label'])}}}\n$$", source)
        source = _ROLE.sub(self.role, source)
        return source.strip("\n")


_BIB: dict[str, object] = {}


def _citation(app: Sphinx, role: str, body: str) -> str:
    """(Kingma and Ba, 2015; He et al., 2016a) for {cite}, Kingma and Ba (2015) for {cite:t}."""
    if not _BIB:
        from pybtex.database import parse_file
        from pybtex.plugin import find_plugin

        entries = {}
        for name in app.config.bibtex_bibfiles:
            entries.update(parse_file(str(Path(app.srcdir) / name)).entries)
        style = find_plugin("pybtex.style.formatting", "hw2authoryear")()
        keys = sorted(entries)
        sorted_entries = [entries[k] for k in keys]
        labels = dict(zip(keys, style.label_style.format_labels(sorted_entries)))
        _BIB.update(labels=labels)
    labels = _BIB["labels"]
    keys = [k.strip() for k in body.split(",")]
    found = [labels.get(k, k) for k in keys]
    if role == "cite:t":
        return "; ".join(f"{lab.rsplit(', ', 1)[0]} ({lab.rsplit(', ', 1)[-1]})" for lab in found)
    return "(" + "; ".join(found) + ")"


def _figure_caption_cell(edition: _Edition, cell):
    import nbformat

    figure = (cell.get("metadata", {}).get("mystnb") or {}).get("figure") or {}
    caption = figure.get("caption")
    if not caption:
        return None
    number = ""
    if figure.get("name"):
        found = edition._label(figure["name"])
        if found:
            number = edition._fignumber(found[0], "figure", found[1])
    head = f"**Figure {number}.**" if number else "**Figure.**"
    return nbformat.v4.new_markdown_cell(f"{head} {edition.markdown(str(caption))}",
                                         metadata={"tags": ["hw2-figure-caption"]})


def split_at_solutions(source: str) -> list[tuple[str, str]]:
    """Split a markdown cell's source where a gated solution starts or ends.

    Returns ``(kind, text)`` pieces in order, ``kind`` being ``"start"`` (the
    ``{solution-start}`` fence), ``"end"`` (the ``{solution-end}`` fence) or
    ``"text"``; so the notebook edition can give a solution's heading, its text
    and its code cells their own cells, and collapse the solution."""
    lines = source.split("\n")
    pieces: list[tuple[str, str]] = []
    text: list[str] = []
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if match and match["name"] in ("solution-start", "solution-end"):
            if "\n".join(text).strip():
                pieces.append(("text", "\n".join(text).strip("\n")))
            text = []
            stop = _closing(lines, i, match["fence"])
            pieces.append((match["name"].split("-")[1], "\n".join(lines[i:stop + 1])))
            i = stop + 1
            continue
        text.append(lines[i])
        i += 1
    if "\n".join(text).strip() or not pieces:
        pieces.append(("text", "\n".join(text).strip("\n") if pieces else source))
    return pieces


def _collapsed(cell) -> None:
    """Collapse a cell of a solution in JupyterLab (its input, until the learner opens it)."""
    cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    tags = cell.metadata.setdefault("tags", [])
    if "hw2-solution" not in tags:
        tags.append("hw2-solution")


def notebook_edition(app: Sphinx, docname: str, nb) -> list[str]:
    """Turn an executed chapter (nbformat node) into the notebook edition, in place.

    Returns the roles it could not resolve (empty when all went well)."""
    import copy

    import nbformat

    edition = _Edition(app, docname, {**_glued_values(nb), **_other_glued(app, docname)})
    # A gated solution's heading gets a cell of its own; its text and code cells
    # stay collapsed in JupyterLab until the learner opens them.
    split, in_solution = [], False
    for cell in nb.cells:
        if cell.cell_type != "markdown" or MACROS_MARKER in cell.source:
            if in_solution:
                _collapsed(cell)
            split.append(cell)
            continue
        pieces = split_at_solutions(cell.source)
        if pieces == [("text", cell.source)]:
            pieces = []
            if in_solution:
                _collapsed(cell)
            split.append(cell)
        for kind, text in pieces:
            piece = nbformat.v4.new_markdown_cell(text, metadata=copy.deepcopy(cell.metadata))
            if kind == "start":
                in_solution = True
            elif kind == "end":
                in_solution = False
            elif in_solution:
                _collapsed(piece)
            split.append(piece)
    cells = []
    for cell in split:
        if cell.cell_type == "markdown" and MACROS_MARKER not in cell.source:
            cell.source = edition.markdown(cell.source)
            if not cell.source.strip():
                continue
        cells.append(cell)
        if cell.cell_type == "code":
            caption = _figure_caption_cell(edition, cell)
            if caption is not None:
                cells.append(caption)
    nb.cells = cells
    add_macros_cell(nb, config_macros(app.config))
    nb.metadata.pop("hw2_execution", None)
    return edition.missing


def _notebook_edition_downloads(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import nbformat

    sources = Path(app.outdir) / "_sources"
    for path in sorted(sources.rglob("*.ipynb")):
        docname = path.relative_to(sources).with_suffix("").as_posix()
        nb = nbformat.read(path, as_version=4)
        executed = _executed_dir(app) / f"{docname}.ipynb"
        if _reusing(app) and executed.is_file():
            # myst-nb writes the notebook it read, not the cached outputs it rendered:
            # give the download the outputs of the execution (same code, checked above).
            done = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
            ours = [c for c in nb.cells if c.cell_type == "code"]
            if [c.source for c in done] == [c.source for c in ours]:
                for cell, source in zip(ours, done):
                    cell.outputs, cell.execution_count = source.outputs, source.execution_count
        missing = notebook_edition(app, docname, nb)
        if missing:
            LOGGER.warning("%s.ipynb (download): cannot resolve %s", docname, ", ".join(missing),
                           type="hw2", subtype="notebook")
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
    app.connect("config-inited", _reuse_mode)
    app.connect("env-before-read-docs", _cache_executed, priority=900)
    app.connect("doctree-read", _macros_cell_check)
    app.connect("build-finished", _nothing_executed)
    app.connect("build-finished", _notebook_edition_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
