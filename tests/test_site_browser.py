"""The published site in a real browser: every page opens offline, without console errors or broken links.

The site is built once (helpers.build.build into a temporary folder), served on 127.0.0.1 by a
Python http.server on a free port, and every .html page is opened in headless Chromium driven
through the DevTools protocol (websocket-client, already a pinned dependency of Jupyter). Any request
to a host other than 127.0.0.1 fails the page (the site must work offline: no CDN), and Chromium is
started with a host-resolver rule so such a request can never leave the machine. A screenshot of
every page is saved under _build/screenshots/ for review.

Needs Debian's Chromium (`apt-get install -y chromium`); without it the test fails, it does not skip.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import websocket

from helpers import build
from helpers.paths import BUILD_DIR, SHIPPED_COHORT

SCREENSHOTS = BUILD_DIR / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--window-size=1280,900",
                  # every host name but 127.0.0.1 fails to resolve: a CDN request is seen, never sent
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
LOCAL_SCHEMES = ("data", "blob", "about", "chrome", "devtools")
PAGE_TIMEOUT = 30.0
# Known upstream noise, matched exactly: Chromium's own favicon request (the site declares no icon),
# and pydata-sphinx-theme 0.17 logging a console.error when a first visit has no stored colour mode.
IGNORED = ("/favicon.ico", "Got invalid theme mode: . Resetting to auto")


# ---------------------------------------------------------------- a minimal DevTools protocol client

class DevTools:
    """One page target of Chromium over its DevTools websocket: send commands, collect events."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=PAGE_TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        """Send one command and return its result (events arriving meanwhile are kept in self.events)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, predicate, timeout: float) -> bool:
        """Read events until one satisfies predicate (True) or the timeout passes (False)."""
        if any(predicate(e) for e in self.events):
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if "method" in msg:
                self.events.append(msg)
                if predicate(msg):
                    return True
        return False

    def close(self) -> None:
        self.ws.close()


def find_chromium() -> str:
    """Path of the Chromium binary ($CHROMIUM or the first on PATH); fail loudly when there is none."""
    for name in (os.environ.get("CHROMIUM"), *BROWSERS):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail("Chromium is not installed: the browser test needs it. "
                "Install with `apt-get update && apt-get install -y chromium` (CI's .ci/run does), "
                "or set CHROMIUM=/path/to/chrome.", pytrace=False)


def start_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen, int]:
    """Launch headless Chromium with a fresh profile; return the process and its DevTools port."""
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text().splitlines()[0])
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"Chromium ({binary}) did not start (exit code {proc.poll()})", pytrace=False)


def page_websocket(port: int) -> str:
    """The websocket URL of the first page target of the browser listening on `port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
        targets = json.load(resp)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


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

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "html"
    build.build(SHIPPED_COHORT, out, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(Quiet, directory=str(site))
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
def browser(tmp_path_factory):
    binary = find_chromium()
    proc, port = start_chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    tab = DevTools(page_websocket(port))
    try:
        for domain in ("Page", "Network", "Runtime", "Log"):
            tab.send(f"{domain}.enable")
        tab.send("Page.setLifecycleEventsEnabled", enabled=True)
        tab.send("Network.setCacheDisabled", cacheDisabled=True)
        yield tab
    finally:
        tab.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------- visiting one page

def console_errors(events: list[dict]) -> list[str]:
    """Error-level console messages, browser log entries and uncaught exceptions (chromedriver's SEVERE)."""
    found = []
    for e in events:
        p = e["params"]
        if e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            found.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                  for a in p["args"]))
        elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
            found.append(f"{p['entry']['source']}: {p['entry']['text']} {p['entry'].get('url', '')}".strip())
        elif e["method"] == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            found.append("uncaught: " + d.get("exception", {}).get("description", d.get("text", "")))
    return found


def remote_requests(events: list[dict]) -> list[str]:
    """Every request the page made to anything but 127.0.0.1 (and in-page schemes like data:)."""
    urls = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    return [u for u in urls if urlsplit(u).scheme not in LOCAL_SCHEMES and urlsplit(u).hostname != "127.0.0.1"]


def failed_requests(events: list[dict]) -> list[str]:
    """Local requests answered with an HTTP error or not at all."""
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in events if e["method"] == "Network.requestWillBeSent"}
    bad = [f"HTTP {e['params']['response']['status']}: {e['params']['response']['url']}" for e in events
           if e["method"] == "Network.responseReceived" and e["params"]["response"]["status"] >= 400]
    bad += [f"{e['params']['errorText']}: {urls.get(e['params']['requestId'], '?')}" for e in events
            if e["method"] == "Network.loadingFailed" and not e["params"].get("canceled")]
    return bad


def visit(tab: DevTools, url: str, screenshot: Path) -> list[dict]:
    """Open `url`, wait for the load and network idle, save a full-page screenshot; return the page's events."""
    tab.events.clear()
    frame = tab.send("Page.navigate", url=url)
    assert "errorText" not in frame, f"{url}: {frame.get('errorText')}"
    loaded = tab.wait_for(lambda e: e["method"] == "Page.loadEventFired", PAGE_TIMEOUT)
    assert loaded, f"{url}: no load event within {PAGE_TIMEOUT} s"
    tab.wait_for(lambda e: e["method"] == "Page.lifecycleEvent" and e["params"]["name"] == "networkIdle", 10)
    height = int(min(max(tab.send("Page.getLayoutMetrics")["cssContentSize"]["height"], 900), 12000))
    # a window as tall as the page: sticky sidebars render as a reader sees them (no stitched capture)
    tab.send("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)
    shot = tab.send("Page.captureScreenshot", format="png")
    tab.send("Emulation.clearDeviceMetricsOverride")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return list(tab.events)


def pages(site: Path) -> list[Path]:
    """The site's pages: every .html file but the theme's Jinja templates copied into _static/."""
    return sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] not in ("_static", "_sources"))


# ---------------------------------------------------------------- tests

def test_the_site_has_every_page_of_the_table_of_contents(site):
    names = {p.relative_to(site).as_posix() for p in pages(site)}
    for page in ("index.html", "book/intro.html", "book/methods.html", "book/data_contract.html",
                 "notebooks/01_cohort.html", "notebooks/05_kinetics.html", "book/reproduction.html",
                 "book/reproducibility.html", "book/adapt.html", "book/references.html"):
        assert page in names, page


def test_every_relative_link_resolves_to_a_file_in_the_site(site):
    problems = {p.relative_to(site).as_posix(): broken_links(p, site) for p in pages(site)}
    problems = {k: v for k, v in problems.items() if v}
    assert problems == {}


def test_every_page_opens_offline_without_console_errors(site, server, browser):
    """Open every page; collect console errors, failed and non-local requests; screenshot each page."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    problems, opened = {}, 0
    for page in pages(site):
        rel = page.relative_to(site).as_posix()
        events = visit(browser, f"{server}/{rel}", SCREENSHOTS / (rel.replace("/", "__")[:-5] + ".png"))
        opened += 1
        found = ([f"non-local request: {u}" for u in remote_requests(events)] + console_errors(events)
                 + failed_requests(events))
        found = [f for f in found if not any(known in f for known in IGNORED)]
        if found:
            problems[rel] = sorted(set(found))
    assert opened == len(pages(site)) > 0
    assert problems == {}
    assert len(list(SCREENSHOTS.glob("*.png"))) == opened


def test_maths_is_typeset_by_the_bundled_mathjax(site, server, browser):
    """A page with maths loads MathJax from the site itself and MathJax typesets it (no CDN)."""
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "sphinx-mathjax-offline did not bundle MathJax"
    with_maths = [p for p in pages(site) if 'class="math' in p.read_text(encoding="utf-8")]
    assert with_maths, "no page has maths markup: the methods page should (Clopper-Pearson, geometric CV)"
    page = with_maths[0]
    scripts = [u for tag, u in parse(page).urls if tag == "script" and "mathjax" in u.lower()]
    assert scripts and all(not urlsplit(u).scheme for u in scripts), scripts
    rel = page.relative_to(site).as_posix()
    visit(browser, f"{server}/{rel}", SCREENSHOTS / (rel.replace("/", "__")[:-5] + ".png"))
    typeset = _count_typeset(browser)
    assert typeset > 0, f"MathJax typeset nothing on {rel}"


def _count_typeset(tab: DevTools) -> int:
    """Number of MathJax output containers in the open page (MathJax 3: mjx-container)."""
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline:
        res = tab.send("Runtime.evaluate", expression="document.querySelectorAll('mjx-container').length",
                       returnByValue=True)
        if res["result"]["value"] > 0:
            return res["result"]["value"]
        time.sleep(0.2)
    return 0


def test_rebuilding_an_unchanged_site_skips_execution_and_rendering(site):
    """The site records the hash of its inputs; the same inputs again leave it untouched."""
    recorded = (site / build.SITE_HASH_FILE).read_text(encoding="utf-8").strip()
    before = (site / "index.html").stat().st_mtime_ns
    lines: list[str] = []
    build.build(SHIPPED_COHORT, site, log=lines.append)
    assert any("execution and rendering skipped" in line for line in lines), lines
    assert (site / "index.html").stat().st_mtime_ns == before
    assert build.site_is_current(site, recorded) and not build.site_is_current(site, "0" * 64)
