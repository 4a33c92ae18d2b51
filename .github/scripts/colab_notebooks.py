"""Write every chapter as a Colab-ready notebook, for the branch the Colab buttons open.

Colab opens ``.ipynb`` files from GitHub, not MyST Markdown. After the book
build, this takes each chapter of ``_toc.yml`` as executed by the build
(``_build/jupyter_execute/<page>.ipynb``, outputs included; a chapter the build
did not execute is converted from its ``.md`` with jupytext) and puts one cell
in front that installs the ``hw2`` package when, and only when, it runs on Colab,
and one that defines the book's math macros (``_config.yml``) for Colab's MathJax.

    python .github/scripts/colab_notebooks.py --build _build --out _build/notebooks

The Pages workflow commits ``--out`` as the ``notebooks`` branch
(``hw2_notebooks_branch`` in ``_config.yml``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "site"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from conftest import toc_files  # noqa: E402  (one TOC walker for the site tools)
from hw2_site import add_macros_cell  # noqa: E402  (the book's math macros as a cell)

SETUP = '''\
# On Colab: install the book's package (hw2) from its repository, keeping Colab's own
# torch. Anywhere else (a clone with `make lab`, Binder) this cell does nothing.
import sys
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install -q --no-deps {spec}")
'''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "_build", help="the book's _build folder")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the notebooks into")
    args = parser.parse_args(argv)

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].rstrip("/")
    spec = f"git+{repo}@{config['repository'].get('branch', 'main')}"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    macros = config["sphinx"]["config"].get("mathjax3_config", {}).get("tex", {}).get("macros", {})

    written = 0
    for name in toc_files(toc):
        src = ROOT / f"{name}.md"
        if not src.is_file() or "kernelspec" not in jupytext.read(src).metadata:
            continue
        executed = args.build / "jupyter_execute" / f"{name}.ipynb"
        nb = nbformat.read(executed, as_version=4) if executed.is_file() else jupytext.read(src)
        setup = nbformat.v4.new_code_cell(SETUP.format(spec=spec), metadata={"tags": ["colab-setup"]})
        add_macros_cell(nb, macros)  # no-op when the build already put it there
        nb.cells.insert(0, setup)
        nb.metadata.pop("jupytext", None)
        dest = args.out / f"{name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        written += 1
    (args.out / "README.md").write_text(
        "# Notebooks\n\nGenerated from the chapters on `main` by the Pages workflow, for the "
        "book's Colab buttons. Do not edit: edit the MyST Markdown chapters under `book/` on `main`.\n")
    print(f"colab_notebooks: {written} notebooks in {args.out}")
    return 0 if written else 1


if __name__ == "__main__":
    raise SystemExit(main())
