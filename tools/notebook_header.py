"""Give chapters the header that makes them stand alone as notebooks.

* The front matter exactly as JupyterLab's autosave writes it through jupytext
  (kernelspec in the kernel's own order and display name; no jupytext version,
  which ``jupytext.toml`` filters out), so opening a chapter changes nothing.
* A first markdown cell defining the book's math macros (from ``_config.yml``)
  for Jupyter and Colab; the book build drops it from the page and checks it
  matches the configuration.
* Cell metadata (a figure's caption and alt text, tags) as jupytext writes it:
  the chapter is saved once as JupyterLab would save it (long YAML values
  wrapped, ``tags: [hide-input]``), so a learner's autosave changes nothing.

    python tools/notebook_header.py book/part3/experiments.md [...]

``tests/test_notebook.py`` checks every chapter of ``_toc.yml`` for both.
"""
from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
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
    new = save_as_jupyterlab_does(f"{FRONT_MATTER}\n{macros_markdown(macros)}\n\n+++\n\n{body}")
    if new != text:
        path.write_text(new)
    return new != text


def save_to(root: Path, relpath: str) -> None:
    """Open the chapter ``root/relpath`` through jupytext's contents manager, attach the
    kernel's metadata as JupyterLab does when the kernel starts, and autosave it."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupytext import AsyncTextFileContentsManager

    spec = KernelSpecManager().get_kernel_spec("python3")

    async def open_and_save():
        cm = AsyncTextFileContentsManager(root_dir=str(root))
        model = await cm.get(relpath, content=True, type="notebook")
        meta = model["content"]["metadata"]
        # JupyterLab writes the running kernel's spec (name first) and language_info.
        meta["kernelspec"] = {"name": "python3", "display_name": spec.display_name,
                              "language": spec.language}
        meta["language_info"] = {"name": "python", "version": "3.11.7",
                                 "mimetype": "text/x-python", "file_extension": ".py"}
        await cm.save(model, relpath)

    asyncio.run(open_and_save())


def save_as_jupyterlab_does(text: str) -> str:
    """The chapter ``text`` as a JupyterLab autosave would write it back."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(ROOT / "jupytext.toml", Path(tmp) / "jupytext.toml")
        (Path(tmp) / "chapter.md").write_text(text)
        save_to(Path(tmp), "chapter.md")
        return (Path(tmp) / "chapter.md").read_text()


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {'updated' if fix(Path(name)) else 'already standard'}")
