"""The docs site: a strict build, its links and API pages, and a browser.

The site is built once (`mkdocs build --strict`, as `make docs` does) into a
temporary folder. Static checks read the HTML: every public name has an API
entry, every page is in the navigation, every internal link and anchor
resolves, nothing is loaded from another host, and the examples are
included verbatim. Then a real browser (Debian's `chromium`, driven through
`chromedriver` by selenium) opens the home, quickstart and API pages from a
server on 127.0.0.1 and checks what a reader sees: the title, the
navigation, the code blocks, no console error and no request leaving
localhost.

The build does not depend on the backend, so these tests run once, in the
tensorflow session of `make test` (or wherever KERAS_MASKNET_DOCS=1). Without
chromium the browser test is skipped, except in CI (CI=true), where it fails:
`.ci/run` installs chromium and chromium-driver.
"""

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

import keras_masknet
from tests.helpers import BACKEND
from tests.helpers import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKEND != "tensorflow" and os.environ.get("KERAS_MASKNET_DOCS") != "1",
        reason="builds the docs once: runs in the tensorflow session",
    ),
]

#: Pages the browser opens: (path under the site, words the title has, and
#: a text that a code block on the page must show).
BROWSER_PAGES = [
    ("", "keras-masknet", "keras_masknet.MaskNet("),
    ("quickstart/", "Quickstart", "def build_model("),
    ("api/masknet/", "MaskNet", "keras_masknet.MaskNet("),
]
#: Chromium flags that work in a container without a display or network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    # Any host name fails to resolve: a request that tries to leave
    # localhost cannot succeed (and is reported below).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built strictly into a temporary folder; the build time."""
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"]
        + ["--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    log = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, log
    assert "WARNING" not in result.stderr, log
    print(f"mkdocs build --strict: {seconds:.1f} s")
    return out


def _pages(site) -> dict[str, str]:
    """Site-relative path of every HTML page -> its text."""
    return {
        str(path.relative_to(site)): path.read_text()
        for path in sorted(site.rglob("*.html"))
    }


def _text(page_html: str) -> str:
    """The visible text of some HTML, tags removed and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


def _code_text(page_html: str) -> str:
    """The text of every code block of a page, joined."""
    blocks = re.findall(r"<pre[^>]*>(.*?)</pre>", page_html, re.S)
    return "\n".join(_text(block) for block in blocks)


def _ids(page_html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', page_html))


def test_strict_build_makes_every_page(site):
    pages = _pages(site)
    for page in [
        "index.html",
        "quickstart/index.html",
        "migrating/index.html",
        "guide/options/index.html",
        "examples/ctr/index.html",
        "api/masknet/index.html",
        "changelog/index.html",
        "compatibility/index.html",
    ]:
        assert page in pages, sorted(pages)
    assert (site / "assets" / "masknet.svg").is_file()


def test_every_public_name_has_an_api_entry(site):
    api_ids = set()
    for path, text in _pages(site).items():
        if path.startswith("api/"):
            api_ids |= _ids(text)
    missing = [
        name
        for name in keras_masknet.__all__
        if not any(
            i == f"keras_masknet.{name}"
            or (i.startswith("keras_masknet.") and i.endswith(f".{name}"))
            for i in api_ids
        )
    ]
    assert not missing, (
        f"public names without an API entry (add `::: keras_masknet.NAME` "
        f"to a page under docs/api/): {missing}"
    )


@pytest.mark.parametrize("name", ["MaskNet", "MaskBlock", "MLP"])
def test_layer_api_pages_show_signature_and_example(site, name):
    text = (site / "api" / name.lower() / "index.html").read_text()
    assert f'id="keras_masknet.{name}"' in text
    assert "doc-signature" in text  # the rendered signature
    signature = _text(text)
    assert "output_size" in signature or "layer_sizes" in signature
    assert f"keras_masknet.{name}(" in _code_text(text)  # the example


def test_every_page_is_in_the_navigation(site):
    pages = [
        p
        for p in _pages(site)
        if p.endswith("index.html") and not p.startswith("search")
    ]
    home = (site / "index.html").read_text()
    nav = home[home.index('class="md-nav md-nav--primary"') :]
    links = {
        os.path.normpath(urllib.parse.unquote(href))
        for href in re.findall(
            r'class="md-nav__link[^"]*"\s+href="([^"#]*)"', nav
        )
        + re.findall(r'href="([^"#]*)"\s+class="md-nav__link', nav)
    }
    in_nav = {
        os.path.normpath(os.path.join(link, "index.html")) for link in links
    }
    in_nav.add("index.html")
    missing = sorted(set(pages) - in_nav)
    assert not missing, f"pages not reachable from the navigation: {missing}"


def test_internal_links_and_anchors_resolve(site):
    pages = _pages(site)
    ids = {path: _ids(text) for path, text in pages.items()}
    broken = []
    for path, text in pages.items():
        if path == "404.html":
            continue  # its links are relative to wherever it is served
        base = os.path.dirname(path)
        refs = re.findall(r'\s(?:href|src)="([^"]+)"', text)
        for ref in refs:
            parsed = urllib.parse.urlsplit(html.unescape(ref))
            if parsed.scheme or ref.startswith(("mailto:", "data:")):
                continue
            target = os.path.normpath(
                os.path.join(base, urllib.parse.unquote(parsed.path))
            )
            if not parsed.path:
                target = path
            elif (site / target).is_dir():
                target = os.path.join(target, "index.html")
            if not (site / target).is_file():
                broken.append(f"{path}: {ref} (no file {target})")
                continue
            anchor = urllib.parse.unquote(parsed.fragment)
            if anchor and target in ids and anchor not in ids[target]:
                broken.append(f"{path}: {ref} (no anchor #{anchor})")
    assert not broken, "\n".join(broken)


def test_nothing_is_loaded_from_another_host(site):
    remote = []
    for path in site.rglob("*"):
        if path.suffix not in {".html", ".css", ".js"}:
            continue
        text = path.read_text(errors="replace")
        if "fonts.googleapis" in text or "fonts.gstatic" in text:
            remote.append(f"{path.relative_to(site)}: Google Fonts")
        if path.suffix == ".html":
            for tag in re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", text):
                if re.search(r'\s(?:src|href)="(?:https?:)?//', tag) and not (
                    tag.startswith("<link") and "stylesheet" not in tag
                ):
                    remote.append(f"{path.relative_to(site)}: {tag}")
    assert not remote, "\n".join(remote)


@pytest.mark.parametrize(
    "page, script",
    [
        ("quickstart", "quickstart.py"),
        ("examples/ctr", "ctr_end_to_end.py"),
        ("examples/migrate", "migrate_from_reference.py"),
    ],
)
def test_examples_are_included_verbatim(site, page, script):
    code = _code_text((site / page / "index.html").read_text())
    source = (REPO / "examples" / script).read_text()
    missing = [
        line
        for line in source.splitlines()
        if line.strip() and line.rstrip() not in code
    ]
    assert not missing, f"lines of {script} not on {page}: {missing[:5]}"


# The browser ---------------------------------------------------------------


def _browser_or_skip():
    """selenium's webdriver module, or a skip (a failure in CI)."""
    problems = []
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            problems.append(f"`{program}` is not on PATH")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
        problems.append("selenium is not installed")
    if problems:
        message = (
            "The browser test needs Debian's chromium and chromium-driver "
            "and selenium (requirements-docs.txt): "
            + "; ".join(problems)
            + ". Install them with `apt-get install chromium "
            "chromium-driver` (as root; .ci/run does this in CI)."
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return webdriver


@pytest.fixture(scope="module")
def server(site):
    """The built site, served on 127.0.0.1 on a free port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path_factory.mktemp("chromium-profile")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    service = Service(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    """URLs the page requested since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _is_local(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in {"data", "blob", "about", "chrome", "devtools"}:
        return True
    return parsed.hostname in {h.strip("[]") for h in LOCAL_HOSTS}


@pytest.mark.parametrize(
    "path, title, code",
    BROWSER_PAGES,
    ids=["home", "quickstart", "api-masknet"],
)
def test_page_renders_in_a_browser(browser, server, path, title, code):
    from selenium.webdriver.common.by import By

    browser.get_log("browser")  # start each page with empty logs
    _requests(browser)
    browser.get(server + path)
    deadline = time.monotonic() + 30
    while browser.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, "the page did not finish loading"
        time.sleep(0.1)
    time.sleep(0.5)  # let scripts run (search worker, etc.)

    assert title in browser.title, browser.title
    h1 = browser.find_element(By.CSS_SELECTOR, "article h1")
    assert h1.is_displayed() and h1.text.strip()
    nav = browser.find_element(By.CSS_SELECTOR, "nav.md-nav--primary")
    links = nav.find_elements(By.CSS_SELECTOR, "a.md-nav__link")
    assert len(links) >= 10, [a.get_attribute("href") for a in links]
    nav_text = " ".join(nav.get_attribute("textContent").split())
    for entry in ["Quickstart", "User guide", "API reference", "Changelog"]:
        assert entry in nav_text, nav_text
    blocks = browser.find_elements(By.CSS_SELECTOR, "article pre code")
    assert blocks, "no code block"
    assert blocks[0].is_displayed()
    shown = "\n".join(b.get_attribute("textContent") for b in blocks)
    assert code in shown

    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] in {"SEVERE", "ERROR"}
    ]
    assert not errors, errors
    urls = _requests(browser)
    assert urls, "no request recorded: the performance log is not working"
    leaving = [url for url in urls if not _is_local(url)]
    assert not leaving, f"requests leaving localhost: {leaving}"


def test_home_page_shows_the_architecture_diagram(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server)
    image = browser.find_element(By.CSS_SELECTOR, 'article img[src$=".svg"]')
    loaded = browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image
    )
    assert loaded and loaded > 100, loaded
    screenshots = os.environ.get("KERAS_MASKNET_SCREENSHOTS")
    if screenshots:
        os.makedirs(screenshots, exist_ok=True)
        browser.save_screenshot(os.path.join(screenshots, "home.png"))


def test_is_local_refuses_other_hosts():
    """The check above can fail: it tells local URLs from remote ones."""
    assert _is_local("http://127.0.0.1:8000/assets/x.js")
    assert _is_local("data:image/svg+xml;base64,AAAA")
    assert not _is_local("https://fonts.googleapis.com/css?family=Roboto")
    assert not _is_local("https://unpkg.com/mermaid/dist/mermaid.min.js")
