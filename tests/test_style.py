"""The package's code style, checked in plain Python (no linter needed).

The book shows package code in listings 88 columns wide, and its docstrings
follow one style: Google's (``Args:``, ``Returns:``, ``Raises:``), as
``hw2/layers.py`` writes them.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_WIDTH = 88
PACKAGE = sorted((ROOT / "hw2").rglob("*.py"))
SPHINX_FIELD = re.compile(r"^\s*:(param|type|return|returns|rtype|raises)\b")


def _ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def test_the_package_is_found():
    assert len(PACKAGE) > 10 and ROOT / "hw2" / "layers.py" in PACKAGE


@pytest.mark.parametrize("path", PACKAGE, ids=_ids(PACKAGE))
def test_lines_fit_the_books_column(path):
    wide = [f"line {i}: {len(line)} columns"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if len(line) > MAX_WIDTH]
    assert not wide, (f"{path.relative_to(ROOT)} has lines wider than {MAX_WIDTH} "
                      f"columns: {'; '.join(wide)}")


@pytest.mark.parametrize("path", PACKAGE, ids=_ids(PACKAGE))
def test_docstrings_use_google_sections_not_sphinx_fields(path):
    fields = [f"line {i}: {line.strip()}"
              for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if SPHINX_FIELD.match(line)]
    assert not fields, (f"{path.relative_to(ROOT)} uses Sphinx fields; write Args:, "
                        f"Returns: and Raises: sections instead: {'; '.join(fields)}")
