"""The answers to the assignment's questions, and its notebooks' hyperparameters.

The original course's notebooks ``import hw2.answers`` and display
``part1_q1``, ``part2_q1``, ``part2_q2`` and ``part3_q1`` … ``part3_q6`` as
Markdown, and train with the hyperparameters of :func:`part2_overfit_hp`,
:func:`part2_optim_hp` and :func:`part2_dropout_hp`.

The answers have **one source**: the book's question sections. Each answer
is the section of a chapter that follows a MyST label (``(sec-part2-q1)=``),
read when the attribute is first used and turned into plain Markdown:

1. code cells are left out (the book runs them; the answer is the prose);
2. a glued number (``{glue:text}`name:.1f```) becomes its value, read from
   the executed chapter of the built book (``_build/``) when there is one,
   and else from :data:`VALUES_FILE`, which the last build wrote (so a plain
   checkout, or an installed wheel, shows the numbers too);
3. citations become author–year text, cross-references their text, figures
   their caption.

So an answer changes only where the book changes. The chapters are read from
the checkout, or from the copy a wheel of ``hw2`` carries (``hw2._io.book_path``).
"""
from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path

from hw2._io import atomic_write, book_path, repo_root

__all__ = [
    "ANSWERS",
    "VALUES_FILE",
    "answer",
    "built_values",
    "refresh_values",
    "part2_overfit_hp",
    "part2_optim_hp",
    "part2_dropout_hp",
]

#: answer name -> (chapter, relative to the repository root; the label of its
#: section)
ANSWERS: dict[str, tuple[str, str]] = {
    "part1_q1": ("book/part1/layers.md", "sec-question-1"),
    "part2_q1": ("book/part2/questions.md", "sec-part2-q1"),
    "part2_q2": ("book/part2/questions.md", "sec-part2-q2"),
    "part3_q1": ("book/part3/questions.md", "ch-part3-questions"),
    "part3_q2": ("book/part3/experiments.md", "sec-part3-q2"),
    "part3_q3": ("book/part3/experiments.md", "sec-part3-q3"),
    "part3_q4": ("book/part3/experiments.md", "sec-part3-q4"),
    "part3_q5": ("book/part3/experiments.md", "sec-part3-q5"),
    "part3_q6": ("book/part3/experiments.md", "sec-part3-q6"),
}


# --------------------------------------------------------------------------
# Hyperparameters of the course's Part 2 notebook
# --------------------------------------------------------------------------

def part2_overfit_hp() -> dict:
    """``wstd``, ``lr``, ``reg`` for overfitting 20 images with an MLP.

    The MLP is 3072-128-128-128-10. The course's check: plain SGD, 20 epochs
    of two batches of 10 images, a best training accuracy of at least 98%.
    With three hidden layers the signal needs weights of std 0.1 (~1/√128) to
    reach the output at a useful scale; smaller ones (0.05, 0.08) leave some
    orders of the images below 98% after 20 epochs. A moderate rate and no
    regularisation let the network memorise. Checked on the JPEG copy for
    images scaled to [0, 1] (``ToTensor``, as the course loads them) and
    normalised (``hw2.data``).
    """
    return dict(wstd=0.1, lr=0.02, reg=0.0)


def part2_optim_hp() -> dict:
    """Hyperparameters for the optimizer comparison.

    ``wstd``, ``lr_vanilla``, ``lr_momentum``, ``lr_rmsprop``, ``reg``: the
    learning rates of the book's comparison chapter (``book/part2/
    comparison.md``, chosen there on a validation split): RMSProp divides by
    the gradient's running RMS, so its rate is a per-parameter step size,
    about a hundred times smaller than SGD's.
    """
    return dict(wstd=0.02, lr_vanilla=0.02, lr_momentum=0.005, lr_rmsprop=1e-4,
                reg=1e-3)


def part2_dropout_hp() -> dict:
    """``wstd``, ``lr`` for the dropout experiment.

    Momentum SGD, as in ``book/part2/dropout.md``.
    """
    return dict(wstd=0.05, lr=2e-3)


# --------------------------------------------------------------------------
# Answers, read from the chapters
# --------------------------------------------------------------------------

def answer(name: str) -> str:
    """The Markdown text of answer ``name`` (a key of :data:`ANSWERS`)."""
    if name not in ANSWERS:
        raise KeyError(f"no answer {name!r}; answers: {', '.join(ANSWERS)}")
    chapter, label = ANSWERS[name]
    return _answer_text(chapter, label)


def __getattr__(name: str) -> str:  # module attributes part1_q1, ... (PEP 562)
    if name in ANSWERS:
        return answer(name)
    raise AttributeError(f"module 'hw2.answers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *ANSWERS])


@functools.lru_cache(maxsize=None)
def _answer_text(chapter: str, label: str) -> str:
    path = book_path(chapter)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FileNotFoundError(
            f"the answers are read from the book's chapters, and {chapter} cannot "
            f"be read ({e.strerror or e}); use hw2 from the repository checkout "
            f"(pip install -e .)"
        ) from None
    section = _section(source, label, chapter)
    return _to_markdown(section, chapter)


def _section(source: str, label: str, chapter: str) -> list[str]:
    """The lines of the section under ``(label)=``.

    Its heading, down to the next heading of the same or a higher level (code
    cells skipped over).
    """
    lines = source.splitlines()
    try:
        start = lines.index(f"({label})=")
    except ValueError:
        raise LookupError(f"{chapter} has no section labelled ({label})=") from None
    heading = next((i for i in range(start + 1, len(lines)) if lines[i].strip()), None)
    match = heading is not None and re.match(r"(#+) ", lines[heading])
    if not match:
        raise LookupError(f"{chapter}: the label ({label})= is not followed by a "
                          f"heading")
    level = len(match.group(1))
    end, fence = len(lines), None
    for i in range(heading + 1, len(lines)):
        stripped = lines[i].lstrip()
        if fence is None and stripped.startswith(("```", "~~~", ":::")):
            fence = re.match(r"[`~:]+", stripped).group(0)
        elif (fence is not None and stripped.startswith(fence)
              and not stripped[len(fence):].strip()):
            fence = None
        elif fence is None:
            m = re.match(r"(#+) (.*)", lines[i])
            # The next section of the same or a higher level ends it, and so do
            # the chapter's exercises (they are not part of an answer).
            if m and (len(m.group(1)) <= level or m.group(2).strip() == "Exercises"):
                end = i
                break
    return lines[heading:end]


_FENCE = re.compile(r"^(?P<fence>```+|~~~+|:::+)\s*"
                    r"(?:\{(?P<directive>[\w:-]+)\})?\s*(?P<arg>.*)$")
_ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<body>[^`]*)`")
_LABEL = re.compile(r"^\([\w:.-]+\)=\s*$")


def _to_markdown(lines: list[str], chapter: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line.strip())
        if m and m.group("directive"):
            fence, directive = m.group("fence"), m.group("directive")
            arg = m.group("arg").strip()
            body, i = _fenced_body(lines, i + 1, fence)
            out.extend(_directive(directive, arg, body, chapter))
            continue
        if not _LABEL.match(line):
            out.append(_roles(line, chapter))
        i += 1
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _fenced_body(lines: list[str], i: int, fence: str) -> tuple[list[str], int]:
    body = []
    while i < len(lines) and lines[i].strip() != fence:
        body.append(lines[i])
        i += 1
    return body, i + 1


def _directive(name: str, arg: str, body: list[str], chapter: str) -> list[str]:
    """A MyST directive as Markdown: code cells go, figures leave their caption."""
    options = [b for b in body if b.startswith(":")]
    content = [b for b in body if not b.startswith(":")]
    if name == "code-cell":
        return []
    if name in ("glue:figure", "figure"):
        caption = " ".join(c.strip() for c in content if c.strip())
        return [f"*Figure (in the book): {_roles(caption, chapter)}*", ""]
    if name == "math":
        return ["$$", *content, "$$"]
    if name in ("note", "tip", "important", "warning", "admonition", "seealso", "hint"):
        title = arg or name.capitalize()
        text = _roles(" ".join(c.strip() for c in content), chapter)
        return [f"> **{title}.** " + text, ""]
    del options
    return [_roles(c, chapter) for c in content]


def _roles(line: str, chapter: str) -> str:
    def replace(m: re.Match) -> str:
        role, body = m.group("role"), m.group("body")
        if role in ("glue:text", "glue", "glue:any"):
            return _glue_value(body, chapter)
        # as the book renders citations: [Author et al., 2016]
        if role in ("cite", "cite:p"):
            return "[" + "; ".join(_citation(k.strip()) for k in body.split(",")) + "]"
        if role == "math":
            return f"${body}$"
        if role in ("ref", "numref", "doc", "eq"):
            text = re.match(r"(.*?)\s*<[^>]*>$", body)
            if text:
                return text.group(1).replace("%s", "").strip()
            return f"({body})" if role == "eq" else f"“{body}” in the book"
        return body

    return _ROLE.sub(replace, line)


def _glue_value(body: str, chapter: str) -> str:
    """A glued value, formatted as the chapter asks; from the built book if present."""
    source_doc, sep, rest = body.partition("::")  # "dropout.md::name:fmt" or "name:fmt"
    if not sep:
        source_doc, rest = Path(chapter).name, body
    key, _, fmt = rest.partition(":")
    notebook = (Path(chapter).parent / source_doc).with_suffix(".ipynb").as_posix()
    value = _built_glue(notebook).get(key)
    if value is None:  # no built book: the values the last build recorded
        value = _recorded_values().get(notebook, {}).get(key)
    if value is None:
        return f"[{key}: computed when the book is built]"
    try:
        return format(value, fmt) if fmt else str(value)
    except (TypeError, ValueError):
        return str(value)


#: Where a build leaves a chapter's glued values: myst-nb's record of them
#: (``<chapter>.glue.json``), then the executed notebooks (nbval's, the build's,
#: the site's download), whose glue outputs carry scrapbook metadata.
_GLUE_SOURCES = ("_build/jupyter_execute/{stem}.glue.json", "_build/executed/{nb}",
                 "_build/jupyter_execute/{nb}", "_build/html/_sources/{nb}")


@functools.lru_cache(maxsize=None)
def _built_glue(notebook: str) -> dict:
    """``{name: value}`` of the values glued in the built chapter ``notebook``.

    From the first of :data:`_GLUE_SOURCES` that has any; empty when the book
    was not built.
    """
    stem = notebook[: -len(".ipynb")] if notebook.endswith(".ipynb") else notebook
    for pattern in _GLUE_SOURCES:
        path = repo_root() / pattern.format(stem=stem, nb=notebook)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if path.name.endswith(".glue.json"):
            outputs = list(data.values()) if isinstance(data, dict) else []
        else:
            outputs = [o for cell in data.get("cells", [])
                       for o in cell.get("outputs", [])]
        values = _glued_outputs(outputs)
        if values:
            return values
    return {}


def _glued_outputs(outputs: list) -> dict:
    values = {}
    for output in outputs:
        name = output.get("metadata", {}).get("scrapbook", {}).get("name")
        text = next((v for k, v in output.get("data", {}).items()
                     if k.endswith("text/plain")), None)
        if name is None or text is None:
            continue
        text = "".join(text) if isinstance(text, list) else text
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text.strip("'\"")
    return values


#: The glued numbers the answers quote, as the last book build computed them:
#: ``{notebook: {name: value}}``. The build refreshes it (:func:`refresh_values`),
#: and the site suite checks the committed copy against the build.
VALUES_FILE = Path(__file__).with_name("answer_values.json")


def _glue_references(chapter: str, label: str) -> list[tuple[str, str]]:
    """``(notebook, name)`` of every glued value the answer's section quotes."""
    source = book_path(chapter).read_text(encoding="utf-8")
    found = []
    for line in _section(source, label, chapter):
        for m in _ROLE.finditer(line):
            if m.group("role") not in ("glue:text", "glue", "glue:any"):
                continue
            source_doc, sep, rest = m.group("body").partition("::")
            if not sep:
                source_doc, rest = Path(chapter).name, m.group("body")
            notebook = (Path(chapter).parent / source_doc).with_suffix(".ipynb")
            found.append((notebook.as_posix(), rest.partition(":")[0]))
    return found


def built_values() -> dict[str, dict]:
    """``{notebook: {name: value}}`` of every value the answers quote, from ``_build/``.

    Raises:
        LookupError: a quoted value that the built book does not have (not built,
            or a chapter that no longer glues it).
    """
    values: dict[str, dict] = {}
    missing = []
    for chapter, label in ANSWERS.values():
        for notebook, name in _glue_references(chapter, label):
            _built_glue.cache_clear()
            glued = _built_glue(notebook)
            if name not in glued:
                missing.append(f"{notebook}::{name}")
                continue
            values.setdefault(notebook, {})[name] = glued[name]
    if missing:
        raise LookupError(f"the built book lacks {len(missing)} value(s) the answers "
                          f"quote: {', '.join(sorted(missing)[:5])}")
    return {k: dict(sorted(v.items())) for k, v in sorted(values.items())}


def refresh_values() -> bool:
    """Write :data:`VALUES_FILE` from the built book; True if it changed.

    The book build calls it, so that a checkout without ``_build/`` (and an
    installed wheel) shows the answers with their numbers.
    """
    text = json.dumps(built_values(), indent=1, sort_keys=True) + "\n"
    if VALUES_FILE.is_file() and VALUES_FILE.read_text(encoding="utf-8") == text:
        return False
    atomic_write(VALUES_FILE, lambda f: f.write(text), text=True)
    _recorded_values.cache_clear()
    return True


@functools.lru_cache(maxsize=None)
def _recorded_values() -> dict:
    try:
        return json.loads(VALUES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@functools.lru_cache(maxsize=None)
def _bibliography() -> dict[str, str]:
    """``{key: "Author et al., year"}`` from the book's BibTeX file."""
    path = book_path("book/references.bib")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    entries = {}
    for m in re.finditer(r"@\w+\{([^,]+),(.*?)\n\}", text, re.S):
        key, fields = m.group(1).strip(), m.group(2)
        author = re.search(r"author\s*=\s*[{\"](.+?)[}\"],?\s*\n", fields, re.S)
        year = re.search(r"year\s*=\s*[{\"]?(\d{4})", fields)
        if not author:
            continue
        names = [a.strip() for a in re.sub(r"\s+", " ", author.group(1)).split(" and ")]
        last = [n.split(",")[0].strip(" {}") if "," in n else n.split()[-1].strip(" {}")
                for n in names]
        who = last[0] if len(last) == 1 else (
            f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al.")
        entries[key] = f"{who}, {year.group(1)}" if year else who
    return entries


def _citation(key: str) -> str:
    return _bibliography().get(key, key)
