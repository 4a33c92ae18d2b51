"""Give chapters the header that makes them stand alone as notebooks.

* The front matter exactly as JupyterLab's autosave writes it through jupytext
  (kernelspec in the kernel's own order and display name; no jupytext version,
  which ``jupytext.toml`` filters out), so opening a chapter changes nothing.
* A first markdown cell defining the book's math macros (from ``_config.yml``)
  for Jupyter and Colab; the book build drops it from the page and checks it
  matches the configuration.

    python tools/notebook_header.py book/part3/experiments.md [...]

``tests/test_notebook.py`` checks every chapter of ``_toc.yml`` for both.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from hw2_site import MACROS_MARKER, macros_markdown  # noqa: E402

FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  name: python3
  display_name: Python 3 (ipykernel)
  language: python
---
"""


def fix(path: Path) -> bool:
    """Rewrite ``path`` with the standard header; True when it changed."""
    text = path.read_text()
    if not text.startswith("---\n"):
        raise SystemExit(f"notebook_header: {path} has no front matter (not a MyST notebook)")
    body = text[text.index("\n---\n", 4) + 5:].lstrip("\n")
    if body.startswith(MACROS_MARKER):  # an older macros cell: replace it
        body = body.split("\n+++\n", 1)[1].lstrip("\n")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    new = f"{FRONT_MATTER}\n{macros_markdown(macros)}\n\n+++\n\n{body}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {'updated' if fix(Path(name)) else 'already standard'}")
