"""How long the book takes to build: per-chapter execution time and the total.

Two measurements (SPEC §5):

- **Full build** (default): ``jupyter-book build`` of the whole book, with the
  flags of ``make build-book`` (``-n -W --keep-going``), into a private
  ``--path-output`` folder (a temporary one unless given), so the shared
  ``_build/`` is untouched. Its wall time is the total; the per-chapter times
  are the build's own execution times, which myst-nb records in the Sphinx
  environment (``<path-output>/_build/.doctrees/environment.pickle``, the
  data behind its ``nb-exec-table``). The rest of the total is reading,
  cross-referencing and writing the HTML.
- **Chapters only** (``--chapters-only``): every chapter of ``_toc.yml`` (or
  the chapters named) is converted with jupytext and executed once with
  nbclient in a fresh kernel started in a copy of its own folder, as
  ``tools/check_chapters.py`` does; no HTML is built.

Chapters load CIFAR-10 through ``hw2.data``: on a machine without a network,
set ``HW2_CIFAR10`` (an absolute path: each chapter runs in its own folder).

    python benchmarks/book_build_time.py                          # full build
    python benchmarks/book_build_time.py --chapters-only          # every chapter, no HTML
    python benchmarks/book_build_time.py --chapters-only book/part1/chain_rule.md book/part1/autograd.md
    python benchmarks/book_build_time.py --path-output /tmp/bookbuild   # keep the build

It prints a table (seconds per chapter, slowest first) and the total. It is a
measurement, not a test: the numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from check_chapters import toc_files  # noqa: E402 -- the one _toc.yml reader of the project


def toc_chapters() -> list[Path]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [ROOT / f"{name}.md" for name in toc_files(toc)]


def executable(paths: list[Path]) -> list[Path]:
    """The MyST notebooks among ``paths`` (pages without a kernelspec do not execute)."""
    import jupytext

    return [p for p in paths if "kernelspec" in jupytext.read(p).metadata]


def time_chapters(chapters: list[Path], timeout: int, work: Path) -> list[tuple[str, float, str]]:
    """Execute each chapter once in a copy of its folder; ``[(chapter, seconds, status), ...]``."""
    import jupytext
    import nbclient

    rows = []
    for src in chapters:
        rel = src.relative_to(ROOT) if src.is_relative_to(ROOT) else Path(src.name)
        folder = work / rel.parent
        if not folder.exists():
            shutil.copytree(src.parent, folder,
                            ignore=shutil.ignore_patterns("*.md", "_build", ".ipynb_checkpoints"))
        nb = jupytext.read(src)
        client = nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3",
            resources={"metadata": {"path": str(folder)}})  # the kernel starts in the chapter's folder
        t0 = time.perf_counter()
        try:
            client.execute()
            status = "ok"
        except Exception as e:  # CellExecutionError, timeout, dead kernel: time it, report it
            status = f"FAILED ({type(e).__name__})"
        rows.append((rel.with_suffix("").as_posix(), time.perf_counter() - t0, status))
        print(f"  {rows[-1][0]}: {rows[-1][1]:.1f} s {status}", flush=True)
    return rows


def build_book(path_output: Path) -> tuple[float, int]:
    """``jupyter-book build`` into ``path_output``; ``(wall seconds, exit code)``."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(ROOT), "-n", "-W", "--keep-going",
           "--path-output", str(path_output)]
    log = path_output / "build.log"
    path_output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0, code


def build_exec_times(path_output: Path) -> list[tuple[str, float, str]]:
    """Per-chapter execution times that myst-nb recorded during the build."""
    pickled = path_output / "_build" / ".doctrees" / "environment.pickle"
    if not pickled.is_file():
        return []
    with open(pickled, "rb") as f:
        env = pickle.load(f)
    rows = []
    for docname, meta in sorted(getattr(env, "nb_metadata", {}).items()):
        data = meta.get("exec_data") if isinstance(meta, dict) else None
        if data and data.get("runtime") is not None:
            rows.append((docname, float(data["runtime"]), "ok" if data.get("succeeded") else "FAILED"))
    return rows


def print_table(rows: list[tuple[str, float, str]], total: float, total_label: str) -> None:
    width = max([len("chapter")] + [len(r[0]) for r in rows])
    print(f"\n{'chapter':<{width}}  {'seconds':>8}  {'share':>6}  status")
    for name, seconds, status in sorted(rows, key=lambda r: -r[1]):
        share = f"{100 * seconds / total:5.1f}%" if total > 0 else "   -  "
        print(f"{name:<{width}}  {seconds:8.1f}  {share:>6}  {status}")
    executed = sum(r[1] for r in rows)
    print(f"{'chapters, summed':<{width}}  {executed:8.1f}")
    print(f"{total_label:<{width}}  {total:8.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("chapters", nargs="*", type=Path,
                   help="with --chapters-only: just these chapter files (default: all of _toc.yml)")
    p.add_argument("--chapters-only", action="store_true",
                   help="execute the chapters only (nbclient), skip the jupyter-book build")
    p.add_argument("--path-output", type=Path, default=None,
                   help="folder for the build (kept); default: a temporary folder, removed")
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (as _config.yml)")
    args = p.parse_args(argv)
    if args.chapters and not args.chapters_only:
        p.error("naming chapters needs --chapters-only (the full build always builds the whole book)")
    if not os.environ.get("HW2_CIFAR10"):
        print("note: HW2_CIFAR10 is not set; chapters that load CIFAR-10 will try to download it",
              file=sys.stderr)

    print(f"book build time on {platform.node()} ({os.cpu_count()} cores), python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="hw2-book-build-") as tmp:
        out = (args.path_output or Path(tmp)).resolve()
        if args.chapters_only:
            chapters = [c.resolve() for c in args.chapters] if args.chapters else toc_chapters()
            missing = [str(c) for c in chapters if not c.is_file()]
            if missing:
                p.error(f"no such chapter file: {', '.join(missing)}")
            chapters = executable(chapters)
            print(f"executing {len(chapters)} chapters (nbclient, each in a copy of its folder under {out})")
            t0 = time.perf_counter()
            rows = time_chapters(chapters, args.timeout, out / "chapters")
            total = time.perf_counter() - t0
            print_table(rows, total, "total wall time")
            return 0 if all(r[2] == "ok" for r in rows) else 1
        print(f"jupyter-book build -n -W --keep-going --path-output {out} ...", flush=True)
        total, code = build_book(out)
        rows = build_exec_times(out)
        if not rows:
            print("(no per-chapter execution times found in the build's environment)")
        print_table(rows, total, "jupyter-book build, wall")
        print(f"\nbuild exit code {code}; log: "
              f"{out / 'build.log' if args.path_output else '(removed with the temporary folder)'}")
        if code and not args.path_output:
            print((out / "build.log").read_text()[-3000:])
        return code


if __name__ == "__main__":
    raise SystemExit(main())
