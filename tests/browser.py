"""Render a page in headless Chromium as a person would see it (report and serve tests).

Playwright drives the system Chromium (Debian's ``chromium``, installed by ``scripts/setup.sh test``;
``EARMARK_CHROMIUM`` points elsewhere). Screenshots are kept under ``tests/artifacts/`` (git-ignored)
so a person can look at what the test saw.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
# Chromium's background services try to reach Google; on a closed network they only add noise.
_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The Chromium executable; skips the test only outside CI when there is none (CI must have it)."""
    path = os.environ.get("EARMARK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        message = "no chromium found: `scripts/setup.sh test` installs Debian's chromium, or set EARMARK_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Page:
    """A loaded page plus what its console and network reported."""

    def __init__(self, page, console_errors: list[str], failed_requests: list[str]):
        self.page = page
        self.console_errors = console_errors
        self.failed_requests = failed_requests

    def screenshot(self, name: str) -> Path:
        """Full-page screenshot kept as ``tests/artifacts/<name>.png``."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def open_page(url: str, *, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """Open ``url`` (``http://...`` or ``file://...``) in headless Chromium and wait until it has loaded."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            failed: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(url, wait_until="load")
            yield Page(page, errors, failed)
        finally:
            browser.close()
