"""The upload page in a real headless Chromium, against a real functions-framework server.

Skips when Playwright or Debian's Chromium is missing (``apt-get install chromium chromium-driver``,
``pip install playwright``; Playwright's own browser download is not needed). Screenshots go to
``$EMOTION_SCREENSHOTS`` (default ``/tmp``) so a person can look at them; they are not committed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("EMOTION_SCREENSHOTS", "/tmp"))
#: Without the background-networking flags Chromium stalls on a closed network, trying to reach Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000


@dataclass
class Watched:
    """A page plus everything it asked for and complained about, to check the page stays on its origin."""

    page: Any
    base_url: str
    requests: list[tuple[str, str]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        return [
            url
            for _, url in self.requests
            if not (url.startswith(self.base_url + "/") or url == self.base_url or url.startswith(("data:", "blob:")))
        ]

    def posts(self) -> list[str]:
        return [url for method, url in self.requests if method == "POST"]

    def unexpected_errors(self) -> list[str]:
        """Console errors other than Chromium's "Failed to load resource" notes for a deliberate error status."""
        return [e for e in self.console_errors if not e.startswith("Failed to load resource")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; skips (saying how to install them) where either is missing."""
    if importlib.util.find_spec("playwright") is None:  # the browser tests skip; the page's own checks still run
        pytest.skip("Playwright for Python is not installed (pip install playwright; no browser download needed)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver, or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Any, base_url: str, viewport: dict[str, int], **options: Any) -> Watched:
    """A fresh context on the page, recording requests and console errors (CSP violations are console errors)."""
    context = browser.new_context(viewport=viewport, accept_downloads=True, **options)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = Watched(page, base_url)
    page.on("request", lambda r: watched.requests.append((r.method, r.url)))
    page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.console_errors.append(f"uncaught: {e}"))
    response = page.goto(base_url + "/")
    assert response is not None and response.status == 200
    assert "default-src 'none'" in (response.headers.get("content-security-policy") or "")
    return watched


@pytest.fixture
def desktop(browser: Any, http_server: str) -> Iterator[Watched]:
    watched = open_page(browser, http_server, DESKTOP)
    yield watched
    watched.page.context.close()


@pytest.fixture
def phone(browser: Any, http_server: str) -> Iterator[Watched]:
    watched = open_page(browser, http_server, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    yield watched
    watched.page.context.close()


@pytest.fixture
def astronaut_file(tmp_path: Path, astronaut_jpeg: bytes) -> Path:
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(astronaut_jpeg)
    return path


def upload_and_wait(page: Any, path: Path) -> None:
    """Pick ``path`` in the file input and wait for an outcome: an error, or the "Done" announcement."""
    page.set_input_files("#file", str(path))
    page.wait_for_function(  # a function, not an expression: the page's CSP forbids eval of strings
        "() => !document.getElementById('error').hidden"
        " || document.getElementById('status-text').textContent.startsWith('Done')"
    )
    assert page.locator("#result").get_attribute("aria-busy") == "false"
    assert page.locator("#spinner").is_hidden()


def test_page_is_served_self_contained_with_csp(http_server: str) -> None:
    response = requests.get(http_server + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    # Nothing may be loaded from elsewhere: no absolute or protocol-relative src/href/url().
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", response.text)
    assert "eval(" not in response.text and "new Function" not in response.text


def test_astronaut_shows_one_happy_face(desktop: Watched, astronaut_file: Path, tmp_path: Path) -> None:
    page = desktop.page
    upload_and_wait(page, astronaut_file)

    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    assert page.locator("#dominant").inner_text().strip().lower() == "happy"
    faces = page.locator("#faces > li.face")
    assert faces.count() == 1
    rows = faces.first.locator(".bar-row")
    assert rows.count() == 7
    assert re.fullmatch(r"\d{1,3}%", rows.first.locator(".pct").inner_text())
    dominant_rows = faces.first.locator(".bar-row.dominant")
    assert dominant_rows.count() == 1 and dominant_rows.get_attribute("data-emotion") == "happy"
    assert "happy" in page.locator("#status").inner_text().lower()  # the live region announces the result
    # The annotated preview is a data: URL the CSP lets through, and it actually drew.
    preview = page.locator("#preview")
    assert preview.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert preview.evaluate("img => img.naturalWidth") > 0

    with page.expect_download() as download_info:
        page.locator("#download").click()
    download = download_info.value
    assert download.suggested_filename == "astronaut.emotions.json"
    saved = tmp_path / "result.json"
    download.save_as(saved)
    result = json.loads(saved.read_text())
    assert result["dominant_emotion"] == "happy" and len(result["faces"]) == 1

    # Clicking the face highlights its box, drawn where the result's box falls on the displayed preview.
    toggle = faces.first.locator("button.face-toggle")
    box = page.locator("#overlay .box").first
    assert toggle.get_attribute("aria-pressed") == "false" and box.get_attribute("class") == "box"
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    assert "selected" in (box.get_attribute("class") or "")
    image_rect, box_rect = preview.bounding_box(), box.bounding_box()
    assert image_rect and box_rect
    scale = image_rect["width"] / result["image"]["width"]
    face = result["faces"][0]["box"]
    assert box_rect["x"] - image_rect["x"] == pytest.approx(face["x"] * scale, abs=2)
    assert box_rect["y"] - image_rect["y"] == pytest.approx(face["y"] * scale, abs=2)
    assert box_rect["width"] == pytest.approx(face["width"] * scale, abs=2)
    assert box.evaluate("b => getComputedStyle(b).borderTopColor") != "rgba(0, 0, 0, 0)"  # visibly outlined
    page.screenshot(path=str(SCREENSHOTS / "emotion-page.png"), full_page=True)
    toggle.press("Enter")  # the keyboard toggles it off again
    assert toggle.get_attribute("aria-pressed") == "false"
    assert "selected" not in (box.get_attribute("class") or "")
    assert box.evaluate("b => getComputedStyle(b).borderTopColor") == "rgba(0, 0, 0, 0)"

    # Preview on the left, faces on the right on a wide screen.
    assert page.locator(".faces-panel").bounding_box()["x"] >= image_rect["x"] + image_rect["width"]

    assert len(desktop.posts()) == 1
    assert desktop.foreign_requests() == []
    assert desktop.console_errors == []


def test_text_file_gets_a_clear_error(desktop: Watched, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n")
    page = desktop.page
    upload_and_wait(page, text)

    error = page.locator("#error")
    assert error.is_visible()
    assert error.get_attribute("role") == "alert"
    message = error.inner_text()
    assert "not an image we can read" in message
    assert "(" in message  # the server's own explanation follows the friendly sentence
    page.screenshot(path=str(SCREENSHOTS / "emotion-page-error.png"))
    assert page.locator("#result").is_hidden()
    assert len(desktop.posts()) == 1  # the server decided, not the page
    assert desktop.foreign_requests() == []
    assert desktop.unexpected_errors() == []


def test_too_large_file_is_refused_before_upload(desktop: Watched, tmp_path: Path) -> None:
    big = tmp_path / "huge.jpg"
    with big.open("wb") as handle:  # sparse: 20 MB + 1 byte without writing them
        handle.truncate(20_000_001)
    page = desktop.page
    page.set_input_files("#file", str(big))
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "too large" in error.inner_text()
    assert desktop.posts() == []
    assert desktop.unexpected_errors() == []


def test_busy_while_waiting_then_network_failure_says_so(desktop: Watched, astronaut_file: Path) -> None:
    page = desktop.page
    held: list[Any] = []  # the POST, kept unanswered so the busy state can be looked at
    page.route("**/*", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    page.set_input_files("#file", str(astronaut_file))
    while not held:
        page.wait_for_timeout(20)
    assert page.locator("#spinner").is_visible()
    assert page.locator("#result").get_attribute("aria-busy") == "true"
    assert page.locator("#status").get_attribute("role") == "status"
    assert "Analyzing" in page.locator("#status").inner_text()

    held[0].abort()  # as if the network went away
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "Could not reach the service" in error.inner_text()
    assert page.locator("#spinner").is_hidden()
    assert page.locator("#result").is_hidden()
    assert page.locator("#result").get_attribute("aria-busy") == "false"
    assert desktop.unexpected_errors() == []


def test_phone_layout_stacks_and_fits(phone: Watched, astronaut_file: Path) -> None:
    page = phone.page
    upload_and_wait(page, astronaut_file)
    assert page.locator("#dominant").inner_text().strip().lower() == "happy"
    assert page.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth")
    photo, panel = page.locator("#preview").bounding_box(), page.locator(".faces-panel").bounding_box()
    assert photo and panel and panel["y"] >= photo["y"] + photo["height"]  # stacked, not side by side
    assert panel["x"] + panel["width"] <= PHONE["width"]
    assert page.locator("label.camera").is_visible()  # "take a photo" shows on touch screens
    assert page.locator("#camera").get_attribute("capture") is not None
    page.screenshot(path=str(SCREENSHOTS / "emotion-page-phone.png"), full_page=True)
    assert phone.foreign_requests() == []
    assert phone.console_errors == []
