"""The site's extension on a one-page book: buttons with and without a public repository,
the notebook edition's install cell, the wheel the site serves, hidden bookkeeping.

The book itself is built once by ``make test`` (with no repository configured:
``tests/site`` checks that its pages show no button). Here a one-page book with
the book's own ``_config.yml``, extension and styles is built twice in a
temporary folder: as it is, and with ``repository.url`` set, the one place a
public repository is configured.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# One worker builds the two sites (a module fixture) for all of these tests.
pytestmark = pytest.mark.xdist_group("site_config")
ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")
REPO = "https://github.com/example-org/example-book"

PAGE = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# A page

```{code-cell} ipython3
from hw2.notebook import glue, show_glued
glue("answer", 42)
show_glued()
```

The answer is {glue:text}`answer`.
"""


def build(tmp_path: Path, repository: str) -> Path:
    """Build the one-page book with the book's configuration; ``repository`` or ''."""
    book = tmp_path / "book-src"
    (book / "book").mkdir(parents=True)
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "book" / "_static", book / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["repository"]["url"] = repository
    config["only_build_toc_files"] = True
    (book / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (book / "page.md").write_text(PAGE)
    env = {k: v for k, v in os.environ.items() if k != "HW2_REUSE_EXECUTED"}
    done = subprocess.run([str(JUPYTER_BOOK), "build", str(book), "-n", "-W",
                           "--keep-going"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return book / "_build" / "html"


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    if not JUPYTER_BOOK.is_file():
        pytest.skip("jupyter-book is not installed (pip install -e '.[dev]')")
    return {name: build(tmp_path_factory.mktemp(name), url)
            for name, url in (("unconfigured", ""), ("configured", REPO))}


def links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def test_without_a_public_repository_the_page_has_no_button_into_it(sites):
    html = (sites["unconfigured"] / "page.html").read_text()
    hrefs = links(html)
    assert not [h for h in hrefs if "mybinder" in h or "colab" in h or "github.com" in h]
    for label in ("Launch", "Binder", "Colab", "Edit this page", "Open an issue",
                  "Source repository"):
        assert label not in html, label
    # The download menu needs no repository: it stays.
    assert "_sources/page.ipynb" in html or "_sources/page.md" in html


def test_with_a_public_repository_every_button_leads_into_it(sites):
    html = (sites["configured"] / "page.html").read_text()
    hrefs = links(html)
    assert f"{REPO}" in hrefs or any(h.rstrip("/") == REPO for h in hrefs)
    assert any(h.startswith(f"{REPO}/edit/main/page.md") for h in hrefs), hrefs
    assert any(h.startswith(f"{REPO}/issues/new") for h in hrefs), hrefs
    binder = [h for h in hrefs if "mybinder.org" in h]
    assert binder and "example-org/example-book/main" in binder[0], binder
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    # Colab opens the notebook the Pages workflow publishes on the notebooks branch.
    assert colab == ["https://colab.research.google.com/github/example-org/example-book/"
                     "blob/notebooks/page.ipynb"], colab


@pytest.mark.parametrize("case", ["unconfigured", "configured"])
def test_the_downloaded_notebook_installs_hw2_first(sites, case):
    nb = json.loads((sites[case] / "_sources" / "page.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first = "".join(code[0]["source"])
    assert "hw2-install" in code[0]["metadata"]["tags"]
    assert 'importlib.util.find_spec("hw2") is None' in first
    if case == "configured":
        assert f'"git+{REPO}@main"' in first
    else:
        import hw2

        wheel = f"hw2-{hw2.__version__}-py3-none-any.whl"
        assert f'Path("{wheel}")' in first
        # ... and the site serves that wheel.
        assert (sites[case] / "_static" / wheel).is_file()
    assert max(len(line) for line in first.splitlines()) <= 88
    compile(first, "install cell", "exec")


def test_bookkeeping_output_is_kept_in_the_notebook_and_hidden_on_the_page(sites):
    html = (sites["unconfigured"] / "page.html").read_text()
    assert "Quoted in the text" not in html
    assert "The answer is 42" in re.sub(r"<[^>]+>", "", html)
    nb = json.loads((sites["unconfigured"] / "_sources" / "page.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert any("Quoted in the text" in "".join(o.get("data", {}).get("text/plain", ""))
               for o in outputs)
