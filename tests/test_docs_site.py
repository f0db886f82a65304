"""The docs site: a strict build, its links and API pages, and a browser.

The site is built once (`mkdocs build --strict`, as `make docs` does) into a
temporary folder. Static checks read the HTML: every public name has an API
entry, every page is in the navigation, every internal link and anchor
resolves, nothing is loaded from another host, and the examples are
included verbatim, and the layers' API pages have Keras' sections. Then a
real browser (Debian's `chromium`, driven through `chromedriver` by
selenium), in one session at 1280x800, opens every page of the site from a
server on 127.0.0.1 and checks what a reader sees: no table, signature or
code block overflows without a scroll frame of its own (API signatures and
tables must fit outright), no identifier in a table breaks across lines,
every image loads, no console error, no request leaving localhost; and, on
the home, quickstart and API pages, the title, the navigation and the code
blocks.

The build does not depend on the backend, so these tests run once, in the
tensorflow session of `make test` (in every session with
KERAS_MASKNET_EVERY_SESSION=1). Without
chromium the browser test is skipped, except in CI (CI=true), where it fails:
`.ci/run` installs chromium and chromium-driver.
"""

import functools
import html
import http.server
import inspect
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
from tests.helpers import REPO
from tests.helpers import in_one_session

pytestmark = [
    pytest.mark.slow,
    in_one_session("tensorflow", "builds the docs site"),
]

#: Pages whose title, navigation and code the browser checks (it opens
#: every page): (path under the site, words the title has, and a text that
#: a code block on the page must show).
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
    "--window-size=1280,800",
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

    def documented(name: str, obj: object) -> bool:
        full = f"keras_masknet.{name}"
        if any(i == full or i.startswith(full + ".") for i in api_ids):
            return True  # the name, or a submodule's members
        if inspect.ismodule(obj) and hasattr(obj, "__all__"):
            # A submodule such as `layers`, whose names are documented at
            # the top level.
            return all(documented(n, getattr(obj, n)) for n in obj.__all__)
        return any(
            i.startswith("keras_masknet.") and i.endswith(f".{name}")
            for i in api_ids
        )

    missing = [
        name
        for name in keras_masknet.__all__
        if not documented(name, getattr(keras_masknet, name))
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


@pytest.mark.parametrize("name", ["MaskNet", "MaskBlock", "MLP"])
def test_layer_api_pages_have_keras_sections(site, name):
    """`Call arguments`, `Input shape` and `Output shape` are sections like
    `Parameters` (tools/griffe_keras_sections.py), not boxed paragraphs;
    the signature is formatted one argument a line (Ruff installed)."""
    text = (site / "api" / name.lower() / "index.html").read_text()
    titles = re.findall(r'class="doc-section-title">([^<]+)<', text)
    for title in ["Parameters:", "Call arguments:", "Input shape:"]:
        assert title in titles, titles
    assert "Output shape:" in titles, titles
    calls = text[text.index('doc-section-title">Call arguments:') :]
    table = calls[: calls.index("</table>")]
    assert table.count('class="doc-section-item"') >= 2, table
    assert "training" in _text(table)
    assert 'class="admonition' not in text
    signature = text[text.index("doc-signature") :]
    signature = _text(signature[: signature.index("</pre>")])
    assert signature.count("\n") >= 3, signature
    assert max(map(len, signature.splitlines())) <= 60, signature


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
        ("examples/keras_rs", "keras_rs_pipeline.py"),
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
    # The reader's viewport exactly (the window size includes the frame).
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )
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


#: What the browser measures on a page once it has loaded (returned by
#: `_view`): every table, signature and code block of the main content that
#: overflows horizontally without a scroll frame of its own (the element or
#: an ancestor inside the content with `overflow-x: auto` or `scroll`), or
#: whose frame sticks out of the content; an API signature or API table
#: that needs a scroll bar at all (they must fit, as on keras.io); inline
#: code in a table cell that breaks across lines (an identifier cut
#: mid-word); and every image that did not load.
VIEW_SCRIPT = r"""
const done = arguments[arguments.length - 1];
const content = document.querySelector("article.md-content__inner");
const result = {
  width: window.innerWidth, height: window.innerHeight,
  title: document.title, overflow: [], broken_images: [], h1: "",
  nav: "", nav_links: 0, code: "",
};
const nav = document.querySelector("nav.md-nav--primary");
if (nav) {
  result.nav = nav.textContent.split(/\s+/).join(" ");
  result.nav_links = nav.querySelectorAll("a.md-nav__link").length;
}
if (!content) {
  result.overflow.push("no main content (article.md-content__inner)");
  done(result);
  return;
}
const h1 = content.querySelector("h1");
if (h1 && h1.getClientRects().length) result.h1 = h1.textContent.trim();
result.code = Array.from(content.querySelectorAll("pre code"))
  .filter((c) => c.getClientRects().length)
  .map((c) => c.textContent).join("\n");
// The content column (the theme lets tables use its margins).
const box = (content.closest(".md-content") || content)
  .getBoundingClientRect();
const scrolls = (el) =>
  ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
const inside = (r) => r.left >= box.left - 1 && r.right <= box.right + 1;
// The scroll frame of `el`: the nearest element, `el` or an ancestor inside
// the content, that scrolls horizontally and fits the content column (the
// theme puts a table that scrolls itself inside a wrapper that scrolls).
const frameOf = (el) => {
  for (let a = el; a && a !== content; a = a.parentElement) {
    if (scrolls(a) && inside(a.getBoundingClientRect())) return a;
  }
  return null;
};
const name = (el) => {
  const id = el.closest("[id]");
  const text = el.textContent.trim().split(/\s+/).slice(0, 6).join(" ");
  const kind = el.classList.contains("doc-signature")
    ? "signature" : el.tagName.toLowerCase();
  return `${kind} "${text.slice(0, 60)}"` + (id ? ` (in #${id.id})` : "");
};
// API entries read like keras.io: their signatures wrap and their tables
// fit, with no scroll bar.
const mustFit = (el) => el.closest(".doc-signature") ||
  (el.tagName === "TABLE" && el.closest(".doc-contents"));
const selector = "table, pre, pre > code, .doc-signature";
for (const el of content.querySelectorAll(selector)) {
  if (!el.getClientRects().length) continue;  // not displayed
  const frame = frameOf(el);
  const r = el.getBoundingClientRect();
  if (!frame && !inside(r)) {
    result.overflow.push(
      `${name(el)} sticks out of the content: ${Math.round(r.left)} to ` +
      `${Math.round(r.right)} px, the content is ${Math.round(box.left)} ` +
      `to ${Math.round(box.right)} px`);
  } else if (!frame && el.scrollWidth > el.clientWidth + 1) {
    result.overflow.push(
      `${name(el)} overflows without a scroll frame: ${el.scrollWidth} ` +
      `px wide in ${el.clientWidth} px`);
  } else if (frame && mustFit(el)) {
    for (let a = el; a && a !== content; a = a.parentElement) {
      if (scrolls(a) && a.scrollWidth > a.clientWidth + 1) {
        result.overflow.push(
          `${name(el)} is cut at the right of its scroll frame: ` +
          `${a.scrollWidth} px wide in ${a.clientWidth} px (an API ` +
          `signature or table must fit the content)`);
        break;
      }
    }
  }
}
for (const code of content.querySelectorAll("td code, th code")) {
  if (code.getClientRects().length > 1) {
    result.overflow.push(
      `inline code "${code.textContent}" in a table breaks across lines`);
  }
}
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => {
  for (const img of images) {
    if (!(img.complete && img.naturalWidth > 0)) {
      result.broken_images.push(img.getAttribute("src"));
    }
  }
  done(result);
});
"""


def _view(driver, url: str) -> dict:
    """Open `url`; what `VIEW_SCRIPT` measures, plus the console errors and
    the URLs requested while the page loaded."""
    driver.get_log("browser")  # start each page with empty logs
    _requests(driver)
    driver.get(url)
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, f"{url} did not finish loading"
        time.sleep(0.05)
    time.sleep(0.2)  # let the theme's scripts run (table wrappers, search)
    view = driver.execute_async_script(VIEW_SCRIPT)
    view["errors"] = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] in {"SEVERE", "ERROR"}
    ]
    view["requests"] = _requests(driver)
    return view


@pytest.fixture(scope="module")
def views(browser, server, site):
    """Every page of the built site, seen once in one browser session:
    site-relative path ("" for the home page) -> `_view`'s measures."""
    seen = {}
    for page in _pages(site):
        path = page.removesuffix("index.html")
        seen[path] = _view(browser, server + path)
    return seen


def test_the_browser_sees_every_page_at_1280_by_800(views, site):
    assert len(views) == len(_pages(site)) >= 20, sorted(views)
    sizes = {(v["width"], v["height"]) for v in views.values()}
    assert sizes == {(1280, 800)}, sizes


@pytest.mark.parametrize(
    "path, title, code",
    BROWSER_PAGES,
    ids=["home", "quickstart", "api-masknet"],
)
def test_page_renders_in_a_browser(views, path, title, code):
    view = views[path]
    assert title in view["title"], view["title"]
    assert view["h1"], "no visible h1 in the content"
    assert view["nav_links"] >= 10, view["nav"]
    for entry in ["Quickstart", "User guide", "API reference", "Changelog"]:
        assert entry in view["nav"], view["nav"]
    assert code in view["code"], "the code blocks do not show " + code


def test_nothing_overflows_without_its_own_scroll_frame(views):
    """At 1280 px, every table, signature and code block of every page fits
    the content or scrolls in its own frame; identifiers in tables stay
    whole."""
    problems = [
        f"{path or 'home'}: {problem}"
        for path, view in views.items()
        for problem in view["overflow"]
    ]
    assert not problems, "\n".join(problems)


def test_every_image_loads(views):
    broken = [
        f"{path or 'home'}: {src}"
        for path, view in views.items()
        for src in view["broken_images"]
    ]
    assert not broken, "\n".join(broken)


def test_no_console_error_and_no_request_leaves_localhost(views):
    errors = [
        f"{path or 'home'}: {error}"
        for path, view in views.items()
        for error in view["errors"]
    ]
    assert not errors, "\n".join(errors)
    for path, view in views.items():
        assert view["requests"], f"{path}: no request recorded"
    leaving = [
        f"{path or 'home'}: {url}"
        for path, view in views.items()
        for url in view["requests"]
        if not _is_local(url)
    ]
    assert not leaving, "requests leaving localhost:\n" + "\n".join(leaving)


def test_the_overflow_check_can_fail(browser):
    """A clipped table, a code block without a scroll frame, a signature
    that needs a scroll bar and a broken identifier fail the check above."""
    cells = "<td>a_very_long_cell_that_does_not_fit</td>" * 8
    codes = '<td><code style="word-break:break-all">reduction_factor_base'
    codes = (codes + "</code></td>") * 3
    page = (
        '<div class="md-content" style="width:400px">'
        '<article class="md-content__inner">'
        f'<div style="overflow:hidden"><table id="clipped"><tr>{cells}'
        '</tr></table></div><pre id="long"><code style="overflow:hidden">'
        f"{'x' * 200}</code></pre>"
        '<div class="doc-signature" id="sig"><pre><code style="display:block;'
        f'overflow:auto">{"y" * 200}</code></pre></div>'
        f'<table style="width:200px"><tr>{codes}</tr></table></article></div>'
    )
    browser.get("data:text/html;charset=utf-8," + urllib.parse.quote(page))
    view = browser.execute_async_script(VIEW_SCRIPT)
    problems = "\n".join(view["overflow"])
    assert "(in #clipped) sticks out of the content" in problems, problems
    assert "(in #long) overflows without a scroll frame" in problems, problems
    assert '"reduction_factor_base" in a table breaks' in problems, problems
    assert "(in #sig) is cut at the right" in problems, problems


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
