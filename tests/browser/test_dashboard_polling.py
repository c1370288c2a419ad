"""The dashboard as a careful user and a screen reader see it: the server's history drawn with
readable axes and legend, polling that slows down when nothing changes and stops in hidden tabs,
pick shares as text, reduced motion honoured, the local stack's credentials prefilled."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import BrowserPage, RunningStack, js_module, open_page
from tests.browser.test_dashboard import FAKE_API, _cell, _history, _router

pytestmark = pytest.mark.browser

START = 1_790_000_000


class FakeState:
    """GET /v1/state answered from `self.state` (changeable mid-test); every query string is kept."""

    def __init__(self, page: Page, origin: str, state: dict[str, Any]) -> None:
        self.state = state
        self.queries: list[dict[str, str]] = []
        self.origin = origin
        page.route(f"{FAKE_API}v1/state*", self.answer)

    def answer(self, route: Route) -> None:
        headers = {"access-control-allow-origin": self.origin, "content-type": "application/json"}
        if route.request.method == "OPTIONS":
            route.fulfill(
                status=204,
                headers={**headers, "access-control-allow-headers": "authorization,x-amz-date,x-amz-security-token"},
            )
            return
        from urllib.parse import parse_qsl, urlsplit

        self.queries.append(dict(parse_qsl(urlsplit(route.request.url).query)))
        route.fulfill(status=200, headers=headers, body=json.dumps(self.state))


def _state(history: list[dict[str, Any]], turns: int = 40) -> dict[str, Any]:
    router = _router(
        "smart-cheap-router",
        ["fast", "smart"],
        [
            _cell("general", "fast", 5, 5, 0.6, cost=0.0001),
            _cell("general", "smart", 6, 4, 0.4, cost=0.002),
            _cell("code_generation", "fast", 2, 6, 0.1, cost=0.0002),
            _cell("code_generation", "smart", 8, 2, 0.9, cost=0.004),
        ],
        history=history,
        counts={"turns": turns, "feedback": 10},
    )
    return {"generated_at": "2026-11-26T01:00:00Z", "history_step_s": 10, "routers": [router]}


def _open(
    handle: BrowserPage, stack: RunningStack, state: dict[str, Any], poll_ms: int = 200
) -> tuple[Page, FakeState]:
    page = open_page(handle, f"{stack.site_origin}/dashboard.html")
    fake = FakeState(page, stack.site_origin, state)
    page.fill("#api-url", FAKE_API)
    page.fill("#access-key-id", "AKIAFAKE")
    page.fill("#secret-access-key", "fake-secret")
    page.fill("#poll-ms", str(poll_ms))
    page.click("#connect-button")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    return page, fake


def test_the_chart_draws_the_servers_history_and_then_asks_only_for_newer_points(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    types = ["general", "code_generation"]
    page, fake = _open(browser_page, site_stack, _state(_history(types, [START, START + 10, START + 20])))
    chart = page.locator("#history-chart")
    expect(chart).to_have_attribute("data-points", "3")
    assert "history_since" not in fake.queries[0]  # the first read takes every point kept
    page.wait_for_function("() => document.body.dataset.pollDelayMs !== undefined")
    fake.state = _state(_history(types, [START + 30]), turns=41)
    expect(chart).to_have_attribute("data-points", "4")
    later = [q for q in fake.queries[1:] if "history_since" in q]
    assert later and {q["history_since"] for q in later} <= {str(START + 20), str(START + 30)}
    assert browser_page.errors() == []


def test_x_labels_never_overlap_and_the_legend_shows_values(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    types = ["general", "code_generation"]
    hour = [START + 10 * i for i in range(360)]
    page, _ = _open(browser_page, site_stack, _state(_history(types, hour, share=0.37, savings=0.42)))
    chart = page.locator("#history-chart")
    expect(chart).to_have_attribute("data-points", "360")
    for width in (1440, 900, 420):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        drawn = json.loads(chart.get_attribute("data-x-ticks") or "{}")
        ticks = drawn["ticks"]
        assert len(ticks) >= 2, drawn
        widths = page.evaluate(
            """([font, texts]) => { const c = document.createElement('canvas').getContext('2d'); c.font = font;
                 return texts.map((t) => c.measureText(t).width); }""",
            [drawn["font"], [t["text"] for t in ticks]],
        )
        labelled = list(zip(ticks, widths, strict=True))
        for tick, w in labelled:  # inside the chart: no label clipped at an edge
            assert tick["x"] - w / 2 >= 0 and tick["x"] + w / 2 <= drawn["width"], (width, tick, w, drawn["width"])
        for (a, wa), (b, wb) in itertools.pairwise(labelled):
            gap = b["x"] - a["x"] - (wa + wb) / 2
            assert gap >= 8, (width, a, b, gap)
    page.set_viewport_size({"width": 1440, "height": 900})
    # The legend names every series with its newest value, as text (never a blank "—").
    expect(chart.locator(".history-key")).to_have_text(
        ["general: 37%", "code generation: 37%", "savings ratio: 42%"], use_inner_text=True
    )


def test_polling_slows_down_while_nothing_changes_and_speeds_up_on_a_change(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page, fake = _open(browser_page, site_stack, _state(_history(["general"], [START])), poll_ms=100)
    page.wait_for_function("() => Number(document.body.dataset.pollDelayMs) >= 800", timeout=10_000)
    expect(page.locator("#status-text")).to_contain_text("every")
    calls = len(fake.queries)
    page.wait_for_timeout(700)
    assert len(fake.queries) - calls <= 2  # not every 100 ms any more
    fake.state = _state([], turns=41)
    page.wait_for_function("() => Number(document.body.dataset.pollDelayMs) === 100", timeout=10_000)


def _set_visibility(page: Page, state: str) -> None:
    page.evaluate(
        """(state) => { Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
             document.dispatchEvent(new Event('visibilitychange')); }""",
        state,
    )


def test_a_hidden_tab_does_not_poll_and_polls_at_once_when_shown(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page, fake = _open(browser_page, site_stack, _state([]), poll_ms=100)
    _set_visibility(page, "hidden")
    expect(page.locator("#status")).to_have_attribute("data-state", "paused")
    page.wait_for_timeout(200)  # a poll already in flight may still land
    calls = len(fake.queries)
    page.wait_for_timeout(1000)
    assert len(fake.queries) == calls
    _set_visibility(page, "visible")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    for _ in range(30):
        if len(fake.queries) > calls:
            break
        page.wait_for_timeout(50)
    assert len(fake.queries) > calls


def test_pick_shares_are_text_for_screen_readers(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page, _ = _open(browser_page, site_stack, _state([]))
    bar = page.get_by_role("list", name="pick share for code generation")
    expect(bar).to_have_count(1)
    expect(bar.get_by_role("listitem")).to_have_count(2)
    expect(bar.locator(".sr-only")).to_have_text(["fast: 10.0%", "smart: 90.0%"])
    assert page.locator(".share-bar[role='img']").count() == 0


def test_reduced_motion_turns_animations_off(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page, _ = _open(browser_page, site_stack, _state([]))
    dot = "getComputedStyle(document.querySelector('.status-dot')).animationName"
    slide = "getComputedStyle(document.querySelector('.share-segment')).transitionDuration"
    assert page.evaluate(dot) == "pulse"
    assert page.evaluate(slide) != "0s"
    page.emulate_media(reduced_motion="reduce")
    assert page.evaluate(dot) == "none"
    assert page.evaluate(slide) == "0s"


def test_the_local_pages_are_prefilled_with_the_local_stacks_credentials(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = open_page(browser_page, f"{site_stack.site_origin}/dashboard.html")
    expect(page.locator("#access-key-id")).to_have_value(site_stack.info.access_key_id)
    expect(page.locator("#secret-access-key")).to_have_value(site_stack.info.secret_access_key)
    page.click("#connect-button")  # nothing typed
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(page.locator("#history-chart")).not_to_have_attribute("data-points", "0")
    assert js_module(page, "./js/snapshot.js", "return typeof m.stateSignature;") == "function"

    chat = open_page(browser_page, f"{site_stack.site_origin}/chat.html")
    expect(chat.locator("#client-key")).to_have_value(site_stack.info.client_key)
    assert browser_page.errors() == []
