"""The built site, as a reader meets it: every page opened in headless Chromium.

For every page of the table of contents (and the search page) this checks
that the page loads (HTTP 200); that the browser reports no console error, no
uncaught exception and no failed request (nothing is filtered: the site must
not need the network, so MathJax and fonts are served with it); that MathJax
rendered every formula (each ``.math`` element holds an ``mjx-container``, and
there is no ``mjx-merror`` or red undefined-macro text); that every image has
pixels (non-zero ``naturalWidth``) and is not one uniform colour (drawn into a
canvas and read back: a blank white or fully transparent figure fails), and
every figure holds an image; and that every
same-origin link resolves (HTTP 200, and a ``#fragment`` names an id on the
target page). Every notebook page offers its ``.ipynb`` for download; the
buttons into the book's repository (edit, issues, repository, Binder, Colab)
appear on every page when ``_config.yml`` names a public repository, and none
does until it names one. Every listing's caption names the file under ``hw2/``
(or of the repository) that holds its code, and no page contains a path of
the machine that built it, or a "Quoted in the text" bookkeeping block (the
notebooks keep those). Every image
of the text (figures and diagrams) has real alt text: words, not a file name.
Exercises and their solutions (``sphinx-exercise``) render: each exercise is
titled "Exercise <chapter>.<n>" and has a solution that names it, every
solution is collapsed, and a click on its toggle button opens it. A full-page
screenshot of each page goes to ``_build/screenshots``.

Each page is opened again as a phone shows it (390 px wide): the page must not
scroll sideways as a whole, a figure wider than the screen must scroll in its
own box, and every figure's smallest text (the size each PNG records, see
``hw2._figures``) must be shown no smaller than the page's small print.
Finally the search page must find "backpropagation".

Run after the book build::

    .venv/bin/python -m pytest tests/site/test_site.py          # _build/html
    HW2_SITE_DIR=/tmp/out/_build/html .venv/bin/python -m pytest tests/site/test_site.py

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$HW2_CHROMIUM``) and the
``playwright`` Python package (no ``playwright install``: the system browser is used).
"""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

CHROMIUM = os.environ.get("HW2_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 60_000
SEARCH_TERM = "backpropagation"
ROOT = Path(__file__).resolve().parents[2]
#: How hw2.notebook.Glued's output starts: kept in the notebooks, not on the page.
GLUED_HEADING = "Quoted in the text:"


@pytest.fixture(scope="session")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing): "
                    "`apt-get install chromium`, or set HW2_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class _Page:
    """A browser tab that records every error the page produces."""

    def __init__(self, browser, base_url: str, width: int = 1280, height: int = 900):
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.tab = self.context.new_page()
        self.tab.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.tab.on("console", self._on_console)
        self.tab.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        self.tab.on("requestfailed", lambda req: self.errors.append(
            f"request failed: {req.url} ({req.failure})"))
        self.tab.on("response", self._on_response)

    def _on_console(self, msg):
        if msg.type in ("error", "assert"):
            self.errors.append(f"console {msg.type}: {msg.text} [{msg.location.get('url', '')}]")

    def _on_response(self, resp):
        if resp.status >= 400:
            self.errors.append(f"HTTP {resp.status}: {resp.url}")

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser, site_url):
    page = _Page(browser, site_url)
    yield page
    page.close()


#: A phone's viewport (CSS pixels): an iPhone 12 to 15.
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, site_url):
    page = _Page(browser, site_url, **PHONE)
    yield page
    page.close()


# --- internal links -------------------------------------------------------------------

class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value)


_fetched: dict[str, tuple[int, set[str] | None]] = {}


def _fetch(url: str) -> tuple[int, set[str] | None]:
    """HTTP status of a same-origin URL (query kept) and, for HTML, the ids on it."""
    if url not in _fetched:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                status, body = resp.status, resp.read()
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, body, ctype = err.code, b"", ""
        ids = None
        if status == 200 and "html" in ctype:
            parser = _Anchors()
            parser.feed(body.decode("utf-8", "replace"))
            ids = parser.ids
        _fetched[url] = (status, ids)
    return _fetched[url]


def _broken_links(hrefs: list[str], base_url: str) -> list[str]:
    broken = []
    origin = urllib.parse.urlsplit(base_url).netloc
    for href in sorted(set(hrefs)):
        parts = urllib.parse.urlsplit(href)
        if parts.scheme not in ("http", "https") or parts.netloc != origin:
            continue
        target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        status, ids = _fetch(target)
        if status != 200:
            broken.append(f"{href}: HTTP {status}")
        elif parts.fragment and ids is not None:
            fragment = urllib.parse.unquote(parts.fragment)
            if fragment not in ids:
                broken.append(f"{href}: no element with id '{fragment}' on {parts.path}")
    return broken


# --- the checks -------------------------------------------------------------------------

_MATH_REPORT = r"""
async () => {
  const maths = Array.from(document.querySelectorAll('.math'));
  const out = {count: maths.length, loaded: false, unrendered: [], errors: [], undefined: []};
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    out.loaded = true;
  }
  if (!maths.length && !out.loaded) return out;
  const snippet = el => (el.getAttribute('data-latex') || el.textContent || '').trim().slice(0, 120);
  for (const el of maths) {
    if (!el.querySelector('mjx-container')) out.unrendered.push(snippet(el));
  }
  // MathJax's own view of each formula (its MathML): a TeX error is an merror node; an
  // undefined macro (noundefined extension) is red text with no merror. The DOM cannot
  // tell: CHTML draws characters with CSS, so its text is empty.
  const viaMathML = out.loaded && MathJax.startup.document && MathJax.startup.toMML;
  if (viaMathML) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      const tex = String(item.math).trim().slice(0, 120);
      for (const m of mml.matchAll(/<merror(?:[^>]*data-mjx-error="([^"]*)")?/g))
        out.errors.push((m[1] || 'merror') + ' in: ' + tex);
      const red = mml.match(/<mtext[^>]*mathcolor="red"[^>]*>\\[^<]*<\/mtext>/g);
      if (red) out.undefined.push(red.map(m => m.replace(/<[^>]+>/g, '')).join(' ') + ' in: ' + tex);
    }
  }
  // Whatever MathJax reports, no error node may be left in the page.
  const domErrors = document.querySelectorAll('mjx-merror').length;
  if (domErrors && !out.errors.length)
    out.errors.push(domErrors + ' mjx-merror element(s) in the page');
  return out;
}
"""

# Every image of the page loaded (lazy ones made eager), as `imgs`: the start of the
# reports that measure images.
_LOAD_IMAGES = r"""
  const imgs = Array.from(document.querySelectorAll('img'));
  for (const img of imgs) img.loading = 'eager';
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(res => {
    img.addEventListener('load', res, {once: true});
    img.addEventListener('error', res, {once: true});
    setTimeout(res, 30000);
  })));
"""

_IMAGE_REPORT = r"""
async () => {
  /* LOAD_IMAGES */
  const src = img => img.getAttribute('src') || '(no src)';
  const empty = imgs.filter(img => !(img.naturalWidth > 0)).map(src);
  // An image that loaded can still be blank (a white PNG from a figure saved before
  // anything was drawn): draw each one into a canvas and compare every pixel (RGBA)
  // with the first. Nothing is skipped: the decorative images of the theme (the
  // Binder and Colab logos of the launch buttons) have more than one colour too.
  // Same-origin images leave the canvas readable; a cross-origin one would make
  // getImageData throw, which is reported (the site must not load remote images).
  const MAX_SIDE = 2048;   // larger images are scaled down; a plot keeps its lines
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const uniform = [], unreadable = [];
  for (const img of imgs) {
    if (!(img.naturalWidth > 0 && img.naturalHeight > 0)) continue;
    const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
    const w = Math.max(1, Math.round(img.naturalWidth * scale));
    const h = Math.max(1, Math.round(img.naturalHeight * scale));
    canvas.width = w;
    canvas.height = h;   // resizing also clears the canvas to transparent black
    ctx.drawImage(img, 0, 0, w, h);
    let px;
    try {
      px = new Uint32Array(ctx.getImageData(0, 0, w, h).data.buffer);
    } catch (err) {
      unreadable.push(`${src(img)} (${err.name}: ${err.message})`);
      continue;
    }
    const first = px[0];
    if (px.every(v => v === first)) {
      const [r, g, b, a] = new Uint8Array(new Uint32Array([first]).buffer);
      uniform.push(`${src(img)} (${w}x${h}, every pixel rgba(${r},${g},${b},${a}))`);
    }
  }
  // The images of the text (figures, diagrams, plots) describe themselves in words: an
  // alt text of at least three words that is not a file name or path.
  const looksLikeFile = alt => /\.(png|svg|jpe?g|gif|webp)$/i.test(alt) || /^[^\s]*[\/\\][^\s]*$/.test(alt);
  const badAlt = Array.from(document.querySelectorAll('article img, .bd-article img'))
    .map(img => [src(img), (img.getAttribute('alt') || '').trim()])
    .filter(([, alt]) => alt.split(/\s+/).filter(Boolean).length < 3 || looksLikeFile(alt))
    .map(([s, alt]) => `${s} (alt=${JSON.stringify(alt)})`);
  const figures = Array.from(document.querySelectorAll('figure, div.figure'));
  const bare = figures.filter(f => !f.querySelector('img, svg, canvas, object, video'))
                      .map(f => f.id || (f.textContent || '').trim().slice(0, 80));
  return {images: imgs.length, empty, uniform, unreadable, figures: figures.length, bare, badAlt};
}
""".replace("  /* LOAD_IMAGES */\n", _LOAD_IMAGES.lstrip("\n"))


# Anything wider than its box scrolls sideways (or is cut off): every display
# equation, code block and listing must fit the text column at the suite's
# 1280-px viewport. The element that would scroll is measured (scrollWidth
# against clientWidth, one pixel of rounding allowed).
_OVERFLOW_REPORT = """
() => {
  const selectors = ['div.math', 'mjx-container[display="true"]', 'div.highlight pre',
                     'div.cell_output pre', 'table', 'div.pst-scrollable-table-container'];
  const out = [];
  const seen = new Set();
  for (const el of document.querySelectorAll(selectors.join(', '))) {
    if (seen.has(el)) continue;
    seen.add(el);
    if (el.scrollWidth > el.clientWidth + 1) {
      const what = el.matches('div.math, mjx-container') ? 'equation'
                 : el.matches('table, div.pst-scrollable-table-container') ? 'table' : 'code block';
      const text = (el.getAttribute('data-latex') || el.textContent || '').trim()
                     .replace(/\\s+/g, ' ').slice(0, 70);
      out.push(`${what} ${el.scrollWidth}px wide in a ${el.clientWidth}px box: ${text}`);
    }
  }
  // The page itself must not scroll sideways either.
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1)
    out.push(`the page is ${doc.scrollWidth}px wide in a ${doc.clientWidth}px window`);
  return out;
}
"""


# Exercises and solutions (sphinx-exercise): numbered per chapter, each with a
# solution that links to it, no directive left as text, and every solution
# collapsed (sphinx-togglebutton's `dropdown`) until its button is clicked.
_EXERCISE_REPORT = r"""
() => {
  const title = el => {
    const t = el.querySelector(':scope > .admonition-title');
    return t ? t.textContent.replace(/\s+/g, ' ').trim() : '';
  };
  const body = el => Array.from(el.children).filter(c => !c.matches('.admonition-title'))
                          .map(c => c.textContent).join(' ').trim();
  const exercises = Array.from(document.querySelectorAll('div.exercise'));
  const solutions = Array.from(document.querySelectorAll('div.solution'));
  const problems = [];
  const solved = new Set();
  for (const s of solutions) {
    const t = title(s);
    const link = s.querySelector(':scope > .admonition-title a[href^="#"]');
    const target = link ? decodeURIComponent(link.getAttribute('href').slice(1)) : '';
    if (!/^Solution to Exercise \d+\.\d+/.test(t))
      problems.push(`solution ${s.id}: title ${JSON.stringify(t)} names no numbered exercise`);
    if (!target || !document.getElementById(target) ||
        !document.getElementById(target).matches('div.exercise'))
      problems.push(`solution ${s.id}: does not link to an exercise on this page`);
    solved.add(target);
    if (!body(s)) problems.push(`solution ${s.id}: empty`);
    if (!s.classList.contains('dropdown'))
      problems.push(`solution ${s.id}: not collapsed (add :class: dropdown)`);
  }
  for (const e of exercises) {
    const t = title(e);
    if (!/^Exercise \d+\.\d+/.test(t))
      problems.push(`exercise ${e.id}: title ${JSON.stringify(t)} is not "Exercise <chapter>.<n>"`);
    if (body(e).length < 20) problems.push(`exercise ${e.id}: no text`);
    if (!solved.has(e.id)) problems.push(`exercise ${e.id}: no solution on this page`);
  }
  const article = document.querySelector('article, .bd-article');
  const raw = (article ? article.innerText : '').match(/\{(exercise|solution)(-start|-end)?\}/);
  if (raw) problems.push(`directive left as text: ${raw[0]}`);
  return {exercises: exercises.length, solutions: solutions.length, problems};
}
"""


def _exercise_problems(tab) -> list[str]:
    """Exercises render, and each solution is hidden until its toggle button is clicked."""
    report = tab.tab.evaluate(_EXERCISE_REPORT)
    problems = [f"exercises: {p}" for p in report["problems"]]
    solutions = tab.tab.locator("div.solution")
    for i in range(solutions.count()):
        solution = solutions.nth(i)
        name = solution.get_attribute("id")
        content = solution.locator(":scope > :not(.admonition-title)").first
        if content.count() == 0:
            continue   # reported as empty above
        if content.is_visible():
            problems.append(f"exercises: solution {name} is shown before a click")
            continue
        button = solution.locator(":scope > .admonition-title button.toggle-button")
        if button.count() != 1:
            problems.append(f"exercises: solution {name} has no toggle button")
            continue
        button.click()
        try:
            content.wait_for(state="visible", timeout=5_000)
        except Exception:   # playwright's TimeoutError
            problems.append(f"exercises: solution {name} stays hidden after a click")
    return problems


# The one place the book's public repository is configured (book/_ext/hw2_site/buttons.py
# reads the same key): until it names one, no page may offer a button into it.
def _configured_repository() -> str | None:
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from hw2_site.buttons import NOT_A_REPOSITORY

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = str((config.get("repository") or {}).get("url") or "").rstrip("/")
    return None if url in NOT_A_REPOSITORY else url


_REPOSITORY_LINKS = {
    "an 'edit this page' link": lambda h, repo: h.startswith(repo + "/edit/"),
    "an issues link": lambda h, repo: h.startswith(repo + "/issues"),
    "a repository link": lambda h, repo: h.rstrip("/") == repo,
}
_LAUNCH_LINKS = {
    "a Binder launch link": lambda h, repo: "mybinder.org/v2/gh/" in h
    and urllib.parse.urlsplit(repo).path.strip("/") in h,
    "a Colab launch link": lambda h, repo: "colab.research.google.com/github/" in h
    and h.endswith(".ipynb") and urllib.parse.urlsplit(repo).path.strip("/") in h,
}
# What a button into a missing repository would be: any link to a launcher or to an
# edit, issues or repository page on GitHub's sites.
_BUTTON_HOSTS = ("mybinder.org", "colab.research.google.com", "github.com", "gitlab.com")


def _button_problems(page: str, hrefs: list[str], header_hrefs: list[str],
                     is_notebook: bool, repository: str | None) -> list[str]:
    """Every notebook can be downloaded; the repository's buttons (edit, issues,
    repository, Binder, Colab) all appear when one is configured and none does
    until then."""
    if page == "search.html":
        return []
    problems = []
    stem = page.removesuffix(".html")
    if is_notebook and not any(h.endswith(f"_sources/{stem}.ipynb") for h in hrefs):
        problems.append("missing a download link to the notebook (.ipynb)")
    if repository is None:
        for h in header_hrefs:
            if urllib.parse.urlsplit(h).hostname in _BUTTON_HOSTS:
                problems.append(f"a button into a repository that is not configured: {h}")
        for h in hrefs:
            host = urllib.parse.urlsplit(h).hostname or ""
            if host.endswith(("mybinder.org", "colab.research.google.com")) or "/edit/" in h:
                problems.append(f"a launch or edit link with no repository configured: {h}")
        return problems
    wanted = dict(_REPOSITORY_LINKS)
    if is_notebook:
        wanted.update(_LAUNCH_LINKS)
    problems += [f"missing {what}" for what, found in wanted.items()
                 if not any(found(h, repository) for h in hrefs)]
    return problems


# A listing's caption names where its code lives: `name` in `hw2/...`, lines a–b for
# package code, a file of the repository (tools/...) for a file; never a path of the
# build machine (a decorator unwrapped wrongly names torch's file in the venv).
_CAPTION = re.compile(r"(?:(?P<name>\S+) in )?(?P<path>\S+), lines \d+–\d+")


def _caption_problems(captions: list[str]) -> list[str]:
    problems = []
    for text in captions:
        text = " ".join(text.split())
        m = _CAPTION.fullmatch(text)
        if not m:
            problems.append(f"listing caption names no file and lines: {text!r}")
            continue
        path = m["path"]
        if path.startswith(("/", "~")) or ".venv" in path or "site-packages" in path:
            problems.append(f"listing caption names a path of the build machine: {text!r}")
        elif not (ROOT / path).is_file():
            problems.append(f"listing caption names no file of the repository: {text!r}")
        elif m["name"] and not path.startswith("hw2/"):
            problems.append(f"listing of package code captioned with a file outside hw2/: "
                            f"{text!r}")
    return problems


def _machine_paths(html_file: Path) -> list[str]:
    """Paths of the machine that built the book, anywhere in a page's HTML."""
    text = html_file.read_text(encoding="utf-8")
    marks = {str(ROOT), sys.prefix, "site-packages", ".venv/lib"}
    home = str(Path.home())
    if home not in ("/", ""):
        marks.add(home + "/")
    found = []
    for mark in sorted(marks):
        at = text.find(mark)
        if at >= 0:
            found.append(f"a path of the build machine ({mark!r}) in the page: "
                         f"...{text[max(0, at - 60):at + len(mark) + 40]!r}...")
    return found


def _screenshot_name(page: str) -> str:
    return page.replace("/", "__").removesuffix(".html") + ".png"


def test_page(tab, page, site_url, html_dir, screenshots_dir):
    url = urllib.parse.urljoin(site_url, page)
    response = tab.tab.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{page}: HTTP {response and response.status}"

    math = tab.tab.evaluate(_MATH_REPORT)
    images = tab.tab.evaluate(_IMAGE_REPORT)
    overflow = tab.tab.evaluate(_OVERFLOW_REPORT)
    tab.tab.wait_for_load_state("networkidle")
    hrefs = tab.tab.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    header_hrefs = tab.tab.eval_on_selector_all(
        ".article-header-buttons a[href], .header-article-items a[href]",
        "els => els.map(a => a.href)")
    captions = tab.tab.eval_on_selector_all(
        "div.code-block-caption span.caption-text", "els => els.map(e => e.textContent)")
    tab.tab.screenshot(path=str(screenshots_dir / _screenshot_name(page)), full_page=True)

    problems = list(tab.errors)
    if math["count"] and not math["loaded"]:
        problems.append(f"{math['count']} formulas but MathJax did not start")
    problems += [f"formula not rendered by MathJax: {s!r}" for s in math["unrendered"]]
    problems += [f"MathJax error: {s}" for s in math["errors"]]
    problems += [f"undefined TeX macro: {s}" for s in math["undefined"]]
    problems += [f"image without pixels: {s}" for s in images["empty"]]
    problems += [f"image of a single colour (blank): {s}" for s in images["uniform"]]
    problems += [f"image that cannot be read back (not same-origin?): {s}" for s in images["unreadable"]]
    problems += [f"figure without an image: {s!r}" for s in images["bare"]]
    problems += [f"image without alt text in words: {s}" for s in images["badAlt"]]
    problems += [f"overflows the column at 1280 px: {s}" for s in overflow]
    problems += [f"broken link: {s}" for s in _broken_links(hrefs, site_url)]
    problems += _button_problems(page, hrefs, header_hrefs,
                                 tab.tab.locator("div.cell").count() > 0, _configured_repository())
    problems += _caption_problems(captions)
    problems += _machine_paths(html_dir / page)
    glued = tab.tab.eval_on_selector_all(
        "pre", "(els, head) => els.filter(e => e.textContent.trim().startsWith(head)).length",
        GLUED_HEADING)
    if glued:
        problems.append(f"bookkeeping output on the page: {glued} {GLUED_HEADING!r} block(s)")
    problems += _exercise_problems(tab)
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


# --- on a phone ---------------------------------------------------------------------------

_PHONE_REPORT = r"""
async () => {
  // Open every collapsed solution and hidden input: their figures count too.
  for (const b of document.querySelectorAll('button.toggle-button')) {
    if (!b.closest('.toggle-shown, .expanded')) b.click();
  }
  for (const d of document.querySelectorAll('details')) d.open = true;
  /* LOAD_IMAGES */
  await new Promise(res => setTimeout(res, 300));   // toggles animate open
  const article = document.querySelector('article.bd-article, article, .bd-article')
                  || document.querySelector('main') || document.body;
  const small = document.createElement('small');
  small.textContent = 'small print';
  article.appendChild(small);
  const smallPx = parseFloat(getComputedStyle(small).fontSize);
  small.remove();
  const scrolls = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return a;
    }
    return null;
  };
  const images = Array.from(article.querySelectorAll('img'))
    .filter(img => img.naturalWidth > 0)
    .map(img => {
      const box = scrolls(img);
      const shown = img.getBoundingClientRect().width;
      const room = (box || article).clientWidth;
      return {src: img.currentSrc || img.src, natural: img.naturalWidth, shown,
              visible: img.offsetParent !== null, inScrollBox: !!box, room};
    });
  const doc = document.documentElement;
  const out = {smallPx, images, page: doc.scrollWidth, window: doc.clientWidth, culprits: []};
  if (doc.scrollWidth > doc.clientWidth + 1) {
    // What sticks out of the window without a box of its own that scrolls.
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width && r.right > doc.clientWidth + 1 && !scrolls(el) &&
          getComputedStyle(el).position !== 'fixed') {
        const name = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
          ? '.' + el.className.trim().split(/\s+/).join('.') : '');
        out.culprits.push(`${name} (${Math.round(r.right)}px): ` +
                          (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60));
        if (out.culprits.length >= 4) break;
      }
    }
  }
  return out;
}
""".replace("  /* LOAD_IMAGES */\n", _LOAD_IMAGES.lstrip("\n"))


def _image_text_px(url: str, site_url: str, html_dir: Path) -> float | None | str:
    """The smallest text of a site image, in its own pixels, from its hw2 label;
    None for an image with no text, a message for one with no label."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from hw2._figures import TEXT_SIZE_KEY

    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    base = urllib.parse.urlsplit(site_url).path
    file = html_dir / path[len(base):]
    with Image.open(file) as image:
        label = getattr(image, "text", {}).get(TEXT_SIZE_KEY)
    if label is None:
        return (f"{file.name} carries no text-size label ({TEXT_SIZE_KEY}): a figure "
                "not drawn in a kernel that imported hw2.notebook")
    return None if label == "none" else float(label)


def test_page_on_a_phone(phone, page, site_url, html_dir, screenshots_dir):
    url = urllib.parse.urljoin(site_url, page)
    response = phone.tab.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{page}: HTTP {response and response.status}"
    report = phone.tab.evaluate(_PHONE_REPORT)
    phone.tab.screenshot(path=str(screenshots_dir / ("phone__" + _screenshot_name(page))),
                         full_page=True)
    width = PHONE["width"]
    problems = []
    if report["page"] > report["window"] + 1:
        problems.append(f"the page is {report['page']}px wide in a {report['window']}px window "
                        f"(scrolls sideways as a whole); sticking out: " + "; ".join(report["culprits"]))
    small = report["smallPx"]
    for img in report["images"]:
        name = img["src"].rsplit("/", 1)[-1]
        if not img["visible"]:
            problems.append(f"{name}: hidden even with every toggle open")
            continue
        if img["shown"] > img["room"] + 1 and not img["inScrollBox"]:
            problems.append(f"{name}: {img['shown']:.0f}px wide in {img['room']}px and no box "
                            "that scrolls (cut off)")
        text = _image_text_px(img["src"], site_url, html_dir)
        if isinstance(text, str):
            problems.append(text)
        elif text is not None:
            shown = text * img["shown"] / img["natural"]
            if shown < small - 0.25:
                problems.append(
                    f"{name}: smallest text shown at {shown:.1f}px, smaller than the page's small "
                    f"print ({small:.1f}px) at {width}px (image {img['natural']}px shown at "
                    f"{img['shown']:.0f}px)")
    problems += phone.errors
    assert not problems, f"{page} at {width}px:\n  " + "\n  ".join(problems)


def test_search_finds_backpropagation(tab, site_url):
    url = urllib.parse.urljoin(site_url, f"search.html?q={SEARCH_TERM}")
    response = tab.tab.goto(url, wait_until="load")
    assert response is not None and response.status == 200
    # Sphinx's searchtools fills #search-results and then writes a summary line.
    tab.tab.wait_for_selector("#search-results p.search-summary", timeout=TIMEOUT_MS)
    hits = tab.tab.eval_on_selector_all(
        "#search-results ul.search li a", "els => els.map(a => a.textContent.trim())")
    assert hits, f"search for {SEARCH_TERM!r} found nothing"
    assert not tab.errors, "\n".join(tab.errors)


# --- the notebook edition ---------------------------------------------------------------
#
# A learner's copy of a chapter is its executed notebook: the one nbval executed
# in a fresh kernel (tools/check_chapters.py writes it to _build/executed, and the
# book renders those outputs), and the one the page offers for download
# (_sources/<page>.ipynb, what Colab and a laptop open). Each must show every
# figure of the page as an image output, and the download must read as plain
# Markdown: no MyST role or directive that Jupyter would show raw.

_RAW_MYST = re.compile(r"\{(glue(:\w+)?|numref|ref|eq|cite(:\w+)?|doc)\}`|^(:{3,}|`{3,})\{[\w:-]+\}"
                       r"|^\([\w:.-]+\)=\s*$", re.M)
_EXERCISE_HEAD = re.compile(r"^\*\*Exercise \d+\.\d+\*\*", re.M)


def _image_outputs(nb: dict) -> int:
    return sum(1 for cell in nb.get("cells", []) for out in cell.get("outputs", [])
               if any(k.startswith("image/") for k in out.get("data", {})))


def _page_counts(html_path: Path) -> tuple[int, int]:
    """Figures and exercises on a page."""
    class Counts(html.parser.HTMLParser):
        figures = exercises = 0

        def handle_starttag(self, tag, attrs):
            classes = (dict(attrs).get("class") or "").split()
            if tag == "figure" or (tag == "div" and "figure" in classes):
                self.figures += 1
            if tag == "div" and "exercise" in classes:
                self.exercises += 1

    parser = Counts()
    parser.feed(html_path.read_text(encoding="utf-8"))
    return parser.figures, parser.exercises


@pytest.fixture(scope="session")
def executed_dir(pytestconfig, html_dir) -> Path:
    value = os.environ.get("HW2_EXECUTED_DIR")
    return Path(value).resolve() if value else html_dir.parent / "executed"


def test_notebook_edition(notebook_pages, html_dir, executed_dir):
    import json

    pages = notebook_pages
    assert pages, "no chapter notebooks in the table of contents"
    problems = []
    for name in pages:
        figures, exercises = _page_counts(html_dir / f"{name}.html")
        download = html_dir / "_sources" / f"{name}.ipynb"
        executed = executed_dir / f"{name}.ipynb"
        for what, path in (("executed in a fresh kernel by nbval", executed),
                           ("offered for download", download)):
            if not path.is_file():
                problems.append(f"{name}: no notebook {what} ({path})")
                continue
            nb = json.loads(path.read_text(encoding="utf-8"))
            images = _image_outputs(nb)
            if images < figures:
                problems.append(f"{name}: the page has {figures} figures, the notebook {what} "
                                f"only {images} image outputs")
        if download.is_file():
            nb = json.loads(download.read_text(encoding="utf-8"))
            heads = sum(len(_EXERCISE_HEAD.findall("".join(c["source"])))
                        for c in nb["cells"] if c["cell_type"] == "markdown")
            if heads != exercises:
                problems.append(f"{name}.ipynb (download): {heads} exercises headed "
                                f"'**Exercise N.M**', the page has {exercises}")
            for i, cell in enumerate(nb["cells"]):
                tags = cell["metadata"].get("tags", [])
                if "hw2-solution" in tags and not cell["metadata"].get("jupyter", {}).get(
                        "source_hidden"):
                    problems.append(f"{name}.ipynb (download), cell {i}: a solution's cell "
                                    "is not collapsed")
                if cell["cell_type"] != "markdown":
                    continue
                source = "".join(cell["source"])
                raw = _RAW_MYST.search(source)
                if raw:
                    problems.append(f"{name}.ipynb (download), cell {i}: MyST left raw: "
                                    f"{source[max(0, raw.start() - 30): raw.end() + 30]!r}")
            first = "".join(nb["cells"][0]["source"]) if nb["cells"] else ""
            if "\\newcommand" not in first:
                problems.append(f"{name}.ipynb (download): the first cell does not define the "
                                "book's math macros")
    assert not problems, "\n  ".join(["notebook edition:"] + problems)


# --- the answers' numbers outside a built book ------------------------------------------
#
# hw2/answer_values.json is what a checkout without _build/ (and the wheel) shows in the
# answers; the build rewrites it, so it is compared as committed (git's HEAD) with what
# this build computed. Names and text must be the same. Numbers may differ by what
# another CPU gives the chapters' small trainings (a quarter of the value, or two
# points), and a timing on the build machine only has to be there.
ANSWER_TIMINGS = {("book/part3/questions.ipynb", "q1_speedup")}


def _committed_answer_values() -> dict:
    import json
    import subprocess

    path = "hw2/answer_values.json"
    try:
        text = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        if (ROOT / ".git").exists():
            pytest.fail(f"{path} is not committed ({err}): build the book and commit it")
        text = (ROOT / path).read_text(encoding="utf-8")   # a checkout without git
    return json.loads(text)


def test_the_committed_answer_values_are_this_builds(html_dir):
    import math

    sys.path.insert(0, str(ROOT))
    from hw2 import answers

    answers._built_glue.cache_clear()
    built = answers.built_values()
    committed = _committed_answer_values()
    problems = []
    for nb in sorted(set(built) | set(committed)):
        mine, theirs = built.get(nb, {}), committed.get(nb, {})
        for name in sorted(set(mine) | set(theirs)):
            if name not in theirs:
                problems.append(f"{nb}::{name}: quoted by an answer, not in the committed file")
            elif name not in mine:
                problems.append(f"{nb}::{name}: in the committed file, quoted by no answer")
            elif (nb, name) in ANSWER_TIMINGS:
                continue
            elif isinstance(mine[name], (int, float)) and not isinstance(mine[name], bool) \
                    and isinstance(theirs[name], (int, float)):
                if not math.isclose(mine[name], theirs[name], rel_tol=0.25, abs_tol=2.0):
                    problems.append(f"{nb}::{name}: built {mine[name]!r}, committed {theirs[name]!r}")
            elif mine[name] != theirs[name]:
                problems.append(f"{nb}::{name}: built {mine[name]!r}, committed {theirs[name]!r}")
    assert not problems, ("hw2/answer_values.json is stale (the build rewrote it: commit it):\n  "
                          + "\n  ".join(problems))
