"""Write every chapter's notebook edition into a folder, for the branch Colab opens.

Colab opens ``.ipynb`` files from GitHub, not MyST Markdown. After the book
build, the site offers every chapter as its notebook edition
(``_build/html/_sources/<page>.ipynb``: outputs, the book's math macros as a
first cell, a cell that installs ``hw2`` where it is missing, plain Markdown;
``book/_ext/hw2_site/edition.py``). This copies those into ``--out``:

    python .github/scripts/colab_notebooks.py --build _build --out _build/notebooks

The Pages workflow commits ``--out`` as the ``notebooks`` branch
(``hw2_notebooks_branch`` in ``_config.yml``), where the Colab buttons look.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "site"))
from conftest import toc_files  # noqa: E402  (one TOC walker for the site tools)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "_build",
                        help="the book's _build folder")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder to write the notebooks into")
    args = parser.parse_args(argv)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    written = 0
    for name in toc_files(toc):
        edition = args.build / "html" / "_sources" / f"{name}.ipynb"
        if not edition.is_file():
            continue  # a page without code (no notebook edition)
        dest = args.out / f"{name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(edition, dest)
        written += 1
    (args.out / "README.md").write_text(
        "# Notebooks\n\nThe chapters' notebook editions, from `main`, written by the Pages "
        "workflow for the book's Colab buttons. Do not edit: edit the MyST Markdown "
        "chapters under `book/` on `main`.\n")
    print(f"colab_notebooks: {written} notebooks in {args.out}")
    return 0 if written else 1


if __name__ == "__main__":
    raise SystemExit(main())
