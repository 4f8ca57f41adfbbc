"""A page opened from disk in Debian's headless Chromium, driven by Playwright (no browser download).

Collects what a person would see go wrong: console errors, uncaught exceptions and requests that
failed (a missing asset). Without the ``chromium`` program the caller skips, or fails under
``KSENTINEL_REQUIRE_SYSTEM_DEPS=1`` (CI).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import system_binary

#: Quiet, offline Chromium: no first-run, sync, component or QUIC traffic, no GPU, no sandbox (root in CI).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class OpenedPage:
    page: Any  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            *(f"console: {m}" for m in self.console_errors),
            *(f"uncaught: {m}" for m in self.page_errors),
            *(f"failed request: {u}" for u in self.failed_requests),
            *(f"external request: {u}" for u in self.external_requests),
        ]


@contextlib.contextmanager
def open_page(path: Path, *, width: int = 1280, height: int = 900) -> Iterator[OpenedPage]:
    """``path`` opened as ``file://`` and loaded; the page is closed with the browser on exit."""
    chromium = system_binary("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            opened = OpenedPage(page)
            page.on("console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: opened.page_errors.append(str(e)))
            page.on("requestfailed", lambda r: opened.failed_requests.append(r.url))
            page.on(
                "request",
                lambda r: opened.external_requests.append(r.url) if not r.url.startswith("file:") else None,
            )
            page.goto(path.resolve().as_uri(), wait_until="load", timeout=30_000)
            yield opened
        finally:
            browser.close()
