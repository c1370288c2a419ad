"""The dashboard in Chromium: SigV4 in the browser, bars, feedback, hints, and its contract with /v1/state."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import (
    INSECURE_HOST,
    ROUTER,
    BrowserPage,
    RunningStack,
    connect_dashboard,
    js_module,
    open_page,
)
from tools.corpus import PROMPTS, opening_messages
from tools.local_stack.launcher import free_port

pytestmark = pytest.mark.browser


def _dashboard(handle: BrowserPage, stack: RunningStack) -> Page:
    return open_page(handle, f"{stack.site_origin}/dashboard.html")


def _routed_turn(stack: RunningStack, request_type: str, seed: int) -> dict[str, str]:
    """One routed turn whose conversation passes the signal gate; returns the router's headers."""
    rng = random.Random(seed)
    with stack.client() as client:
        response = client.post(
            "v1/chat/completions",
            json={"model": ROUTER, "messages": opening_messages(rng.choice(PROMPTS[request_type]), rng)},
        )
    assert response.status_code == 200, response.text
    return {
        "turn_id": response.headers["x-router-turn-id"],
        "model": response.headers["x-router-model"],
        "request_type": response.headers["x-router-request-type"],
    }


def _row(page: Page, request_type: str, model: str) -> Any:
    return page.locator(f".cell-row[data-type='{request_type}'][data-model='{model}']")


def test_the_dashboard_connects_with_the_printed_credentials_and_draws_every_cell(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _dashboard(browser_page, site_stack)
    # config.json prefills where the API is; only the credentials are typed.
    expect(page.locator("#api-url")).to_have_value(site_stack.info.api_url)
    expect(page.locator("#region")).to_have_value(site_stack.info.region)

    connect_dashboard(page, site_stack.info.access_key_id, site_stack.info.secret_access_key)

    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    state = site_stack.router_state()
    expect(page.locator(".cell-row")).to_have_count(len(state["cells"]))
    expect(page.locator(".type-group h3")).to_have_text([t.replace("_", " ") for t in state["request_types"]])
    for cell in state["cells"]:
        row = _row(page, cell["request_type"], cell["model"])
        assert float(row.get_attribute("data-pick-share") or "nan") == pytest.approx(cell["pick_share"], abs=0.05)
        expect(row.locator(".model-name")).to_have_text(cell["model"])
    # Exactly one leader per request type, and it is the model with the largest server pick share.
    for request_type in state["request_types"]:
        cells = [c for c in state["cells"] if c["request_type"] == request_type]
        leaders = page.locator(f".cell-row[data-type='{request_type}'][data-leader='true']")
        expect(leaders).to_have_count(1)
        shown = leaders.get_attribute("data-model")
        best_share = max(c["pick_share"] for c in cells)
        assert next(c for c in cells if c["model"] == shown)["pick_share"] >= best_share - 0.05
    assert browser_page.errors() == []


def test_a_bar_moves_and_the_activity_log_shows_the_signal_after_feedback(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _dashboard(browser_page, site_stack)
    connect_dashboard(page, site_stack.info.access_key_id, site_stack.info.secret_access_key)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    turn = _routed_turn(site_stack, "code_generation", seed=11)
    row = _row(page, turn["request_type"], turn["model"])
    expect(row).to_have_count(1)
    alpha_before = float(row.get_attribute("data-alpha") or "nan")
    mean_width_before = row.locator(".bar-mean").evaluate("node => node.style.width")

    with site_stack.client() as client:
        rated = client.post("v1/feedback", json={"turn_id": turn["turn_id"], "rating": "up"})
    assert rated.status_code == 200, rated.text

    expect(row).not_to_have_attribute("data-alpha", str(alpha_before))
    assert float(row.get_attribute("data-alpha") or "nan") == pytest.approx(alpha_before + 1.0, abs=0.01)
    expect(row.locator(".bar-mean")).not_to_have_attribute("style", f"width: {mean_width_before};")
    item = page.locator(f".activity-item[data-turn-id='{turn['turn_id']}']")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("👍")
    expect(item).to_contain_text("explicit")
    expect(item).to_contain_text(turn["model"])
    expect(item.locator(".activity-delta")).to_have_text("Δα +1 · Δβ 0")
    # Later polls (every 200 ms) return the same event again: it stays one line.
    page.wait_for_timeout(600)
    expect(item).to_have_count(1)
    assert browser_page.errors() == []


def test_wrong_credentials_show_the_iam_hint_and_stop_polling(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _dashboard(browser_page, site_stack)
    connect_dashboard(page, site_stack.info.access_key_id, "not-the-secret-" + "x" * 25)

    hint = page.locator("#hint")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("HTTP 403")
    expect(hint).to_contain_text("not an IAM identity allowed to invoke GET /v1/state")
    expect(hint).to_contain_text("execute-api:Invoke permission on StateRouteArn")
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(page.locator("#board")).to_be_hidden()
    # The form is open again so the credentials can be corrected.
    expect(page.locator("#secret-access-key")).to_be_visible()


def test_an_unreachable_api_shows_the_network_and_cors_hint(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _dashboard(browser_page, site_stack)
    connect_dashboard(
        page,
        site_stack.info.access_key_id,
        site_stack.info.secret_access_key,
        api_url=f"http://127.0.0.1:{free_port()}/",
    )

    hint = page.locator("#hint")
    expect(hint).to_contain_text("network or CORS error")
    expect(hint).to_contain_text(site_stack.site_origin)
    expect(hint).to_contain_text("ExtraCorsOrigin")
    expect(page.locator("#status-text")).to_have_text("Unreachable — retrying")


def test_a_url_without_the_state_route_shows_the_404_hint(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _dashboard(browser_page, site_stack)
    # The site's own origin answers 404 for /v1/state, like a wrong API URL would.
    connect_dashboard(
        page, site_stack.info.access_key_id, site_stack.info.secret_access_key, api_url=f"{site_stack.site_origin}/"
    )

    expect(page.locator("#hint")).to_contain_text("HTTP 404")
    expect(page.locator("#hint")).to_contain_text("Check the API URL (the stack output ApiUrl")
    expect(page.locator("#status-text")).to_have_text("HTTP 404")


def test_a_page_outside_a_secure_context_explains_why_it_cannot_sign(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = open_page(browser_page, f"http://{INSECURE_HOST}:{site_stack.site_port}/dashboard.html")

    assert page.evaluate("window.isSecureContext") is False
    expect(page.locator("#hint")).to_contain_text("crypto.subtle")
    expect(page.locator("#hint")).to_contain_text("https")
    expect(page.locator("#connect-button")).to_be_disabled()


def test_credentials_live_in_session_storage_only(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _dashboard(browser_page, site_stack)
    connect_dashboard(page, site_stack.info.access_key_id, site_stack.info.secret_access_key)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")

    stored = page.evaluate("JSON.stringify(Object.entries(sessionStorage))")
    assert site_stack.info.secret_access_key in stored
    assert page.evaluate("localStorage.length") == 0
    assert site_stack.info.secret_access_key not in page.url
    # A reload in the same tab reconnects from sessionStorage; Disconnect forgets the secret.
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    page.click("#disconnect-button")
    expect(page.locator("#status")).to_have_attribute("data-state", "off")
    assert site_stack.info.secret_access_key not in page.evaluate("JSON.stringify(Object.entries(sessionStorage))")


def test_pause_stops_polling_and_resume_restarts_it(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _dashboard(browser_page, site_stack)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/state" in r.url and r.method == "GET" else None)
    connect_dashboard(page, site_stack.info.access_key_id, site_stack.info.secret_access_key)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")

    page.click("#pause-button")
    expect(page.locator("#status")).to_have_attribute("data-state", "paused")
    page.wait_for_timeout(250)  # a poll already in flight may still land
    paused_at = len(requests)
    page.wait_for_timeout(700)  # three poll intervals
    assert len(requests) == paused_at

    page.click("#pause-button")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    for _ in range(50):
        if len(requests) >= paused_at + 2:
            break
        page.wait_for_timeout(100)
    assert len(requests) >= paused_at + 2


# ---------------------------------------------------------------- the page's contract with the state JSON

FAKE_API = "https://api.example.test/"


def _cell(request_type: str, model: str, alpha: float, beta: float, share: float, **extra: Any) -> dict[str, Any]:
    mean = alpha / (alpha + beta)
    return {
        "request_type": request_type,
        "model": model,
        "alpha": alpha,
        "beta": beta,
        "mean": round(mean, 4),
        "interval": [max(0.0, mean - 0.2), min(1.0, mean + 0.2)],
        "prior_alpha": 2.0,
        "prior_beta": 2.0,
        "pick_share": share,
        "routed": extra.get("routed", 10),
        "feedback": extra.get("feedback", 5),
        "expected_cost_usd": extra.get("cost", 0.001),
        "avg_output_tokens": 300,
    }


def _router(name: str, models: list[str], cells: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    types: list[str] = []
    for cell in cells:
        if cell["request_type"] not in types:
            types.append(cell["request_type"])
    return {
        "router": name,
        "models": [
            {
                "name": m,
                "provider": "simulated",
                "input_usd_per_mtok": 0.15 * (i + 1),
                "output_usd_per_mtok": 0.6 * (i + 1),
            }
            for i, m in enumerate(models)
        ],
        "weights": {"quality": 0.7, "cost": 0.3},
        "cost_reference_usd": 0.01,
        "signal_gate_min_messages": 4,
        "forgetting_half_life_hours": 168,
        "exploration_floor": 0.02,
        "request_types": types,
        "cells": cells,
        "spend": extra.get(
            "spend", {"actual_usd": 0.03, "baseline_usd": 0.12, "savings_usd": 0.09, "savings_ratio": 0.75}
        ),
        "counts": extra.get("counts", {"turns": 40, "feedback": 20}),
        "activity": extra.get("activity", []),
        "history": extra.get("history", _history(types, [1_790_000_000, 1_790_000_010, 1_790_000_020])),
    }


def _history(
    types: list[str], times: list[int], share: float = 0.5, savings: float | None = 0.75
) -> list[dict[str, Any]]:
    return [{"t": t, "shares": {k: share for k in types}, "savings_ratio": savings, "turns": 40} for t in times]


def _event(
    turn_id: str, at: str, request_type: str, model: str, reward: float, source: str = "explicit"
) -> dict[str, Any]:
    return {
        "at": at,
        "request_type": request_type,
        "model": model,
        "reward": reward,
        "kind": "rating_up" if reward >= 0.5 else "rating_down",
        "source": source,
        "delta_alpha": reward,
        "delta_beta": 1 - reward,
        "turn_id": turn_id,
    }


def _serve_state(page: Page, origin: str, states: list[dict[str, Any]]) -> list[int]:
    """Answer GET /v1/state with `states` in turn (the last one repeats); returns the call counter."""
    calls = [0]

    def answer(route: Route) -> None:
        headers = {"access-control-allow-origin": origin, "content-type": "application/json"}
        if route.request.method == "OPTIONS":
            route.fulfill(
                status=204,
                headers={**headers, "access-control-allow-headers": "authorization,x-amz-date,x-amz-security-token"},
            )
            return
        assert route.request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKE/")
        body = states[min(calls[0], len(states) - 1)]
        calls[0] += 1
        route.fulfill(status=200, headers=headers, body=json.dumps(body))

    page.route(f"{FAKE_API}v1/state*", answer)
    return calls


def _connect_fake(page: Page) -> None:
    connect_dashboard(page, "AKIAFAKE", "fake-secret", api_url=FAKE_API)


def test_pick_share_is_the_servers_decision_not_a_ranking_of_means(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    # The pricier model has the higher mean, but the router picks the cheap one (cost counts).
    cells = [
        _cell("writing", "cheap", 6, 4, 0.81, cost=0.0002),
        _cell("writing", "pricey", 8, 2, 0.19, cost=0.004),
    ]
    page = _dashboard(browser_page, site_stack)
    _serve_state(
        page,
        site_stack.site_origin,
        [{"generated_at": "2026-11-26T01:00:00Z", "routers": [_router("r", ["cheap", "pricey"], cells)]}],
    )
    _connect_fake(page)

    expect(_row(page, "writing", "cheap")).to_have_attribute("data-leader", "true")
    expect(_row(page, "writing", "pricey")).to_have_attribute("data-leader", "false")
    widths = page.locator(".type-group[data-type='writing'] .share-segment").evaluate_all(
        "nodes => nodes.map(n => parseFloat(n.style.width))"
    )
    assert widths == [81, 19]
    expect(_row(page, "writing", "pricey").locator(".cell-mean")).to_have_text("80%")


def test_the_cost_meter_shows_the_servers_spend_and_quality_kept(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    cells = [
        _cell("code_generation", "fast", 3, 7, 0.1, routed=30),  # mean 0.3
        _cell("code_generation", "smart", 9, 1, 0.9, routed=10),  # mean 0.9
        _cell("general", "fast", 8, 2, 1.0, routed=60),  # mean 0.8
        _cell("general", "smart", 8, 2, 0.0, routed=0),  # mean 0.8
    ]
    spend = {"actual_usd": 0.25, "baseline_usd": 1.0, "savings_usd": 0.75, "savings_ratio": 0.75}
    router = _router("r", ["fast", "smart"], cells, spend=spend, counts={"turns": 100, "feedback": 37})
    page = _dashboard(browser_page, site_stack)
    _serve_state(page, site_stack.site_origin, [{"generated_at": "2026-11-26T01:00:00Z", "routers": [router]}])
    _connect_fake(page)

    expect(page.locator("#savings-ratio")).to_have_text("75.0%")
    expect(page.locator("#savings-usd")).to_have_text("$0.7500")
    expect(page.locator("#actual-usd")).to_have_text("$0.2500")
    expect(page.locator("#baseline-usd")).to_have_text("$1.00")
    expect(page.locator("#count-turns")).to_have_text("100")
    expect(page.locator("#count-feedback")).to_have_text("37")
    # (40·(0.1·0.3 + 0.9·0.9) + 60·0.8) ÷ (40·0.9 + 60·0.8) = 81.6 ÷ 84
    expect(page.locator("#quality-kept")).to_have_text("97.1%")
    assert "weighted by how many requests" in (page.locator("#metric-quality .info").get_attribute("title") or "")


def test_several_routers_get_a_dropdown_and_switching_redraws_that_routers_history(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    a = _router(
        "router-a",
        ["fast", "smart"],
        [_cell("general", "fast", 5, 5, 0.6), _cell("general", "smart", 6, 4, 0.4)],
        activity=[_event("turn-a1", "2026-11-26T01:00:01.000Z", "general", "fast", 1.0)],
    )
    b = _router(
        "router-b",
        ["mini", "large"],
        [_cell("writing", "mini", 2, 2, 0.5), _cell("writing", "large", 2, 2, 0.5)],
        activity=[_event("turn-b1", "2026-11-26T01:00:02.000Z", "writing", "large", 0.0, "implicit")],
        history=_history(["writing"], [1_790_000_020]),
    )
    page = _dashboard(browser_page, site_stack)
    _serve_state(page, site_stack.site_origin, [{"generated_at": "2026-11-26T01:00:00Z", "routers": [a, b]}])
    _connect_fake(page)

    expect(page.locator("#router-picker")).to_be_visible()
    expect(page.locator("#router-select option")).to_have_text(["router-a", "router-b"])
    expect(page.locator(".activity-item")).to_have_count(1)
    expect(page.locator(".activity-item")).to_have_attribute("data-turn-id", "turn-a1")
    expect(page.locator("#history-chart")).to_have_attribute("data-points", "3")

    page.select_option("#router-select", "router-b")

    expect(page.locator("#router-name")).to_have_text("router-b")
    expect(page.locator(".cell-row")).to_have_count(2)
    expect(page.locator(".cell-row[data-model='large']")).to_have_count(1)
    expect(page.locator(".activity-item")).to_have_count(1)
    expect(page.locator(".activity-item")).to_have_attribute("data-turn-id", "turn-b1")
    expect(page.locator(".activity-item")).to_contain_text("👎")
    expect(page.locator(".activity-item")).to_contain_text("implicit")
    expect(page.locator("#history-chart")).to_have_attribute("data-points", "1")


def test_activity_is_merged_newest_first_without_duplicates_across_polls(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    first = [_event("t1", "2026-11-26T01:00:01.000Z", "general", "fast", 1.0)]
    second = [
        _event("t2", "2026-11-26T01:00:03.000Z", "general", "smart", 0.0),
        _event("t1", "2026-11-26T01:00:01.000Z", "general", "fast", 1.0),
    ]
    # An explicit rating replacing an implicit one on the same turn is a separate signal.
    third = [_event("t1", "2026-11-26T01:00:04.000Z", "general", "fast", 0.0), *second]
    cells = [_cell("general", "fast", 5, 5, 0.5), _cell("general", "smart", 5, 5, 0.5)]
    states = [
        {"generated_at": "2026-11-26T01:00:05Z", "routers": [_router("r", ["fast", "smart"], cells, activity=act)]}
        for act in (first, second, third)
    ]
    page = _dashboard(browser_page, site_stack)
    calls = _serve_state(page, site_stack.site_origin, states)
    _connect_fake(page)

    page.wait_for_function("() => document.querySelectorAll('.activity-item').length === 3")
    page.wait_for_timeout(600)
    assert calls[0] >= 4
    items = page.locator(".activity-item")
    expect(items).to_have_count(3)
    times = items.locator("time").evaluate_all("nodes => nodes.map(n => n.dateTime)")
    assert times == ["2026-11-26T01:00:04.000Z", "2026-11-26T01:00:03.000Z", "2026-11-26T01:00:01.000Z"]


def test_api_text_is_shown_as_text_never_as_html(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    evil = '<img src=x onerror="window.__injected = 1">'
    cells = [_cell("general", evil, 5, 5, 0.5), _cell("general", "fine", 5, 5, 0.5)]
    activity = [{**_event("<b>t</b>", "2026-11-26T01:00:01.000Z", "general", evil, 1.0), "kind": evil}]
    router = _router(evil, [evil, "fine"], cells, activity=activity)
    page = _dashboard(browser_page, site_stack)
    _serve_state(page, site_stack.site_origin, [{"generated_at": "2026-11-26T01:00:00Z", "routers": [router]}])
    _connect_fake(page)

    expect(page.locator("#router-name")).to_have_text(evil)
    expect(page.locator(".model-name").first).to_have_text(evil)
    expect(page.locator(".activity-kind")).to_have_text(evil)
    assert page.locator("main img, #router-bar img").count() == 0
    assert page.evaluate("window.__injected") is None


# ---------------------------------------------------------------- pure readings of the snapshot


def test_quality_kept_and_verdicts_follow_their_definitions(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _dashboard(browser_page, site_stack)
    cells = [_cell("general", "a", 1, 1, 0.5, routed=0), _cell("general", "b", 1, 1, 0.5, routed=0)]
    unrouted = _router("r", ["a", "b"], cells)

    assert js_module(page, "./js/snapshot.js", "return m.qualityKept(arg);", unrouted) is None
    assert js_module(page, "./js/snapshot.js", "return m.verdict(0.5, 0.97).tone;") == "good"
    assert js_module(page, "./js/snapshot.js", "return m.verdict(0.5, 0.6).tone;") == "bad"
    assert js_module(page, "./js/snapshot.js", "return m.verdict(0.5, null);") is None
