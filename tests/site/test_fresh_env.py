"""A learner's downloaded notebooks run outside the repository.

What a learner with no checkout does: download a chapter's notebook from the
site (``_sources/<page>.ipynb``) and the wheel of ``hw2`` the site serves
(``_static/hw2-<version>-py3-none-any.whl``) into one folder, and run the
notebook in a Python environment that has the book's dependencies (torch,
matplotlib, Jupyter) but not ``hw2``. The notebook's first code cell installs
the wheel from that folder. This suite does exactly that for three chapters,
the experiments chapter among them (it reads the study's result files, which
the wheel carries as package data), in a fresh virtual environment in a
temporary folder outside the repository:

* the environment is ``python -m venv`` with its own ``site-packages``; the
  dependencies are the project environment's, seen through a ``.pth`` file
  that names a folder of links to them, with ``hw2`` itself left out (its
  editable install and metadata), so ``import hw2`` fails until the first cell
  runs and pip finds torch installed (nothing is downloaded);
* each notebook is executed in that environment's kernel with nbclient, with
  the working folder set to the download folder and no ``HW2_*`` variable or
  ``PYTHONPATH`` of the build, except ``HW2_CIFAR10`` (the experiments
  chapter's smoke runs load CIFAR-10; a learner without a network points it
  at a local copy, as the introduction says, and one with a network needs
  nothing);
* every cell must run without an error, ``hw2`` must then be imported from the
  fresh environment, and no output may show a placeholder.

The time each notebook took is written to ``fresh-env.json`` beside the HTML
folder (``_build/fresh-env.json``). Run after the book build::

    .venv/bin/python -m pytest tests/site/test_fresh_env.py
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Three chapters a learner downloads: the experiments chapter reads the study.
NOTEBOOKS = ("book/part1/layers", "book/part2/optimizers", "book/part3/experiments")
TIMEOUT_S = 1800   # per notebook

_RUN = r"""
import json, sys, time
import nbformat
from nbclient import NotebookClient

path, timeout = sys.argv[1], int(sys.argv[2])
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                        resources={"metadata": {"path": "."}})
client.execute()
seconds = time.perf_counter() - start
nbformat.write(nb, path.replace(".ipynb", ".executed.ipynb"))
print(json.dumps({"seconds": seconds}))
"""

_WHERE = r"""
import hw2, json, sys
print(json.dumps({"hw2": hw2.__file__, "prefix": sys.prefix}))
"""


def _is_hw2(name: str) -> bool:
    low = name.lower()
    return (low == "hw2" or low.startswith(("hw2-", "hw2.", "__editable__"))
            or low.endswith(".pth"))


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A fresh virtual environment with the dependencies and without hw2."""
    base = tmp_path_factory.mktemp("fresh-env")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    deps = base / "dependencies"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not _is_hw2(entry.name):
            (deps / entry.name).symlink_to(entry)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "book-dependencies.pth").write_text(f"{deps}\n")
    probe = subprocess.run([str(python), "-c", "import torch, nbclient, ipykernel; import hw2"],
                           capture_output=True, text=True, env=_learner_env(base), cwd=base)
    assert "No module named 'hw2'" in probe.stderr, (
        "the fresh environment must have the dependencies and not hw2:\n" + probe.stderr)
    return python


def _learner_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HW2_", "PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    if "HW2_CIFAR10" in os.environ:   # a learner without a network sets it too
        env["HW2_CIFAR10"] = os.environ["HW2_CIFAR10"]
    env["HW2_QUIET"] = "1"   # no progress bars in the captured outputs
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if ".venv" not in p)
    env["JUPYTER_DATA_DIR"] = str(home / "jupyter")   # no kernelspec of the build machine
    env["IPYTHONDIR"] = str(home / "ipython")
    return env


_times: dict[str, float] = {}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_downloaded_notebook_runs_in_a_fresh_environment(name, html_dir, fresh_python, tmp_path):
    site = html_dir
    wheels = sorted((site / "_static").glob("hw2-*.whl"))
    assert len(wheels) == 1, f"the site serves {len(wheels)} wheels of hw2 in _static/"
    notebook = site / "_sources" / f"{name}.ipynb"
    assert notebook.is_file(), f"the site offers no {notebook.relative_to(site)}"
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    shutil.copy(wheels[0], downloads)
    local = downloads / notebook.name
    shutil.copy(notebook, local)
    assert ROOT not in downloads.resolve().parents
    env = _learner_env(fresh_python.parents[2])

    start = time.perf_counter()
    done = subprocess.run([str(fresh_python), "-c", _RUN, local.name, str(TIMEOUT_S)],
                          cwd=downloads, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert done.returncode == 0, f"{name}.ipynb failed outside the repository:\n{done.stderr[-6000:]}"
    _times[name] = round(wall, 1)

    where = json.loads(subprocess.run([str(fresh_python), "-c", _WHERE], cwd=downloads, env=env,
                                      check=True, capture_output=True, text=True).stdout)
    assert Path(where["hw2"]).is_relative_to(Path(where["prefix"])), where
    assert not Path(where["hw2"]).is_relative_to(ROOT), where

    executed = json.loads(local.with_suffix(".executed.ipynb").read_text(encoding="utf-8"))
    texts = []
    for cell in executed["cells"]:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{name}: {out.get('ename')}: {out.get('evalue')}"
            for key in ("text", "data"):
                value = out.get(key)
                if isinstance(value, dict):
                    value = value.get("text/plain", "")
                texts.append("".join(value) if isinstance(value, list) else str(value or ""))
    joined = "\n".join(texts)
    assert "computed when the book is built" not in joined, f"{name}: a placeholder in an output"
    assert "has no result file" not in joined, f"{name}: an output reports a missing result file"


@pytest.fixture(scope="module", autouse=True)
def _record_times(html_dir):
    yield
    if not _times:
        return
    site = html_dir
    record = {"notebooks_seconds": _times, "python": sys.version.split()[0],
              "note": "wall time of each downloaded notebook, installed from the site's wheel "
                      "in a fresh virtual environment (tests/site/test_fresh_env.py)"}
    (site.parent / "fresh-env.json").write_text(json.dumps(record, indent=1) + "\n")
