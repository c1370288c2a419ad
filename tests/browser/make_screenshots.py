"""README screenshots of both pages, taken from a live local stack with synthetic traffic.

    .venv/bin/python -m tests.browser.make_screenshots [--rounds 150]

Starts the local stack on free ports, opens the dashboard in Chromium, drives `tools.traffic`
while the dashboard polls (so the history chart and the activity log fill up), then has a short
conversation in the chat page with a thumbs-up. Screenshots go to tests/browser/artifacts/ and
are copied to docs/screenshots/dashboard.png and docs/screenshots/chat.png.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, connect_chat, connect_dashboard, save_screenshot
from tests.e2e.conftest import start_local_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs" / "screenshots"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.make_screenshots", description=__doc__)
    parser.add_argument("--rounds", type=int, default=150, help="synthetic sessions before the screenshot")
    parser.add_argument("--width", type=int, default=1440, help="viewport width, CSS pixels")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        stack = start_local_stack(Path(tmp) / "state")
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": args.width, "height": 900})
                dashboard = context.new_page()
                dashboard.goto(stack.info.dashboard_url)
                dashboard.wait_for_selector("body[data-ready='true']", state="attached")
                connect_dashboard(dashboard, stack.info.access_key_id, stack.info.secret_access_key)
                expect(dashboard.locator("#status")).to_have_attribute("data-state", "live")

                traffic = [
                    sys.executable,
                    "-m",
                    "tools.traffic",
                    "--api-url",
                    stack.info.api_url,
                    "--api-key",
                    stack.info.client_key,
                    "--rounds",
                    str(args.rounds),
                    # Spread over about a minute: the history chart gets a point every 10 s.
                    "--interval",
                    str(round(60 / max(1, args.rounds), 3)),
                    "--concurrency",
                    "4",
                    "--types",
                    "all",
                    "--negative-signals",
                    "--seed",
                    "7",
                    "--settle",
                    "2",
                ]
                print(f"driving {args.rounds} synthetic sessions…", flush=True)
                subprocess.run(traffic, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL, timeout=900)
                points = "() => Number(document.getElementById('history-chart').dataset.points) >= 3"
                dashboard.wait_for_function(points)
                dashboard.wait_for_timeout(1500)
                dashboard.evaluate("() => window.scrollTo(0, 0)")
                path = save_screenshot(dashboard, "dashboard.png", copy_to=DOCS / "dashboard.png", full_page=True)
                print(f"dashboard: {path} → {DOCS / 'dashboard.png'}")

                chat = context.new_page()
                chat.set_viewport_size({"width": args.width, "height": 1000})
                chat.goto(stack.info.chat_url)
                chat.wait_for_selector("body[data-ready='true']", state="attached")
                connect_chat(chat, stack.info.client_key)
                chat.click("[data-scenario='debug']")
                chat.click("#send-button")
                expect(chat.locator(".message-assistant[data-turn-id]")).to_have_count(1)
                chat.fill("#composer-input", "Thanks, that works! Can you also make it return 0.0 for an empty list?")
                chat.click("#send-button")
                expect(chat.locator(".message-assistant[data-turn-id]")).to_have_count(2)
                last = chat.locator(".message-assistant[data-turn-id]").last
                last.get_by_role("button", name="thumbs up").click()
                expect(last.locator(".outcome")).not_to_have_text("Sending…")
                chat.fill("#composer-input", "Great. Now explain why the original loop skipped the first value.")
                chat.wait_for_timeout(500)
                path = save_screenshot(chat, "chat.png", copy_to=DOCS / "chat.png")
                print(f"chat: {path} → {DOCS / 'chat.png'}")
                browser.close()
        finally:
            stack.process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
