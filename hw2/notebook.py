"""Display helpers for the book's chapters.

With them a chapter opened as a notebook (Jupyter, Colab, the site's
``.ipynb`` download) shows what its HTML page shows.

* :func:`show_source` -- a listing of package code, captioned with its file. The
  output carries three renderings: MyST Markdown (a captioned ``code-block``,
  which the book build renders like any other code on the page), HTML
  (highlighted, for Jupyter and Colab) and plain text.
* :func:`glue` and :func:`show_glued` -- values the prose quotes: each is
  glued under its name for ``{glue:text}`` in the book, and ``show_glued()``
  shows them as the cell's output, so a learner sees every number where it is
  computed.

Imported in a Jupyter kernel, it also has the kernel draw matplotlib figures
at the book's resolution and label each PNG with the size of its smallest text
(:mod:`hw2._figures`: what keeps figures readable on a phone). Nothing else
runs at import time, and nothing imports matplotlib or IPython until it is
used.
"""
from __future__ import annotations

import html
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

from hw2 import _figures

__all__ = ["Listing", "show_source", "glue", "show_glued", "Glued", "mismatch",
           "check_exercise", "MAX_LISTING_WIDTH"]

# Widest line a listing may have: the book's pages fit 88 columns of code.
MAX_LISTING_WIDTH = 88
_REPO = Path(__file__).resolve().parents[1]


_PACKAGE = Path(__file__).resolve().parent


def _relative(path: Path) -> str:
    """``hw2/optimizers.py`` for a file of the package (installed or not) or
    ``tools/...`` for one of the repository; else the file's name, never a path
    of the machine."""
    path = Path(path).resolve()
    for base, prefix in ((_PACKAGE, "hw2/"), (_REPO, "")):
        try:
            return prefix + path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.name


@dataclass(frozen=True)
class Listing:
    """Source code with the file (and lines) it comes from.

    Attributes:
        code: the source, dedented.
        path: the file it comes from.
        first_line, last_line: number the lines of ``path`` it was taken from
            (1-based, inclusive).
        name: the qualified name of the object shown (None for a file).
        language: the highlighting language.
    """

    code: str
    path: str
    first_line: int
    last_line: int
    name: str | None = None
    language: str = "python"

    @property
    def caption(self) -> str:
        what = f"`{self.name}` in " if self.name else ""
        return f"{what}`{self.path}`, lines {self.first_line}–{self.last_line}"

    @property
    def width(self) -> int:
        """Characters in the longest line."""
        return max((len(line) for line in self.code.splitlines()), default=0)

    def _repr_markdown_(self) -> str:
        # A MyST code-block (the book renders text/markdown outputs as MyST).
        fence = "````"
        caption = self.caption.replace("\n", " ")
        return (f"{fence}{{code-block}} {self.language}\n:caption: {caption}\n\n"
                f"{self.code.rstrip()}\n{fence}\n")

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name

        body = highlight(self.code, get_lexer_by_name(self.language),
                         HtmlFormatter(noclasses=True, nowrap=False))
        caption = html.escape(self.caption).replace("`", "")
        return (
            f'<div class="hw2-listing"><div style="font-size:90%;font-style:italic">'
            f"Listing: {caption}</div>{body}</div>"
        )

    def __repr__(self) -> str:  # text/plain, e.g. in a terminal
        caption = self.caption.replace("`", "")
        return f"# {caption}\n{self.code.rstrip()}"


def _lines_between(lines: list[str], start_at: str | None, end_before: str | None,
                   what: str) -> tuple[int, int]:
    """Index range [first, stop) of ``lines`` between two markers.

    From the first line containing ``start_at`` up to (not including) the
    first later line containing ``end_before``.
    """
    first, stop = 0, len(lines)
    if start_at is not None:
        hits = [i for i, line in enumerate(lines) if start_at in line]
        if not hits:
            raise ValueError(
                f"show_source: no line of {what} contains start_at={start_at!r}"
            )
        first = hits[0]
    if end_before is not None:
        hits = [i for i, line in enumerate(lines) if i > first and end_before in line]
        if not hits:
            raise ValueError(f"show_source: no line of {what} after the start contains "
                             f"end_before={end_before!r}")
        stop = hits[0]
    return first, stop


def show_source(obj, *, start_at: str | None = None, end_before: str | None = None,
                language: str | None = None, max_width: int | None = None) -> Listing:
    """A captioned listing of a class, function or method of the package, or of a file.

    Args:
        obj: a class, function or method (``hw2.optimizers.VanillaSGD``,
            ``Adam.update``), or the path of a text file relative to the
            repository root (``"tools/slurm/sweep.example.toml"``).
        start_at, end_before: show only the lines from the first one
            containing ``start_at`` up to the first later one containing
            ``end_before`` (like ``literalinclude``'s options of the same
            names).
        language: the highlighting language; default ``python`` for code
            objects and a guess from the file's suffix for a path.
        max_width: raise ``ValueError`` when a shown line is wider (the book's
            column is :data:`MAX_LISTING_WIDTH`; ``tests/test_notebook.py``
            checks every listing of the chapters against it).

    Returns:
        A :class:`Listing`, which a notebook displays as highlighted code
        under a caption naming the file and lines.

    Raises:
        TypeError: an object without source.
        ValueError: no such file, a marker that no line contains, or a line
            wider than ``max_width``.
    """
    if isinstance(obj, (str, Path)):
        path = (_REPO / obj) if not Path(obj).is_absolute() else Path(obj)
        if not path.is_file():
            raise ValueError(f"show_source: no file {obj!s} in the repository")
        lines = path.read_text().splitlines()
        name, offset = None, 1
        language = language or {".toml": "toml", ".py": "python", ".yml": "yaml",
                                ".yaml": "yaml", ".sh": "bash"}.get(path.suffix, "text")
    else:
        try:
            lines, offset = inspect.getsourcelines(obj)
            # getsourcelines unwraps decorators (torch.no_grad's functools.wraps),
            # getsourcefile does not: the file of the unwrapped function.
            path = Path(inspect.getsourcefile(inspect.unwrap(obj)))
        except (TypeError, OSError) as exc:
            raise TypeError(f"show_source: {obj!r} has no Python source to "
                            f"show") from exc
        lines = [line.rstrip("\n") for line in lines]
        name = getattr(obj, "__qualname__", None)
        language = language or "python"
    first, stop = _lines_between(lines, start_at, end_before, _relative(path))
    shown = lines[first:stop]
    while shown and not shown[-1].strip():
        shown.pop()
    listing = Listing(code=textwrap.dedent("\n".join(shown)) + "\n",
                      path=_relative(path), first_line=offset + first,
                      last_line=offset + first + len(shown) - 1, name=name,
                      language=language)
    if max_width is not None and listing.width > max_width:
        wide = [f"line {listing.first_line + i}: {len(line)} characters"
                for i, line in enumerate(listing.code.splitlines())
                if len(line) > max_width]
        raise ValueError(
            f"show_source: {listing.caption.replace('`', '')} has lines wider than "
            f"{max_width} characters, the book's column ({'; '.join(wide)}); "
            "wrap them in the package"
        )
    return listing


_pending: dict = {}


def glue(name: str, value) -> None:
    """Glue ``value`` under ``name`` for the prose (``{glue:text}`name:.3f```).

    Nothing is shown yet: :func:`show_glued` shows every value glued since it
    last ran, so a learner sees each number the prose quotes where it is
    computed. Without myst-nb (a learner's own Jupyter) only the showing happens.
    """
    if not isinstance(name, str) or not name or any(c in name for c in " `:\t\n"):
        raise ValueError(
            f"glue: the name must be a string without spaces, colons or "
            f"backticks (the prose writes {{glue:text}}`name:format`), got {name!r}"
        )
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a 0-d tensor or numpy scalar: glue the number
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        myst_glue = None
    if myst_glue is not None:
        myst_glue(name, value, display=False)
    _pending[name] = value


@dataclass(frozen=True)
class Glued:
    """Values glued for the prose, shown as ``name = value`` lines."""

    values: dict

    def __repr__(self) -> str:
        def fmt(value) -> str:
            if isinstance(value, float):
                return f"{value:.6g}"
            return value if isinstance(value, str) else repr(value)

        width = max((len(k) for k in self.values), default=0)
        lines = [f"{k:<{width}} = {fmt(v)}" for k, v in self.values.items()]
        return "Quoted in the text:\n  " + "\n  ".join(lines)


def show_glued() -> Glued | None:
    """Show every value glued since the last call, and forget them.

    They are shown as this cell's output.
    """
    if not _pending:
        return None
    shown = Glued(dict(_pending))
    _pending.clear()
    try:
        from IPython.display import display
    except ImportError:
        print(repr(shown))
    else:
        display(shown)
    return None


def mismatch(actual, expected) -> str:
    """A failed closeness check in words.

    The largest difference, where it is, and both values there. For asserts
    such as ``assert torch.allclose(a, b), mismatch(a, b)``; the arguments are
    broadcast against each other as ``torch.allclose`` does.
    """
    import torch

    a = torch.as_tensor(actual)
    b = torch.as_tensor(expected)
    try:
        a, b = torch.broadcast_tensors(a, b.to(a.dtype) if a.is_floating_point() else b)
    except RuntimeError:
        return f"shapes differ: {tuple(a.shape)} against {tuple(b.shape)}"
    if a.numel() == 0:
        return "both are empty"
    diff = (a.double() - b.double()).abs()
    flat = int(torch.nan_to_num(diff, nan=float("inf")).reshape(-1).argmax())
    index = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
        if diff.dim()
        else ()
    )
    where = f" at index {index}" if index else ""
    return (
        f"largest |difference| {diff.reshape(-1)[flat].item():.3g}{where}: "
        f"{a.reshape(-1)[flat].item():.6g} against {b.reshape(-1)[flat].item():.6g}"
    )


def check_exercise(check, *answers) -> None:
    """Run an exercise's ``check`` on the learner's ``answers`` if they are written.

    An exercise's stub raises ``NotImplementedError`` until the learner fills
    it in; until then this prints "Not written yet" and where to go on.
    Otherwise the check runs: a wrong answer fails with the check's own
    message, a right one prints "Correct". The chapter's solution calls the
    same ``check`` on the solution, so the book's run verifies the check and
    the solution both. Returns None, so the cell shows only the message.
    """
    try:
        check(*answers)
    except NotImplementedError:
        print("Not written yet: fill in the cell above, then run this cell again.\n"
              "(The solution below shows one way.)")
        return
    print("Correct: your answer passes the check.")


_figures.install()   # in a Jupyter kernel only; elsewhere it does nothing
