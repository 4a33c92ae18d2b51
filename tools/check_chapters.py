"""Execute every chapter of the book under nbval.

nbval collects only ``.ipynb`` files, and a converted notebook left beside its
``.md`` source breaks the book build ("multiple files found"), so each chapter
is converted with jupytext into a throwaway copy of its own folder under
``_build/nbval`` (the folder's other files -- images, data -- come along), and
pytest runs there with ``--nbval-lax``. nbval starts each kernel in the
notebook's folder, so every chapter runs top to bottom in a fresh kernel from
(a copy of) its own folder, as a learner's Jupyter would run it. Every check a
chapter makes is an ``assert`` in a cell: MyST notebooks store no outputs.

That one execution also serves the book: the ``nbval_record`` plugin keeps
every cell's outputs and writes each chapter that passed, executed, to
``_build/executed/<chapter>.ipynb`` (``HW2_EXECUTED_DIR``). ``make test`` then
builds the book from those (``HW2_REUSE_EXECUTED=1``, see
``book/_ext/hw2_site/reuse.py``), so no chapter runs twice. With ``--jobs 2`` the
chapters run in two processes at once (pytest-xdist, a whole chapter at a time).

Usage::

    python tools/check_chapters.py                 # every chapter in _toc.yml
    python tools/check_chapters.py book/part1/layers.md   # just these
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("HW2_NBVAL_DIR", ROOT / "_build" / "nbval")).resolve()
EXECUTED = Path(os.environ.get("HW2_EXECUTED_DIR", ROOT / "_build" / "executed")).resolve()


def toc_files(toc: dict) -> list[str]:
    """All ``file:`` entries of a jupyter-book ``_toc.yml``, in reading order."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node and isinstance(node[key], str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def chapter_sources(args: list[str]) -> list[Path]:
    if args:
        paths = [Path(a).resolve() for a in args]
    else:
        toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
        paths = [ROOT / f"{name}.md" for name in toc_files(toc)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"check_chapters: no such chapter file: {', '.join(map(str, missing))}")
    # Only MyST notebooks (with a kernelspec) execute; plain pages are skipped.
    return [p for p in paths if "kernelspec" in jupytext.read(p).metadata]


def main(argv: list[str]) -> int:
    jobs = 1
    if argv[:1] == ["--jobs"]:
        if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
            sys.exit("check_chapters: --jobs needs a positive whole number")
        jobs, argv = int(argv[1]), argv[2:]
    chapters = chapter_sources(argv)
    if not chapters:
        print("check_chapters: no executable chapters found")
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    notebooks = []
    for folder in sorted({src.parent for src in chapters}):
        copy = OUT / folder.relative_to(ROOT)
        shutil.copytree(folder, copy, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.md", "_build", ".ipynb_checkpoints"))
    for src in chapters:
        dest = OUT / src.relative_to(ROOT).with_suffix(".ipynb")
        dest.parent.mkdir(parents=True, exist_ok=True)
        jupytext.write(jupytext.read(src), dest)
        notebooks.append(str(dest))
    for nb in notebooks:   # an executed copy from an earlier run must not outlive a failure
        (EXECUTED / Path(nb).relative_to(OUT)).unlink(missing_ok=True)
    # HW2_QUIET: the chapters' training cells print no progress bars under nbval.
    env = dict(os.environ, HW2_EXECUTED_DIR=str(EXECUTED), HW2_QUIET="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "tools"),
                                                        os.environ.get("PYTHONPATH")])))
    cmd = [
        sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
        "--nbval-cell-timeout=900", "-p", "no:cacheprovider", "-p", "nbval_record",
        "-o", "norecursedirs=.*", "-o", "testpaths=", "--rootdir", str(OUT),
    ]
    print("check_chapters:", len(notebooks), "chapters", f"in {jobs} processes" if jobs > 1 else "")
    if jobs > 1:
        # pytest-xdist hands each process the next whole chapter as it finishes one
        # (a chapter's cells share one kernel); each gets one core's worth of threads.
        env.setdefault("OMP_NUM_THREADS", "1")
        cmd += ["-n", str(min(jobs, len(notebooks))), "--dist", "loadfile"]
    return subprocess.call(cmd + notebooks, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
