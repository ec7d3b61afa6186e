"""A real browser on the page of a real server: Debian's chromium driven by Playwright.

Playwright is pointed at the system's browser (`executable_path`), so nothing is
downloaded when the tests run (no `playwright install`). Screenshots go to
`test-artifacts/web/` (gitignored), or to `COREL_WEB_ARTIFACTS`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("COREL_WEB_ARTIFACTS", REPO / "test-artifacts" / "web"))

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file() or shutil.which("chromium") is None,
    reason="needs Debian's chromium (bash scripts/dev.sh test installs it)",
)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh profile (user data dir) per module: no state from any earlier run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@contextlib.contextmanager
def opened_page(browser_context: Any, url: str, init_script: str | None = None) -> Iterator[Any]:
    """A new tab on the page at `url`, ready (`init_script` runs before the page's own); on
    leaving, it closes and any script error the page raised fails the test."""
    page = browser_context.new_page()
    if init_script is not None:
        page.add_init_script(init_script)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    page.close()
    assert errors == [], errors  # no script error on the way
