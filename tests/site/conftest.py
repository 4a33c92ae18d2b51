"""Fixtures for the site suites (run after the book build, not with the unit tests).

Where things are:

* the built HTML: ``--html-dir`` or ``$HW2_SITE_DIR``, default ``_build/html``;
* the table of contents that lists the pages: ``--toc`` or ``$HW2_SITE_TOC``,
  default ``_toc.yml`` (use the one the book was built with);
* screenshots: ``--screenshots-dir`` or ``$HW2_SCREENSHOTS_DIR``, default
  ``screenshots/`` beside the HTML folder (``_build/screenshots``).
"""
from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from check_chapters import toc_files  # noqa: E402  (one reader of _toc.yml for all checks)


def pytest_ignore_collect(collection_path, config):
    """The site suites need a built book and run in their own step, after the build:
    `pytest tests` (the unit suites) leaves them out; name tests/site (or a file in
    it) on the command line to run them."""
    here = Path(__file__).resolve().parent
    path = Path(collection_path).resolve()
    if path.parent != here or not path.name.startswith("test_"):
        return None
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        target = (base / arg.split("::")[0]).resolve()
        if target == here or here in target.parents:
            return None
    return True


def pytest_addoption(parser):
    group = parser.getgroup("hw2 site")
    group.addoption("--html-dir", default=None, help="built book HTML (default $HW2_SITE_DIR or _build/html)")
    group.addoption("--toc", default=None, help="_toc.yml the book was built from (default $HW2_SITE_TOC or _toc.yml)")
    group.addoption("--screenshots-dir", default=None,
                    help="where page screenshots go (default $HW2_SCREENSHOTS_DIR or <html-dir>/../screenshots)")


def _opt(config, name: str, env: str, default: Path) -> Path:
    try:
        value = config.getoption(name)
    except ValueError:  # option not registered (conftest loaded late)
        value = None
    value = value or os.environ.get(env)
    return Path(value).resolve() if value else default


def toc_path(config) -> Path:
    return _opt(config, "--toc", "HW2_SITE_TOC", ROOT / "_toc.yml")


def toc_docnames(config) -> list[str]:
    """Docnames (``book/part1/layers``) of every page in the table of contents."""
    toc = yaml.safe_load(toc_path(config).read_text())
    names = []
    for entry in toc_files(toc):
        name = entry
        for suffix in (".md", ".ipynb", ".rst"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        names.append(name)
    return names


def pytest_generate_tests(metafunc):
    # `page`: every page of the table of contents, then the search page.
    if "page" in metafunc.fixturenames:
        pages = [f"{name}.html" for name in toc_docnames(metafunc.config)] + ["search.html"]
        metafunc.parametrize("page", pages)


@pytest.fixture(scope="session")
def html_dir(pytestconfig) -> Path:
    path = _opt(pytestconfig, "--html-dir", "HW2_SITE_DIR", ROOT / "_build" / "html")
    if not (path / "index.html").is_file():
        pytest.fail(f"no built book at {path} (index.html missing): run the book build first "
                    "(`make build-book`), or point --html-dir / HW2_SITE_DIR at the HTML folder")
    return path


@pytest.fixture(scope="session")
def screenshots_dir(pytestconfig, html_dir) -> Path:
    path = _opt(pytestconfig, "--screenshots-dir", "HW2_SCREENSHOTS_DIR", html_dir.parent / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.png"):  # screenshots of pages that no longer exist
        old.unlink()
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@pytest.fixture(scope="session")
def site_url(html_dir):
    """Serve the HTML on 127.0.0.1 (a free port) for the session; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def notebook_pages(pytestconfig) -> list[str]:
    """Docnames of the pages of the table of contents that are notebooks (a MyST
    chapter with a kernelspec in its front matter)."""
    names = []
    for name in toc_docnames(pytestconfig):
        src = ROOT / f"{name}.md"
        if src.is_file():
            head = src.read_text(encoding="utf-8").split("\n---", 1)[0]
            if "kernelspec:" in head:
                names.append(name)
    return names
