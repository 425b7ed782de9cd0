"""Fixtures of the browser test: the built site served on 127.0.0.1 and Debian's Chromium.

The test needs a built book (`jupyter-book build .`) and Chromium (`apt-get install chromium`);
it fails, rather than skips, when either is missing. Set `BOOK_HTML_DIR` to test another build
and `CHROMIUM` to use another browser binary.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML_DIR = Path(os.environ.get("BOOK_HTML_DIR", REPO / "_build" / "html")).resolve()
SCREENSHOT_DIR = HTML_DIR.parent / "screenshots"
REPORT_FILE = SCREENSHOT_DIR / "browser_test_report.json"
NOT_BUILT = "<book not built>"


def site_pages() -> list[str]:
    """Every HTML page of the build (paths relative to the site root), found on disk."""
    if not (HTML_DIR / "index.html").is_file():
        return [NOT_BUILT]
    return sorted(
        path.relative_to(HTML_DIR).as_posix()
        for path in HTML_DIR.rglob("*.html")
        if path.relative_to(HTML_DIR).parts[0] not in {"_static", "_sources", "_images"}
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "page_path" in metafunc.fixturenames:
        metafunc.parametrize("page_path", site_pages())


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML_DIR / "index.html").is_file():
        pytest.fail(
            f"The book is not built: {HTML_DIR / 'index.html'} does not exist. Build it first "
            "with `.venv/bin/jupyter-book build . -W -n --keep-going` (or set BOOK_HTML_DIR).",
            pytrace=False,
        )
    return HTML_DIR


@pytest.fixture(scope="session")
def chromium_path() -> str:
    candidates = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"]
    for name in filter(None, candidates):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is missing: the browser test drives Debian's `chromium` package "
        "(`apt-get install chromium`), or the binary named by the CHROMIUM variable.",
        pytrace=False,
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    not_found: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the test reports what matters; no access log on the terminal

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        if code == 404:
            self.not_found.append(self.path)
        super().send_error(code, message, explain)


@dataclass
class Server:
    base_url: str  # ends with "/"
    not_found: list[str]


@pytest.fixture(scope="session")
def server(html_dir: Path) -> Iterator[Server]:
    """The built site on 127.0.0.1 at a free port, served from a background thread."""
    not_found: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"not_found": not_found})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(html_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", not_found)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@dataclass
class Report:
    """What the test checked, written to _build/screenshots/browser_test_report.json."""

    started: float = field(default_factory=time.monotonic)
    pages: dict[str, dict] = field(default_factory=dict)
    axe: dict[str, dict] = field(default_factory=dict)
    other: dict[str, object] = field(default_factory=dict)

    def totals(self) -> dict[str, object]:
        def total(key: str) -> int:
            return sum(page.get(key, 0) for page in self.pages.values())

        return {
            "pages": len(self.pages),
            "formulas": total("formulas"),
            "images": total("images"),
            "links": total("links"),
            "screenshots": total("screenshots"),
            "axe_pages": len(self.axe),
            "axe_serious_or_critical": sum(a["serious_or_critical"] for a in self.axe.values()),
            "axe_all_violations": sum(a["violations"] for a in self.axe.values()),
            "seconds": round(time.monotonic() - self.started, 1),
        }


_REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    yield _REPORT
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    content = {"totals": _REPORT.totals(), "pages": _REPORT.pages, "axe": _REPORT.axe}
    content.update(_REPORT.other)
    REPORT_FILE.write_text(json.dumps(content, indent=1) + "\n")


@pytest.fixture(scope="session")
def screenshot_dir(html_dir: Path) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOT_DIR.glob("*.png"):
        old.unlink()  # no stale pictures of pages that are gone
    return SCREENSHOT_DIR


def pytest_terminal_summary(terminalreporter) -> None:
    if _REPORT.pages:
        totals = ", ".join(f"{key} {value}" for key, value in _REPORT.totals().items())
        terminalreporter.write_line(f"browser test checked: {totals}")
        terminalreporter.write_line(f"details and screenshots: {SCREENSHOT_DIR}")
