"""The notebook edition: the site's downloadable ``.ipynb`` reads as plain Markdown.

Every chapter starts with a markdown cell that defines the math macros
(``_config.yml``'s, for Jupyter and Colab, which never read it); the page
drops it after checking it matches. Every ``_sources/**/*.ipynb`` offered for
download is made to read as plain Markdown: glued numbers, ``{numref}``/
``{eq}``/``{ref}`` and ``{cite}`` resolved, equation numbers as ``\\tag``, each
figure followed by its caption, and exercises, solutions and admonitions
written as plain Markdown ("**Exercise 3.2** (title)", "**Solution** (Exercise
3.2)", a block quote), with the code cells of a solution collapsed in
JupyterLab. Its first code cell installs ``hw2`` where it is missing
(:mod:`hw2_site.install`), so the notebook runs outside the repository.
"""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

from hw2_site.bibliography import citation
from hw2_site.buttons import public_repository
from hw2_site.install import add_install_cell
from hw2_site.reuse import executed_dir, reusing

LOGGER = logging.getLogger(__name__)

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
            return citation(self.app, role, body)
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
    options = app.config.html_theme_options or {}
    add_install_cell(nb, public_repository(app.config),
                     options.get("repository_branch") or "main")
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
        executed = executed_dir(app) / f"{docname}.ipynb"
        if reusing(app) and executed.is_file():
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


def _offer_notebook(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Offer every chapter's notebook for download, launch buttons or not.

    sphinx-book-theme copies a MyST chapter's executed notebook into
    ``_sources/`` (and lists it in the download menu) only when it makes launch
    buttons, which need a configured repository; the notebook edition is for
    every learner, so it is copied here, before the theme makes its menu.
    """
    import shutil

    if "kernelspec" not in app.env.metadata.get(pagename, {}) \
            or not str(context.get("sourcename", "")).endswith((".md", ".md.txt")):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> None:
    # Before sphinx-book-theme's header and launch buttons (priority 501).
    app.connect("html-page-context", _offer_notebook, priority=500)
    app.connect("doctree-read", _macros_cell_check)
    app.connect("build-finished", _notebook_edition_downloads)
