"""Real Chromium (Debian's, through Playwright) against the local stack, split origin.

Pages come from the stack's site port (http://localhost:<site>), the API from
http://127.0.0.1:<api>, as the deployed CloudFront site and execute-api are two origins.
One stack and one browser serve the whole session; every test gets a fresh context (empty
sessionStorage) and leaves a screenshot in tests/browser/artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from tests.e2e.conftest import ROUTER, RunningStack, start_local_stack

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
INSECURE_HOST = "dashboard.insecure.test"
"""A name Chromium resolves to 127.0.0.1 (see the launch flags) but does not treat as secure."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
]

__all__ = ["ROUTER", "BrowserPage", "RunningStack"]


@dataclass
class BrowserPage:
    """A page plus everything it logged."""

    page: Page
    context: BrowserContext
    console: list[ConsoleMessage] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions, as text."""
        return [f"console.{m.type}: {m.text}" for m in self.console if m.type == "error"] + [
            f"uncaught: {e}" for e in self.page_errors
        ]


@pytest.fixture(scope="session")
def site_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One local stack (no synthetic traffic) for every browser test."""
    stack = start_local_stack(tmp_path_factory.mktemp("browser-stack") / "state")
    try:
        yield stack
    finally:
        stack.process.stop()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get update && apt-get install -y chromium")
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


def _artifact_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]


@pytest.fixture
def browser_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A fresh context and page (1440×900); a screenshot is saved when the test ends."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(15_000)
    page = context.new_page()
    handle = BrowserPage(page=page, context=context)
    page.on("console", lambda message: handle.console.append(message))
    page.on("pageerror", lambda error: handle.page_errors.append(str(error)))
    try:
        yield handle
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{_artifact_name(request)}.png"), full_page=True)
        finally:
            context.close()


def open_page(handle: BrowserPage, url: str) -> Page:
    """Open `url` and wait until the page's module script has wired everything up."""
    handle.page.goto(url)
    handle.page.wait_for_selector("body[data-ready='true']", state="attached")
    return handle.page


def connect_dashboard(page: Page, access_key_id: str, secret: str, *, api_url: str | None = None) -> None:
    """Fill the dashboard's connect bar (the API URL and region come from config.json) and connect."""
    if api_url is not None:
        page.fill("#api-url", api_url)
    page.fill("#access-key-id", access_key_id)
    page.fill("#secret-access-key", secret)
    page.fill("#poll-ms", "200")
    page.click("#connect-button")


def connect_chat(page: Page, client_key: str) -> None:
    """Fill the chat page's key, connect, and wait for the router list."""
    page.fill("#client-key", client_key)
    page.click("#connect-button")
    page.wait_for_selector("#status[data-state='live']")


def save_screenshot(page: Page, name: str, *, copy_to: Path | None = None, full_page: bool = False) -> Path:
    """Save a screenshot to the artifacts directory (and copy it to `copy_to` if given)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    if copy_to is not None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy_to)
    return path


def js_module(page: Page, module: str, body: str, arg: Any = None) -> Any:
    """Run `body` (statements using `m`, the imported page module, and `arg`; it must `return`)
    in the page. The function is built here, not with eval in the page, so the pages' CSP holds."""
    return page.evaluate(f"async (arg) => {{ const m = await import({json.dumps(module)}); {body} }}", arg)
