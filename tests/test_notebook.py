"""Tests for hw2.notebook (the chapters' display helpers) and for the chapters as
notebooks: opening and saving one in JupyterLab (through jupytext) leaves its file
byte-identical, and each starts with the book's math macros."""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

import hw2.notebook as nbh
from hw2.optimizers import VanillaSGD

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from check_chapters import chapter_sources  # noqa: E402
from notebook_header import save_to  # noqa: E402  (the save the test repeats)
from hw2_site import macros_markdown, plain_directives, split_at_solutions  # noqa: E402

CHAPTERS = chapter_sources([])
# Chapters whose owner has not yet run tools/notebook_header.py on them: strict
# xfail, so each entry must go once its chapter passes.
HEADER_PENDING: set[str] = set()


# Chapters without their exercises yet (issue 15: at least two per chapter): strict
# xfail, so each entry must go once its chapter has them.
EXERCISES_PENDING: set[str] = set()


def _chapter_params(pending=HEADER_PENDING, reason="run tools/notebook_header.py on it"):
    params = []
    for chapter in CHAPTERS:
        rel = chapter.relative_to(ROOT).as_posix()
        marks = [pytest.mark.xfail(strict=True, reason=f"{rel}: {reason}")
                 ] if rel in pending else []
        params.append(pytest.param(chapter, id=rel, marks=marks))
    return params


# --- show_source ---------------------------------------------------------------------

def test_listing_of_a_class_names_file_and_lines():
    listing = nbh.show_source(VanillaSGD)
    source = (ROOT / "hw2" / "optimizers.py").read_text().splitlines()
    assert listing.path == "hw2/optimizers.py" and listing.name == "VanillaSGD"
    assert source[listing.first_line - 1].startswith("class VanillaSGD")
    shown = listing.code.rstrip("\n").splitlines()
    assert shown == source[listing.first_line - 1: listing.last_line]
    assert "`hw2/optimizers.py`" in listing.caption and f"{listing.first_line}" in listing.caption


def test_listing_of_a_method_is_dedented_and_renders_three_ways():
    listing = nbh.show_source(VanillaSGD.update)
    assert listing.code.startswith("def update"), listing.code[:40]
    markdown = listing._repr_markdown_()
    assert markdown.startswith("````{code-block} python\n:caption: `VanillaSGD.update` in ")
    assert markdown.rstrip().endswith("````") and listing.code.strip() in markdown
    html = listing._repr_html_()
    assert "hw2/optimizers.py" in html and "<pre" in html and "update" in html
    assert repr(listing).startswith("# VanillaSGD.update in hw2/optimizers.py, lines ")


def test_listing_of_a_file_and_a_range():
    listing = nbh.show_source("tools/slurm/sweep.example.toml")
    assert listing.language == "toml" and listing.first_line == 1
    text = (ROOT / "tools/slurm/sweep.example.toml").read_text()
    assert listing.code.strip() == text.strip()
    part = nbh.show_source("pyproject.toml", start_at="[project]", end_before="[project.optional")
    assert part.code.startswith("[project]") and "optional-dependencies" not in part.code
    assert part.first_line > 1 and part.last_line - part.first_line + 1 == len(part.code.splitlines())
    with pytest.raises(ValueError, match="start_at='no such line'"):
        nbh.show_source("pyproject.toml", start_at="no such line")
    with pytest.raises(ValueError, match="no file"):
        nbh.show_source("no/such/file.py")
    with pytest.raises(TypeError, match="no Python source"):
        nbh.show_source(42)


def test_listing_wider_than_the_column_is_refused(tmp_path, monkeypatch):
    wide = tmp_path / "wide.py"
    wide.write_text("x = 1\ny = '" + "a" * 100 + "'\n")
    assert nbh.show_source(wide).width == 106
    with pytest.raises(ValueError, match=r"wider than 88 characters.*line 2: 106 characters"):
        nbh.show_source(wide, max_width=88)


_SHOWN = re.compile(r"^show_source\((hw2\.[\w.]+)\)$", re.M)


def _chapter_listings():
    for chapter in CHAPTERS:
        for target in _SHOWN.findall(chapter.read_text()):
            yield pytest.param(chapter, target, id=f"{chapter.stem}:{target}")


_FENCE = re.compile(r"^(`{3,})(.*)$")


def _code_lines(text: str):
    """(line number, line) of the code a page shows: code cells (not their
    metadata) and literal blocks (```bash, ```text, ...), not directives."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        shown = info.startswith("{code-cell}") or not info.startswith("{")
        i += 1
        if shown and i < len(lines) and lines[i] == "---":  # a cell's YAML metadata
            i += 1
            while i < len(lines) and lines[i] != "---":
                i += 1
            i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            if shown and not (info.startswith("{code-cell}") and lines[i].startswith(":")):
                yield i + 1, lines[i]
            i += 1
        i += 1


@pytest.mark.parametrize("chapter", _chapter_params(pending=set()))
def test_chapter_code_fits_the_column(chapter):
    """The site's column holds 88 columns of code (book/_static/hw2.css); the site
    suite finds the rest, this finds code lines before any build."""
    wide = [f"line {n}: {len(line)} columns" for n, line in
            _code_lines(chapter.read_text()) if len(line) > nbh.MAX_LISTING_WIDTH]
    assert not wide, (f"{chapter.relative_to(ROOT)}: code wider than "
                      f"{nbh.MAX_LISTING_WIDTH} columns: {'; '.join(wide)}")


def undefined_names(chapter_text: str) -> list[str]:
    """The names a chapter's code cells, run in order, use before anything defines
    them (pyflakes on the cells joined as one module)."""
    import io

    import jupytext
    from pyflakes import api, reporter

    notebook = jupytext.reads(chapter_text, fmt="md:myst")
    source = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    found, errors = io.StringIO(), io.StringIO()
    api.check(source, "chapter", reporter.Reporter(found, errors))
    assert not errors.getvalue(), errors.getvalue()
    return [line.split(": ", 1)[1] for line in found.getvalue().splitlines()
            if "undefined name" in line]


@pytest.mark.parametrize("chapter", _chapter_params(pending=set()))
def test_no_cell_uses_a_name_before_a_cell_defines_it(chapter):
    """An assert's message runs only when the assert fails: a helper it calls must
    be defined by then (the Jacobian cell of the chain-rule chapter once called
    ``mismatch`` a cell before the import)."""
    assert not undefined_names(chapter.read_text()), (
        f"{chapter.relative_to(ROOT)}: {undefined_names(chapter.read_text())}")


def test_a_name_used_before_its_import_is_found():
    chapter = (ROOT / "book" / "part1" / "chain_rule.md").read_text()
    first, import_line = "```{code-cell} ipython3\n", "import glue, mismatch"
    assert import_line in chapter
    late = chapter.replace(first, first + "assert True, mismatch(1, 1)\n", 1)
    assert undefined_names(late) == ["undefined name 'mismatch'"]


def test_every_listing_fits_the_column():
    import importlib

    wide = []
    for chapter in CHAPTERS:
        for target in _SHOWN.findall(chapter.read_text()):
            parts = target.split(".")
            for i in range(len(parts), 1, -1):  # longest importable module prefix
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
                break
            listing = nbh.show_source(obj)
            if listing.width > nbh.MAX_LISTING_WIDTH:
                wide.append(f"{chapter.relative_to(ROOT)}: {target} is {listing.width} wide")
    assert not wide, "listings wider than the book's column:\n  " + "\n  ".join(wide)


# --- glue and show_glued -------------------------------------------------------------

def test_glue_shows_values_once(capsys, monkeypatch):
    glued = []
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.append((name, value, display)))
    nbh._pending.clear()
    nbh.glue("rate", torch.tensor(0.923076923))
    nbh.glue("steps", 40)
    assert [(n, d) for n, _, d in glued] == [("rate", False), ("steps", False)]
    assert isinstance(glued[0][1], float), "a 0-d tensor is glued as a number"
    shown = nbh.Glued(dict(nbh._pending))
    assert repr(shown) == "Quoted in the text:\n  rate  = 0.923077\n  steps = 40"
    nbh.show_glued()
    assert nbh._pending == {} and nbh.show_glued() is None
    with pytest.raises(ValueError, match="without spaces"):
        nbh.glue("bad name", 1)


def test_mismatch_reports_largest_difference():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert nbh.mismatch(a, torch.tensor([1.0, 2.5, 3.0])) == (
        "largest |difference| 0.5 at index (1,): 2 against 2.5")
    assert "shapes differ" in nbh.mismatch(a, torch.zeros(2))
    assert nbh.mismatch(torch.tensor(1.0), 1.25).startswith("largest |difference| 0.25: ")


# --- the chapters as notebooks --------------------------------------------------------

def _config_macros() -> dict:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]


@pytest.mark.parametrize("chapter", _chapter_params())
def test_chapter_starts_with_the_macros(chapter):
    import jupytext

    nb = jupytext.read(chapter)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source == macros_markdown(_config_macros()), (
        f"{chapter.name}: the first cell must define the book's math macros for Jupyter "
        f"(run tools/notebook_header.py on it); it is:\n{first.source[:200]}")


@pytest.mark.parametrize("chapter", _chapter_params())
def test_opening_and_saving_in_jupyterlab_changes_nothing(tmp_path, chapter):
    pytest.importorskip("jupyter_server", reason="JupyterLab's contents manager (pip install jupyter-server)")
    rel = chapter.relative_to(ROOT)
    (tmp_path / rel.parent).mkdir(parents=True)
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copy(chapter, tmp_path / rel)
    save_to(tmp_path, rel.as_posix())
    before, after = chapter.read_text(), (tmp_path / rel).read_text()
    if before != after:
        import difflib

        diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                            "in git", "after a JupyterLab save", n=1))
        pytest.fail(f"{rel}: saving it from JupyterLab rewrites it:\n{diff[:3000]}")


def test_check_exercise_waits_for_the_learner_then_checks(capsys):
    from hw2.notebook import check_exercise

    def stub(x):
        raise NotImplementedError("your code here")

    def check(fn):
        assert fn(2) == 4, f"square(2) gave {fn(2)}, not 4"

    assert check_exercise(check, stub) is None   # a cell ending in it shows no value
    assert capsys.readouterr().out.startswith("Not written yet")
    check_exercise(check, lambda x: x * x)
    assert capsys.readouterr().out.startswith("Correct")
    with pytest.raises(AssertionError, match="square\\(2\\) gave 5, not 4"):
        check_exercise(check, lambda x: x + 3)


# --- exercises ------------------------------------------------------------------------

def test_exercise_and_solution_directives_become_plain_markdown():
    numbers = {"ex-a": "3.2"}.get
    source = ("Before.\n\n:::{exercise} Softplus\n:label: ex-a\n\nWrite $f$.\n\n"
              "```python\nx = 1\n```\n:::\n\n```{solution-start} ex-a\n:class: dropdown\n```\n"
              "\nBecause.\n\n```{solution-end}\n```")
    assert plain_directives(source, numbers) == (
        "Before.\n\n**Exercise 3.2** (Softplus)\n\nWrite $f$.\n\n```python\nx = 1\n```\n\n"
        "**Solution** (Exercise 3.2)\n\nBecause.\n")
    # An admonition becomes a block quote; directives it does not know stay as they are.
    tip = "```{admonition} Try it\n:class: tip\nChange $p$.\n```"
    assert plain_directives(tip, numbers) == "> **Try it**\n>\n> Change $p$."
    figure = "```{glue:figure} fig_a\n:name: fig-a\n\nCaption.\n```"
    assert plain_directives(figure, numbers) == figure
    # Without a number (no :label:) the exercise is still readable.
    assert plain_directives(":::{exercise}\nDo it.\n:::", numbers) == "**Exercise**\n\nDo it."


def test_a_solution_starts_and_ends_its_own_cells():
    source = ":::{exercise} T\n:label: ex-a\nDo.\n:::\n\n```{solution-start} ex-a\n:class: dropdown\n```\n\nBecause."
    assert split_at_solutions(source) == [
        ("text", ":::{exercise} T\n:label: ex-a\nDo.\n:::"),
        ("start", "```{solution-start} ex-a\n:class: dropdown\n```"),
        ("text", "Because.")]
    assert split_at_solutions("```{solution-end}\n```\n\nNext.") == [
        ("end", "```{solution-end}\n```"), ("text", "Next.")]
    assert split_at_solutions("Plain text.") == [("text", "Plain text.")]


_DIRECTIVE = re.compile(r"^(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*?)\s*$", re.M)


def _exercises(chapter: Path) -> tuple[list[str], list[str]]:
    """The chapter's exercise labels in order, and what breaks the convention
    (CONTRIBUTING.md, "Exercises")."""
    text = chapter.read_text()
    labels, problems, open_solution = [], [], None
    for match in _DIRECTIVE.finditer(text):
        name, arg = match["name"], match["arg"]
        options = text[match.end():].lstrip("\n").split("\n\n", 1)[0]
        if name == "exercise":
            label = re.search(r"^:label:\s*(\S+)", options, re.M)
            if not label or not label[1].startswith("ex-"):
                problems.append(f"exercise {arg!r} has no ':label: ex-...'")
                continue
            labels.append(label[1])
        elif name == "solution":
            problems.append(f"a {{solution}} directive for {arg!r}: use {{solution-start}} and "
                            "{solution-end} around its text and cells")
        elif name == "solution-start":
            if arg not in labels:
                problems.append(f"solution-start {arg!r} names no exercise above it")
            if not re.search(r"^:class:.*\bdropdown\b", options, re.M):
                problems.append(f"solution of {arg!r} is not collapsed (:class: dropdown)")
            if open_solution:
                problems.append(f"solution of {open_solution!r} has no solution-end")
            open_solution = arg
        elif name == "solution-end":
            if not open_solution:
                problems.append("a solution-end without solution-start")
            open_solution = None
    if open_solution:
        problems.append(f"solution of {open_solution!r} has no solution-end")
    solved = set(re.findall(r"^`{3,}\{solution-start\}\s*(\S+)", text, re.M))
    problems += [f"exercise {label!r} has no solution" for label in labels if label not in solved]
    return labels, problems


@pytest.mark.parametrize("chapter", _chapter_params(pending=set()))
def test_exercises_follow_the_convention(chapter):
    labels, problems = _exercises(chapter)
    assert not problems, f"{chapter.name}:\n  " + "\n  ".join(problems)


def test_exercise_labels_are_unique_in_the_book():
    seen: dict[str, str] = {}
    clashes = []
    for chapter in CHAPTERS:
        for label in _exercises(chapter)[0]:
            if label in seen:
                clashes.append(f"{label} in {seen[label]} and {chapter.name}")
            seen[label] = chapter.name
    assert not clashes, "exercise labels used twice: " + "; ".join(clashes)


@pytest.mark.parametrize("chapter", _chapter_params(EXERCISES_PENDING, "add its exercises"))
def test_every_chapter_has_exercises(chapter):
    labels, _ = _exercises(chapter)
    assert len(labels) >= 2, f"{chapter.name} has {len(labels)} exercises, at least 2 wanted"


def test_a_decorated_method_is_captioned_with_its_own_file():
    """torch.no_grad() wraps these methods: the caption names hw2's file, not torch's."""
    from hw2.notebook import show_source
    from hw2.layers import CrossEntropyLoss, Dropout, LeakyReLU, Linear, Sequential
    from hw2.optimizers import Optimizer

    for method, path in [(Linear.backward, "hw2/layers.py"),
                         (LeakyReLU.backward, "hw2/layers.py"),
                         (CrossEntropyLoss.backward, "hw2/layers.py"),
                         (Dropout.backward, "hw2/layers.py"),
                         (Sequential.backward, "hw2/layers.py"),
                         (Optimizer.step, "hw2/optimizers.py")]:
        listing = show_source(method)
        assert listing.path == path, (method, listing.caption)
        assert "site-packages" not in listing.caption and "def " in listing.code


# --- figures: the book's resolution and the text-size label (hw2._figures) -------------

def _figure_with_text(fontsize: float):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1])
    ax.set_title("title", fontsize=12)
    ax.text(0.5, 0.5, "small note", fontsize=fontsize)
    ax.tick_params(labelsize=10)
    return fig


def test_a_figure_png_carries_its_smallest_text_in_pixels():
    import base64
    import io

    from PIL import Image
    import matplotlib.pyplot as plt
    from hw2 import _figures

    fig = _figure_with_text(fontsize=7)
    try:
        assert _figures.smallest_text_px(fig) == pytest.approx(7 * _figures.FIGURE_DPI / 72)
        image = Image.open(io.BytesIO(base64.b64decode(_figures.figure_png(fig))))
        image.load()
        assert float(image.text[_figures.TEXT_SIZE_KEY]) == pytest.approx(14.0)
        # drawn at the book's resolution: 2 inches wide at 144 dpi, less the tight crop
        assert 0.8 * 2 * _figures.FIGURE_DPI < image.width < 1.2 * 2 * _figures.FIGURE_DPI
        # invisible and empty text do not count
        hidden = fig.axes[0].text(0, 0, "tiny", fontsize=2)
        hidden.set_visible(False)
        fig.axes[0].text(0, 0, "  ", fontsize=3)
        assert _figures.smallest_text_px(fig) == pytest.approx(14.0)
    finally:
        plt.close(fig)
    blank, ax = plt.subplots()
    ax.set_axis_off()
    assert _figures.smallest_text_px(blank) is None
    plt.close(blank)


def test_the_text_chunk_is_a_valid_png_chunk():
    import io
    import zlib

    from PIL import Image
    from hw2 import _figures

    buf = io.BytesIO()
    Image.new("RGB", (3, 2), "white").save(buf, format="PNG")
    labelled = _figures.with_text_chunk(buf.getvalue(), "k", "v")
    image = Image.open(io.BytesIO(labelled))
    image.load()   # PIL checks each chunk's CRC
    assert image.text == {"k": "v"} and image.size == (3, 2)
    i = labelled.index(b"tEXt")
    assert zlib.crc32(labelled[i:i + 4 + 3]) == int.from_bytes(labelled[i + 7:i + 11], "big")
    with pytest.raises(ValueError, match="not a PNG"):
        _figures.with_text_chunk(b"GIF89a....", "k", "v")


def test_in_a_kernel_figures_are_drawn_by_the_book_renderer():
    """Installed in IPython, it renders figures; when the inline backend puts its own
    formatter back (as it does when its options change), the next cell restores it."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats
    from matplotlib.figure import Figure
    from hw2 import _figures

    shell = InteractiveShell.instance()
    try:
        assert _figures.install()
        png = shell.display_formatter.formatters["image/png"]
        assert png.lookup_by_type(Figure) is _figures.figure_png
        select_figure_formats(shell, {"png"})          # the inline backend's own
        assert png.lookup_by_type(Figure) is not _figures.figure_png
        shell.run_cell("x = 1")
        assert png.lookup_by_type(Figure) is _figures.figure_png
        fig = _figure_with_text(fontsize=9)
        data, _ = shell.display_formatter.format(fig)
        assert "image/png" in data
    finally:
        for event in ("pre_run_cell", "post_execute"):
            if _figures._ensure_renderer in shell.events.callbacks[event]:
                shell.events.unregister(event, _figures._ensure_renderer)
        InteractiveShell.clear_instance()


def test_outside_a_kernel_install_does_nothing():
    from hw2 import _figures

    assert "IPython" not in sys.modules or _figures._shell() is None
    assert _figures.install() is False
