"""The published site in a real browser: every page opens offline, without console errors or broken links,
and (marked `site`) no table is cut off at 1280 px and wide ones keep their first column in view.

The site is built once per session (tests/conftest.py), served on 127.0.0.1 by a Python http.server on a
free port, and every .html page is opened in headless Chromium driven by Playwright (pip package
`playwright`; it drives Debian's Chromium through `executable_path`, no browser download). Any request
to a host other than 127.0.0.1 fails the page (the site must work offline: no CDN), and Chromium is
started with a host-resolver rule so such a request can never leave the machine. A full-page screenshot
of every page is saved under _build/screenshots/ for review.

Needs Debian's Chromium (`apt-get install -y chromium`; CI's .ci/run installs it). Without it the test
fails on CI and is skipped, with the install command, on a developer's machine.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers import build
from helpers.paths import BUILD_DIR, SHIPPED_COHORT

from conftest import site_pages as pages

SCREENSHOTS = BUILD_DIR / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH, HEIGHT = 1280, 900
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--hide-scrollbars",
                 # every host name but 127.0.0.1 fails to resolve: a CDN request is seen, never sent
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
LOCAL_SCHEMES = ("data", "blob", "about", "chrome", "devtools")
PAGE_TIMEOUT_MS = 30_000
# Known upstream noise, matched exactly: Chromium's own favicon request (the site declares no icon),
# and pydata-sphinx-theme 0.17 logging a console.error when a first visit has no stored colour mode.
IGNORED = ("/favicon.ico", "Got invalid theme mode: . Resetting to auto")

# A table is cut off when its right edge passes the right edge of the article column and it is not
# inside a horizontally scrollable frame whose own right edge fits. Folded listings are opened first.
CUT_OFF_JS = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const article = document.querySelector('.bd-article');
  if (!article) return {article: false, measured: 0, cut: [], unpinned: [],
                        tables: document.querySelectorAll('table').length};
  const limit = article.getBoundingClientRect().right + 0.5;
  const cut = [], unpinned = [];
  let measured = 0;
  document.querySelectorAll('.bd-article table').forEach((t, i) => {
    const box = t.getBoundingClientRect();
    if (box.width === 0) return;
    measured += 1;
    if (box.right <= limit) return;
    const named = t.id || (t.closest('[id]') || {}).id || `table ${i + 1}`;
    const first = t.querySelector('tbody tr > *');
    if (!first || getComputedStyle(first).position !== 'sticky') unpinned.push(named);
    for (let el = t.parentElement; el && el !== article.parentElement; el = el.parentElement) {
      const overflow = getComputedStyle(el).overflowX;
      if ((overflow === 'auto' || overflow === 'scroll') && el.getBoundingClientRect().right <= limit) return;
    }
    cut.push(`${named}: right edge ${Math.round(box.right)} px > article ${Math.round(limit)} px`);
  });
  return {article: true, measured: measured, cut: cut, unpinned: unpinned};
}"""


# ---------------------------------------------------------------- static link checking

class Links(HTMLParser):
    """Collect the URLs a page links to or loads, and the ids it defines."""

    ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src", "source": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        url = a.get(self.ATTRS.get(tag, ""))
        if url:
            self.urls.append((tag, url))


@functools.lru_cache(maxsize=None)
def parse(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def broken_links(page: Path, site: Path) -> list[str]:
    """Relative URLs of `page` that name no file in the site, or an id missing from the target page;
    and absolute http(s) URLs that the page would load (scripts, styles, images: not plain hyperlinks)."""
    problems = []
    for tag, url in parse(page).urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") or url.startswith("//"):
            if tag != "a":
                problems.append(f"<{tag}> loads a remote resource: {url}")
            continue
        if parts.scheme:  # mailto:, data:, javascript:
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(site.resolve()) or not target.is_file():
            problems.append(f"<{tag}> {url}: no such file in the site")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parse(target).ids:
            problems.append(f"<{tag}> {url}: no id '{parts.fragment}' in {target.relative_to(site.resolve())}")
    return problems


# ---------------------------------------------------------------- fixtures

def _installed_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), *BROWSERS):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def install_chromium() -> None:
    """Install Debian's Chromium when the tests run as root on a Debian machine (the README's test command is
    the only step a fresh machine needs); elsewhere do nothing and let the message below say how."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode:
            return


def find_chromium() -> str:
    """Path of Debian's Chromium ($CHROMIUM or the first on PATH, installed with apt-get when root); fail on CI,
    skip elsewhere, saying how to install."""
    found = _installed_chromium()
    if found is None:
        install_chromium()
        found = _installed_chromium()
    if found:
        return found
    message = ("Chromium is not installed: the browser tests need it. Install Debian's with "
               "`apt-get update && apt-get install -y chromium` (CI's .ci/run does), or set CHROMIUM=/path/to/chrome.")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(shipped_site):
    handler = functools.partial(Quiet, directory=str(shipped_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1)
        context.route("**/*", lambda route: route.continue_())  # keeps every request observable, cache off
        try:
            yield context
        finally:
            context.close()
            chromium.close()


# ---------------------------------------------------------------- visiting one page

class Visit:
    """What one page did while it loaded: console errors, uncaught exceptions, requests and failures."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "assert") else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.failure}: {r.url}"))
        page.on("response", lambda r: self.failed.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def remote(self) -> list[str]:
        """Every request to anything but 127.0.0.1 (and in-page schemes like data:)."""
        return [u for u in self.requests
                if urlsplit(u).scheme not in LOCAL_SCHEMES and urlsplit(u).hostname != "127.0.0.1"]

    def problems(self) -> list[str]:
        found = [f"non-local request: {u}" for u in self.remote()] + self.errors + self.failed
        return sorted({f for f in found if not any(known in f for known in IGNORED)})


def screenshot_path(rel: str) -> Path:
    return SCREENSHOTS / (rel.replace("/", "__")[:-5] + ".png")


def visit(context, url: str, screenshot: Path | None = None):
    """Open `url`, wait for the network to be idle, save a full-page screenshot; return (page, Visit)."""
    page = context.new_page()
    seen = Visit(page)
    response = page.goto(url, wait_until="networkidle", timeout=PAGE_TIMEOUT_MS)
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return page, seen


# ---------------------------------------------------------------- tests

def test_the_site_has_every_page_of_the_table_of_contents(shipped_site):
    names = {p.relative_to(shipped_site).as_posix() for p in pages(shipped_site)}
    for page in ("index.html", "book/intro.html", "book/methods.html", "book/data_contract.html",
                 "notebooks/01_cohort.html", "notebooks/05_kinetics.html", "book/reproduction.html",
                 "book/reproducibility.html", "book/adapt.html", "book/references.html"):
        assert page in names, page


def test_every_relative_link_resolves_to_a_file_in_the_site(shipped_site):
    problems = {p.relative_to(shipped_site).as_posix(): broken_links(p, shipped_site) for p in pages(shipped_site)}
    problems = {k: v for k, v in problems.items() if v}
    assert problems == {}


@pytest.fixture(scope="module")
def visits(shipped_site, server, browser) -> dict[str, tuple[list[str], dict]]:
    """Every page opened once: its problems (console errors, failed and non-local requests) and its table
    measurements at 1280 px; a full-page screenshot of each is kept under _build/screenshots/."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    out = {}
    for path in pages(shipped_site):
        rel = path.relative_to(shipped_site).as_posix()
        page, seen = visit(browser, f"{server}/{rel}", screenshot_path(rel))
        out[rel] = (seen.problems(), page.evaluate(CUT_OFF_JS))
        page.close()
    return out


def test_every_page_opens_offline_without_console_errors(shipped_site, visits):
    """Open every page; collect console errors, failed and non-local requests; screenshot each page."""
    assert len(visits) == len(pages(shipped_site)) > 0
    assert {rel: found for rel, (found, _) in visits.items() if found} == {}
    assert len(list(SCREENSHOTS.glob("*.png"))) == len(visits)


def test_a_remote_request_is_caught(browser, tmp_path):
    """The check can fail: a page that loads a script from a CDN is reported (and the request never leaves)."""
    (tmp_path / "cdn.html").write_text('<html><body><script src="https://cdn.example.org/x.js"></script>'
                                       "</body></html>", encoding="utf-8")
    handler = functools.partial(Quiet, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        page, seen = visit(browser, f"http://127.0.0.1:{httpd.server_address[1]}/cdn.html")
        page.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen.remote() == ["https://cdn.example.org/x.js"]
    assert any("cdn.example.org" in f for f in seen.failed)


def test_maths_is_typeset_by_the_bundled_mathjax(shipped_site, server, browser):
    """A page with maths loads MathJax from the site itself and MathJax typesets it (no CDN)."""
    assert (shipped_site / "_static" / "mathjax" / "tex-chtml.js").is_file(), \
        "sphinx-mathjax-offline did not bundle MathJax"
    with_maths = [p for p in pages(shipped_site) if 'class="math' in p.read_text(encoding="utf-8")]
    assert with_maths, "no page has maths markup: the methods page should (Clopper-Pearson, geometric CV)"
    path = with_maths[0]
    scripts = [u for tag, u in parse(path).urls if tag == "script" and "mathjax" in u.lower()]
    assert scripts and all(not urlsplit(u).scheme for u in scripts), scripts
    rel = path.relative_to(shipped_site).as_posix()
    page, _ = visit(browser, f"{server}/{rel}")
    page.wait_for_selector("mjx-container", timeout=PAGE_TIMEOUT_MS)
    assert page.locator("mjx-container").count() > 0, f"MathJax typeset nothing on {rel}"
    page.close()


def test_cut_off_check_tells_a_clipped_table_from_a_scrolling_one(browser):
    """The check can fail: a wide bare table is cut off; the same table in a scrolling frame, or a narrow one, is not."""
    wide = "<table id='{id}'><tr>" + "<td>column with some text</td>" * 40 + "</tr></table>"
    html = ("<html><body><main><article class='bd-article' style='width: 700px'>"
            + wide.format(id="bare")
            + "<div style='max-width: 100%; overflow-x: auto'>" + wide.format(id="framed") + "</div>"
            + "<style>#pinned td:first-child { position: sticky; left: 0; }</style>"
            + "<div style='max-width: 100%; overflow-x: auto'>" + wide.format(id="pinned") + "</div>"
            + "<details><summary>listing</summary>" + wide.format(id="folded") + "</details>"
            + "<table id='narrow'><tr><td>fits</td></tr></table>"
            + "</article></main></body></html>")
    page = browser.new_page()
    page.set_content(html)
    found = page.evaluate(CUT_OFF_JS)
    page.close()
    assert found["article"] and found["measured"] == 5
    assert [c.split(":")[0] for c in found["cut"]] == ["bare", "folded"]
    assert found["unpinned"] == ["bare", "framed", "folded"]


@pytest.mark.site
def test_no_table_is_cut_off_at_1280_px(visits):
    """Every table fits the article column at 1280 px or scrolls in its own frame that fits."""
    unmeasured = [rel for rel, (_, m) in visits.items() if not m["article"] and m["tables"]]
    assert unmeasured == [], "pages with tables but no article column to measure them against"
    assert sum(m["measured"] for _, m in visits.values()) > 0, "no table was measured on any page"
    assert {rel: m["cut"] for rel, (_, m) in visits.items() if m["cut"]} == {}


@pytest.mark.site
def test_wide_tables_keep_their_first_column_in_view(visits):
    """A table wider than the article column scrolls with its first column kept in view (issue 11, item 3)."""
    assert {rel: m["unpinned"] for rel, (_, m) in visits.items() if m["unpinned"]} == {}


def test_rebuilding_an_unchanged_site_skips_execution_and_rendering(shipped_site):
    """The site records the hash of its inputs; the same inputs again leave it untouched."""
    recorded = (shipped_site / build.SITE_HASH_FILE).read_text(encoding="utf-8").strip()
    before = (shipped_site / "index.html").stat().st_mtime_ns
    lines: list[str] = []
    build.build(SHIPPED_COHORT, shipped_site, log=lines.append)
    assert any("execution and rendering skipped" in line for line in lines), lines
    assert (shipped_site / "index.html").stat().st_mtime_ns == before
    assert build.site_is_current(shipped_site, recorded) and not build.site_is_current(shipped_site, "0" * 64)


@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_without_chromium_the_message_says_how_to_install_it(monkeypatch, ci, outcome):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    monkeypatch.delenv("CHROMIUM", raising=False)
    with pytest.raises(outcome, match=r"apt-get install -y chromium"):
        find_chromium()
