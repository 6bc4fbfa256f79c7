"""Debian's Chromium driven by Playwright, for the tests that look at the screen's pages."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.api.screen import ECHARTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@contextmanager
def chromium() -> Iterator[tuple[object, list[str]]]:
    """A headless browser and the list its pages' script errors go to (skips without Chromium)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make test installs it)")
    if not Path(CHROMIUM).exists() or not ECHARTS.exists():
        pytest.skip("Chromium or the ECharts build is missing (make test installs both)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        errors: list[str] = []
        try:
            yield browser, errors
        finally:
            browser.close()


def open_page(browser, errors: list[str], url: str, height: int = 1000):
    """The page under its own Content-Security-Policy: a script error or a violation of the policy (an
    inline script, a resource from elsewhere) is an error of the test."""
    page = browser.new_page(viewport={"width": 1600, "height": height})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(url)
    return page


def wait_until_true(page, expression: str, timeout_ms: float) -> None:
    """Poll a JavaScript expression until it is true. Playwright's `wait_for_function` evaluates
    inside the page, which the page's CSP rightly forbids (no eval); `evaluate` goes through the
    DevTools protocol and is not the page's own script."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"never true within {timeout_ms:.0f} ms: {expression}")
        time.sleep(0.05)


def sign_in(page, token: str) -> None:
    """A keyed page's sign-in (the queue, the workbench): a wrong key is told 401 on the page, then the
    right one is taken."""
    page.fill("#key", "not-a-key")
    page.click("#login")
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message").startswith("401")
    page.fill("#key", token)
    page.click("#login")
