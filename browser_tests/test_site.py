"""The built book in headless Chromium, offline, on every page.

Per page: no console error or uncaught exception, no request to anything but the local server,
MathJax typeset every formula without an error, every image loaded and has alt text that says
something, every same-site link and anchor resolves. On each chapter page (a page of the
sidebar's table of contents): axe-core finds no serious or critical violation, and a full-page
screenshot goes to _build/screenshots/. Besides: the search page finds a chapter by a word in
it, and a chapter opened from a file:// URL typesets its math.

Run after a build: `.venv/bin/pytest browser_tests` (see README).
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

if TYPE_CHECKING:
    from conftest import Report, Server

PAGE_TIMEOUT_MS = 30_000
SEVERE_IMPACTS = {"serious", "critical"}

# Runs in the page once it has loaded: waits for MathJax's first typesetting pass to end, then
# counts the formulas Sphinx wrote (.math) and what MathJax made of them.
MATH_STATE_JS = r"""
async () => {
  const wantsMathJax = !!document.querySelector('script[src*="mathjax"]');
  if (wantsMathJax) {
    const start = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - start > 20000) break;
      await new Promise(resolve => setTimeout(resolve, 50));
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await MathJax.startup.promise;
    }
  }
  // TeX that the Markdown parser did not recognize as math stays in the prose as "$...".
  const rawTeX = () => {
    const found = [];
    const walker = document.createTreeWalker(document.querySelector('article') || document.body,
                                             NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (/\$|\\\(|\\\[/.test(node.textContent) &&
          !node.parentElement.closest('pre, code, script, style, .math, mjx-container')) {
        found.push(node.textContent.trim().slice(0, 120));
      }
    }
    return found;
  };
  const formulas = Array.from(document.querySelectorAll('.math'));
  const sources = new Map();  // rendered formula -> its TeX, to name the formula in an error
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) sources.set(item.typesetRoot, item.math);
  }
  return {
    wantsMathJax,
    mathJaxReady: !!(window.MathJax && MathJax.startup && MathJax.startup.document),
    formulas: formulas.length,
    untypeset: formulas.filter(f => !f.querySelector('mjx-container'))
                      .map(f => f.textContent.slice(0, 80)),
    containers: document.querySelectorAll('mjx-container').length,
    rawTeX: rawTeX(),
    errors: Array.from(document.querySelectorAll('mjx-merror')).map(e =>
      `${e.getAttribute('data-mjx-error') || e.textContent} in the TeX ` +
      JSON.stringify((sources.get(e.closest('mjx-container')) || '?').slice(0, 200))),
  };
}
"""

# Loads every image (lazy ones too) and reports its size and alt text.
IMAGES_JS = """
async () => {
  const images = Array.from(document.images);
  images.forEach(image => { image.loading = 'eager'; });
  const settled = image => image.complete ? Promise.resolve() : new Promise(resolve => {
    image.addEventListener('load', resolve, {once: true});
    image.addEventListener('error', resolve, {once: true});
  });
  const timeout = new Promise(resolve => setTimeout(resolve, 15000));
  await Promise.race([Promise.all(images.map(settled)), timeout]);
  return images.map(image => ({
    src: image.getAttribute('src'),
    alt: image.getAttribute('alt'),
    naturalWidth: image.naturalWidth,
    decorative: !!image.closest('[aria-hidden="true"], [role="presentation"]'),
  }));
}
"""

LINKS_JS = """
() => Array.from(document.querySelectorAll('a[href]'))
  .map(a => ({href: a.href, raw: a.getAttribute('href')}))
"""

REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"', re.I)
FILE_NAME = re.compile(r"\.(png|jpe?g|gif|svg|webp|pdf)$|^[./]*_images/|[0-9a-f]{16,}", re.I)


def meaningful_alt(alt: str | None) -> bool:
    """Alt text that describes: a few words, not a file name or a bare word like 'image'."""
    text = (alt or "").strip()
    return len(text.split()) >= 3 and not FILE_NAME.search(text)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


class _NavLinks(HTMLParser):
    """The hrefs of the sidebar's table of contents (nav.bd-docs-nav)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 while inside the nav
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "nav" and "bd-docs-nav" in classes:
            self.depth = 1
        elif tag == "nav" and self.depth:
            self.depth += 1
        elif tag == "a" and self.depth and "internal" in classes:
            self.hrefs.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self.depth:
            self.depth -= 1


@dataclass
class Site:
    """The served site, with caches of fetched pages (status and element ids)."""

    server: Server
    statuses: dict[str, int] = field(default_factory=dict)
    anchors: dict[str, set[str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return urljoin(self.server.base_url, path)

    def fetch(self, url: str) -> int:
        url = urldefrag(url).url
        if url not in self.statuses:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    self.statuses[url] = response.status
                    if "html" in response.headers.get("Content-Type", ""):
                        parser = _Anchors()
                        parser.feed(response.read().decode("utf-8", "replace"))
                        self.anchors[url] = parser.ids
            except urllib.error.HTTPError as error:
                self.statuses[url] = error.code
        return self.statuses[url]

    def is_local(self, url: str) -> bool:
        return url.startswith(self.server.base_url)

    def chapters(self) -> list[str]:
        """Pages of the table of contents, as the reader's sidebar lists them (root page first)."""
        root = urldefrag(self.url("index.html")).url
        with urllib.request.urlopen(root, timeout=10) as response:
            root = response.url
            html = response.read().decode()
        refresh = REFRESH.search(html)
        if refresh:  # index.html redirects to the root document
            root = urljoin(root, refresh.group(1))
            with urllib.request.urlopen(root, timeout=10) as response:
                html = response.read().decode()
        parser = _NavLinks()
        parser.feed(html)
        pages = [root] + [urldefrag(urljoin(root, href)).url for href in parser.hrefs]
        relative = [page.removeprefix(self.server.base_url) for page in pages]
        return list(dict.fromkeys(relative))


@pytest.fixture(scope="session")
def site(server: Server) -> Site:
    return Site(server)


@pytest.fixture(scope="session")
def chapters(site: Site) -> list[str]:
    pages = site.chapters()
    assert len(pages) >= 2, f"the sidebar lists no chapters: {pages}"
    return pages


@dataclass
class Visit:
    """What a page did while it loaded: console errors, exceptions, blocked or failed requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def open_page(browser, url: str, allowed: Callable[[str], bool]):
    """A new page in a fresh context whose requests outside `allowed` are aborted and counted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    visit = Visit()

    def route(route) -> None:
        if allowed(route.request.url):
            route.continue_()
        else:
            visit.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and visit.console_errors.append(
        f"{m.text} (at {m.location.get('url', '?')}:{m.location.get('lineNumber', '?')})"))
    page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    page.on("response", lambda r: r.status >= 400 and visit.failed.append(f"{r.status} {r.url}"))
    page.on("requestfailed", lambda r: allowed(r.url) and visit.failed.append(
        f"{r.failure} {r.url}"))
    response = page.goto(url, wait_until="load")
    assert response is None or response.ok, f"{url}: HTTP {response.status}"
    return context, page, visit


def check_links(site: Site, links: list[dict]) -> tuple[int, list[str]]:
    problems, checked = [], 0
    for link in links:
        url, fragment = urldefrag(link["href"])
        if not site.is_local(url):
            continue  # external links are not followed: the test is offline
        checked += 1
        status = site.fetch(url)
        if status != 200:
            problems.append(f"link {link['raw']!r} -> HTTP {status}")
        elif fragment and unquote(fragment) not in site.anchors.get(url, set()):
            problems.append(f"link {link['raw']!r}: no element with id {fragment!r} on the target")
    return checked, problems


def run_axe(page) -> dict:
    from axe_playwright_python.sync_playwright import Axe

    # preload off: axe's own fetch of the style sheets mis-resolves their @import (404s)
    options = {"resultTypes": ["violations"], "preload": False}
    violations = Axe().run(page, options=options).response["violations"]
    severe = [v for v in violations if v.get("impact") in SEVERE_IMPACTS]
    return {
        "violations": len(violations),
        "serious_or_critical": len(severe),
        "rules": {
            v["id"]: {
                "impact": v.get("impact"),
                "nodes": len(v["nodes"]),
                "help": v["help"],
                "example": v["nodes"][0]["html"][:200] if v["nodes"] else "",
            }
            for v in violations
        },
    }


def screenshot_name(path: str) -> str:
    return path.removesuffix(".html").replace("/", "__") + ".png"


def test_page(
    html_dir: Path,
    page_path: str,
    browser,
    site: Site,
    chapters: list[str],
    report: Report,
    screenshot_dir: Path,
) -> None:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    url = site.url(page_path)
    redirect = REFRESH.search((html_dir / page_path).read_text(errors="replace"))
    context, page, visit = open_page(browser, url, site.is_local)
    try:
        problems: list[str] = []
        entry: dict = {"formulas": 0, "images": 0, "links": 0, "screenshots": 0}
        if redirect:  # a redirect page (index.html): the browser must arrive at its target
            target = urljoin(url, redirect.group(1))
            page.wait_for_url(target)
            page.wait_for_load_state("load")
            entry["redirects_to"] = target.removeprefix(site.server.base_url)
        else:
            lap("load")
            math = page.evaluate(MATH_STATE_JS)
            lap("math")
            images = page.evaluate(IMAGES_JS)
            lap("images")
            links = page.evaluate(LINKS_JS)
            if math["formulas"] and not math["mathJaxReady"]:
                problems.append(f"MathJax did not start ({math['formulas']} formulas on the page)")
            problems += [f"formula not typeset: {text!r}" for text in math["untypeset"]]
            problems += [f"MathJax error: {text}" for text in math["errors"]]
            problems += [f"TeX left unformatted in the text: {text!r}" for text in math["rawTeX"]]
            for image in images:
                if image["naturalWidth"] == 0:
                    problems.append(f"image did not load: {image['src']}")
                if not image["decorative"] and not meaningful_alt(image["alt"]):
                    problems.append(f"image without descriptive alt text: alt={image['alt']!r}")
            entry["links"], link_problems = check_links(site, links)
            problems += link_problems
            lap("links")
            entry.update(formulas=math["formulas"], images=len(images))

        if page_path in chapters:
            axe = run_axe(page)
            report.axe[page_path] = axe
            problems += [
                f"axe {info['impact']}: {rule} ({info['nodes']} elements; {info['help']}), "
                f"e.g. {info['example']}"
                for rule, info in axe["rules"].items()
                if info["impact"] in SEVERE_IMPACTS
            ]
            lap("axe")
            page.screenshot(path=screenshot_dir / screenshot_name(page_path), full_page=True)
            entry["screenshots"] = 1
            lap("screenshot")
        # Collected last, so that what axe and the screenshot caused counts too.
        problems[:0] = (
            [f"console error: {text}" for text in visit.console_errors]
            + [f"uncaught exception: {text}" for text in visit.page_errors]
            + [f"request to a non-local address (blocked): {u}" for u in visit.blocked]
            + [f"failed request: {text}" for text in visit.failed]
        )
        entry["seconds"] = seconds
        report.pages[page_path] = entry
        assert not problems, f"{page_path}:\n  " + "\n  ".join(problems)
    finally:
        context.close()


def test_every_chapter_is_a_page(chapters: list[str], html_dir: Path) -> None:
    """The sidebar's pages exist on disk, so the per-page test visits each of them."""
    missing = [page for page in chapters if not (html_dir / urlsplit(page).path).is_file()]
    assert not missing, f"the sidebar links to pages that were not built: {missing}"


def test_search_finds_a_chapter(
    browser, site: Site, html_dir: Path, chapters: list[str], report: Report
) -> None:
    """Sphinx's search page, given a word from a chapter's title and text, lists that chapter."""
    notebooks = [page for page in chapters if page.startswith("notebooks/")]
    chapter = (notebooks or chapters)[-1]
    context, page, visit = open_page(browser, site.url(chapter), site.is_local)
    try:
        text = page.inner_text("article")
        title = page.inner_text("article h1")
        # Of the title's words that recur in the text, the one on the fewest pages of the site.
        pages = [  # the article of each page, without the sidebar that names every chapter
            p.read_text(errors="replace").lower().partition("<article")[2]
            for p in html_dir.rglob("*.html")
        ]
        words = [w for w in re.findall(r"[A-Za-z][a-z]{4,}", title) if text.count(w) >= 2]
        assert words, f"no word of the title {title!r} recurs in {chapter}"
        word = min(words, key=lambda w: sum(w.lower() in p for p in pages))
        page.goto(site.url(f"search.html?q={word}"), wait_until="load")
        page.wait_for_function(
            "() => /found|did not match/i.test("
            "document.querySelector('#search-results .search-summary')?.textContent || '')"
        )
        found = page.eval_on_selector_all(
            "#search-results ul.search li a", "links => links.map(a => a.href)"
        )
        found = [urldefrag(u).url.removeprefix(site.server.base_url) for u in found]
        report.other["search"] = {"word": word, "chapter": chapter, "results": found}
        assert chapter in found, f"searching {word!r} did not list {chapter}; results: {found}"
        assert not (visit.console_errors or visit.page_errors or visit.blocked), visit
    finally:
        context.close()


def test_chapter_from_file_url(
    browser, html_dir: Path, chapters: list[str], report: Report
) -> None:
    """A chapter opened from disk (file://), as a reader opens a downloaded site, typesets math."""
    html_root = html_dir.as_uri() + "/"
    counts = {}
    for chapter in chapters:  # the chapter with the most formulas
        counts[chapter] = (html_dir / chapter).read_text().count('class="math')
    chapter = max(counts, key=counts.get)

    def allowed(url: str) -> bool:
        return url.startswith(html_root) or url.startswith(("data:", "blob:"))

    context, page, visit = open_page(browser, html_root + chapter, allowed)
    try:
        math = page.evaluate(MATH_STATE_JS)
        report.other["file_url"] = {"chapter": chapter, "formulas": math["formulas"]}
        assert math["mathJaxReady"], f"MathJax did not start on {chapter} from a file:// URL"
        assert math["formulas"] > 0 and not math["untypeset"] and not math["errors"], math
        assert not visit.blocked, f"requests left the machine: {visit.blocked}"
        assert not (visit.console_errors or visit.page_errors), visit
    finally:
        context.close()


def test_no_request_for_a_missing_file(server: Server, report: Report) -> None:
    """Runs last: nothing that the pages, MathJax or axe asked the server for was missing."""
    assert report.pages, "no page was visited"
    # Chromium asks any site for /favicon.ico by itself; the book has no icon and names none.
    missing = sorted(set(server.not_found) - {"/favicon.ico"})
    assert not missing, f"the server answered 404 for: {missing}"
