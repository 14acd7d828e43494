"""The course site in a real browser: figures load, equations render, internal links resolve.

The site is built here with Sphinx (``-W --keep-going``, the notebooks in quick mode unless
``DEEPIMAGING_SMOKE`` says otherwise) into ``docs/_build/browser-test/``, or taken ready-built
from ``DEEPIMAGING_DOCS_HTML``. Built again, it re-reads only what changed, and the notebooks'
outputs come from the jupyter-cache that ``bash run.sh docs`` shares. A small HTTP server on
127.0.0.1 serves it, and headless Chromium opens three pages: the landing page, one notebook
and one API page. On each page every image must have decoded (``naturalWidth > 0``), every
equation must have been typeset by MathJax without a TeX error, and every internal link must
answer 200 and, where it names an anchor, land on an element with that id.

The same checks run on a deliberately broken fixture site, to show that they can fail.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "docs" / "_build" / "browser-test"

# The three pages opened, and what each must show. The notebook is 03: it has figures, the
# formulas of the metrics, and names functions that its text links to the API; the API page is
# a point-spread function whose docstring states it as an equation.
NOTEBOOK_PAGE = "notebooks/03_metrics.html"
API_PAGE = "api/generated/deepimaging.physics.gaussian_psf.html"
PAGES = {
    "landing": dict(path="index.html", min_images=0, math=False),
    "notebook": dict(path=NOTEBOOK_PAGE, min_images=3, math=True),
    "api": dict(path=API_PAGE, min_images=0, math=True),
}


# -- The site and its server ---------------------------------------------------------------------


def build_site(out: Path) -> Path:
    """Build the site with warnings as errors into ``out``; return the folder of the HTML."""
    pytest.importorskip("myst_nb", reason="the docs extra builds the site: pip install -e '.[docs]'")
    env = dict(os.environ)
    env.setdefault("DEEPIMAGING_SMOKE", "1")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-d", str(out / "doctrees"), str(REPO / "docs"), str(out / "html")]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"the site did not build:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out / "html"


@pytest.fixture(scope="module")
def site() -> Path:
    ready = os.environ.get("DEEPIMAGING_DOCS_HTML")
    html = Path(ready) if ready else build_site(BUILD)
    assert (html / "index.html").is_file(), f"no index.html in {html}"
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would drown pytest's output
        pass


@contextmanager
def serving(root: Path):
    """Serve ``root`` on 127.0.0.1 at a free port; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base_url(site):
    with serving(site) as url:
        yield url


# -- The checks ----------------------------------------------------------------------------------


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


def broken_internal_links(page, base_url: str) -> list[str]:
    """Every internal link of the page that does not answer 200 or whose anchor is missing."""
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    problems, fetched = [], {}
    for href in sorted(set(hrefs)):
        if not href.startswith(base_url):
            continue  # external: not ours to check, and unreachable offline
        target, fragment = urldefrag(href)
        if target not in fetched:
            fetched[target] = _fetch(target)
        status, text = fetched[target]
        if status != 200:
            problems.append(f"{href} answers {status}")
        elif fragment and not re.search(rf"""id=["']{re.escape(fragment)}["']""", text):
            problems.append(f"{href}: no element with id {fragment!r} on {urlparse(target).path}")
    return problems


def image_problems(page) -> tuple[int, list[str]]:
    """How many images the page has, and those that did not decode (naturalWidth 0)."""
    page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=30_000)
    images = page.evaluate(
        "Array.from(document.images).map(img => [img.currentSrc || img.src, img.naturalWidth])"
    )
    return len(images), [f"{src} did not load" for src, width in images if width == 0]


def math_problems(page, timeout_ms: int = 30_000) -> list[str]:
    """Whether MathJax typeset the page's equations, without a TeX error."""
    try:
        page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.promise"
            " && document.querySelectorAll('mjx-container').length > 0",
            timeout=timeout_ms,
        )
        page.evaluate("MathJax.startup.promise")
    except Exception as err:  # Playwright's TimeoutError: no typeset equation appeared
        return [f"no equation was typeset by MathJax ({type(err).__name__})"]
    errors = page.eval_on_selector_all("mjx-merror", "els => els.map(e => e.getAttribute('data-mjx-error'))")
    untypeset = page.evaluate(
        "Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container')).length"
    )
    problems = [f"TeX error: {message}" for message in errors]
    if untypeset:
        problems.append(f"{untypeset} equation(s) left as TeX source")
    return problems


def open_page(chromium, url: str):
    """A new page at ``url``; also returns the list of failed responses (status >= 400) it saw."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.url} answers {r.status}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    return page, failed


# -- The course site -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAGES))
def test_site_page_shows_its_figures_and_math_and_links_resolve(chromium, base_url, name):
    spec = PAGES[name]
    page, failed = open_page(chromium, urljoin(base_url, spec["path"]))
    try:
        n_images, bad_images = image_problems(page)
        problems = list(bad_images)
        if n_images < spec["min_images"]:
            problems.append(f"{n_images} images; expected at least {spec['min_images']}")
        if spec["math"]:
            problems += math_problems(page)
        problems += broken_internal_links(page, base_url)
        problems += [f for f in failed if f.startswith(base_url)]
        assert not problems, f"{spec['path']}:\n" + "\n".join(problems)
    finally:
        page.close()


def test_notebook_text_links_named_functions_to_their_api_pages(chromium, base_url):
    page, _ = open_page(chromium, urljoin(base_url, NOTEBOOK_PAGE))
    try:
        targets = page.eval_on_selector_all(
            "article a[href*='api/generated/'] code", "codes => codes.map(c => c.closest('a').href)"
        )
    finally:
        page.close()
    assert targets, "no inline name in the notebook's text links to the API reference"
    for href in targets:
        url, fragment = urldefrag(href)
        # The link goes to the entry of the object it names, on its own API page.
        assert fragment.startswith("deepimaging.") and "/api/generated/" in url, href
        status, html = _fetch(url)
        assert status == 200 and f'<dt class="sig sig-object py" id="{fragment}"' in html, href


def _public_names(module) -> list[str]:
    """A module's ``__all__``; without one, the functions and classes it defines itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__.startswith(module.__name__)
    ]


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{3,}", text)


def test_every_public_name_has_an_api_page(site):
    """Each public name of each public module has its own page, on which its docstring is rendered."""
    import deepimaging

    modules = [m.name for m in pkgutil.iter_modules(deepimaging.__path__) if not m.name.startswith("_")]
    assert {"data", "physics", "metrics", "plots"} <= set(modules)
    # Which page documents which object: the id of each entry (file names may differ, see
    # autosummary_filename_map in docs/conf.py).
    entries = {}
    for page in (site / "api" / "generated").glob("*.html"):
        html = page.read_text("utf-8")
        for full in re.findall(r'<dt class="sig sig-object py" id="([\w.]+)"', html):
            entries.setdefault(full, html)
    missing, checked = [], 0
    for short in modules:
        if short == "cli":  # parsing and printing only: its commands are on the guide pages
            continue
        module = importlib.import_module(f"deepimaging.{short}")
        for name in _public_names(module):
            full = f"deepimaging.{short}.{name}"
            html = entries.get(full)
            if html is None:
                missing.append(f"{full} (no entry)")
            elif inspect.isroutine(getattr(module, name)) or inspect.isclass(getattr(module, name)):
                # The docstring's first words appear on the page (compared as words: the page
                # has tags, entities, typographic quotes and rendered roles where the source has markup).
                doc = re.sub(
                    r":[\w:]+:(?=`)", "", inspect.getdoc(getattr(module, name)) or ""
                )  # :func:`x` -> x
                first = _words(doc)[:4]
                if not first or " ".join(first) not in " ".join(
                    _words(unescape(re.sub(r"<[^>]+>", " ", html)))
                ):
                    missing.append(f"{full} (docstring not rendered)")
            checked += 1
    assert checked > 100, f"only {checked} public names found"
    assert not missing, "missing from the API reference: " + ", ".join(missing)


def test_every_course_notebook_appears_with_outputs(site):
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) >= 9
    for notebook in notebooks:
        page = site / "notebooks" / f"{notebook.stem}.html"
        assert page.is_file(), f"{notebook.name} is not on the site"
        # MyST-NB wraps each cell's outputs in a div of class "cell_output".
        assert 'class="cell_output' in page.read_text("utf-8"), f"{notebook.name} shows no outputs"


# -- The checks can fail -------------------------------------------------------------------------

BROKEN_PAGE = """<!doctype html><html><body>
<img src="figure.png" alt="a figure that was never written">
<a href="missing.html">a page that does not exist</a>
<a href="index.html#no-such-section">an anchor that does not exist</a>
<p class="math">\\(x^2\\)</p>
</body></html>"""


def test_the_checks_catch_a_broken_image_a_404_a_missing_anchor_and_untypeset_math(chromium, tmp_path):
    (tmp_path / "index.html").write_text(BROKEN_PAGE, encoding="utf-8")
    with serving(tmp_path) as url:
        page, failed = open_page(chromium, url + "index.html")
        try:
            n_images, bad_images = image_problems(page)
            links = broken_internal_links(page, url)
            math = math_problems(page, timeout_ms=2_000)
        finally:
            page.close()
    assert n_images == 1 and len(bad_images) == 1 and "figure.png" in bad_images[0]
    assert any("missing.html answers 404" in p for p in links), links
    assert any("no element with id 'no-such-section'" in p for p in links), links
    assert math and "no equation was typeset" in math[0]
    assert any("figure.png answers 404" in f for f in failed)
