"""The chat page in Chromium: presets, what the router did with each answer, feedback, gate, errors."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import ROUTER, BrowserPage, RunningStack, connect_chat, js_module, open_page
from tools.corpus import follow_up
from tools.local_stack.launcher import free_port

pytestmark = pytest.mark.browser


def _chat(handle: BrowserPage, stack: RunningStack) -> Page:
    page = open_page(handle, f"{stack.site_origin}/chat.html")
    expect(page.locator("#api-url")).to_have_value(stack.info.api_url)  # from config.json
    return page


def _send(page: Page, text: str | None = None) -> Locator:
    """Send the composer's text (or `text`) and wait until the whole answer streamed in; returns
    the answer's element."""
    before = page.locator(".message-assistant[data-turn-id]").count()
    if text is not None:
        page.fill("#composer-input", text)
    page.click("#send-button")
    answers = page.locator(".message-assistant[data-turn-id]")
    expect(answers).to_have_count(before + 1)
    turn_id = answers.last.get_attribute("data-turn-id")
    answer = page.locator(f".message-assistant[data-turn-id='{turn_id}']")
    expect(answer).to_have_attribute("data-state", "done")
    return answer


def _cell(stack: RunningStack, request_type: str, model: str) -> dict[str, Any]:
    state = stack.router_state()
    return next(c for c in state["cells"] if c["request_type"] == request_type and c["model"] == model)


def test_a_preset_is_sent_and_the_answer_shows_model_type_latency_cost_and_turn(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    expect(page.locator("#router-select")).to_have_value(ROUTER)

    page.click("[data-scenario='debug']")
    expect(page.locator("#composer-input")).to_have_value(re.compile(re.escape("What's wrong with it?")))
    expect(page.locator("#system-prompt")).not_to_have_value("")
    answer = _send(page)

    models = {m["name"] for m in site_stack.router_state()["models"]}
    assert answer.get_attribute("data-model") in models
    request_type = answer.get_attribute("data-request-type") or ""
    assert request_type in site_stack.router_state()["request_types"]
    expect(answer.locator(".meta-model strong")).to_have_text(answer.get_attribute("data-model") or "?")
    expect(answer.locator(".meta-type strong")).to_have_text(request_type.replace("_", " "))
    expect(answer.locator(".meta-latency strong")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(answer.locator(".meta-cost strong")).to_have_text(re.compile(r"^\$0\.\d+$"))
    turn_id = answer.get_attribute("data-turn-id") or ""
    assert len(turn_id) > 8
    assert (answer.locator(".meta-turn").get_attribute("title") or "").endswith(turn_id)
    # User message and system prompt (1 counted message) + the answer = 2 of 4.
    expect(page.locator("#gate-text")).to_have_text("1 more turn until feedback counts")
    expect(answer.locator(".meta-gate strong")).to_have_text("below gate 2/4")
    assert browser_page.errors() == []


def test_a_thumbs_up_past_the_gate_moves_the_posterior(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    page.click("[data-scenario='write']")
    _send(page)
    answer = _send(page, "Make it a little shorter, please.")
    expect(page.locator("#gate-text")).to_contain_text("Feedback counts")
    request_type = answer.get_attribute("data-request-type") or ""
    model = answer.get_attribute("data-model") or ""
    before = _cell(site_stack, request_type, model)

    answer.get_by_role("button", name="thumbs up").click()

    expect(answer.locator(".outcome")).to_have_text(f"Applied to {model} on {request_type.replace('_', ' ')}.")
    expect(answer.locator(".outcome")).to_have_attribute("data-tone", "good")
    expect(answer.get_by_role("button", name="thumbs up")).to_be_disabled()
    after = _cell(site_stack, request_type, model)
    assert after["feedback"] == before["feedback"] + 1
    assert after["alpha"] == pytest.approx(before["alpha"] + 1.0, abs=0.01)
    assert after["beta"] == pytest.approx(before["beta"], abs=0.01)
    assert browser_page.errors() == []


def test_a_rating_below_the_gate_is_recorded_but_not_applied(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    answer = _send(page, "Explain what a Bloom filter is.")

    answer.get_by_role("button", name="thumbs down").click()

    expect(answer.locator(".outcome")).to_contain_text("Recorded, not applied")
    expect(answer.locator(".outcome")).to_have_attribute("data-tone", "warn")


def test_a_turn_rated_elsewhere_reports_already_rated(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    _send(page, "Write a haiku about the sea.")
    answer = _send(page, "Now one about the mountains.")
    with site_stack.client() as client:
        first = client.post("v1/feedback", json={"turn_id": answer.get_attribute("data-turn-id"), "rating": "up"})
    assert first.status_code == 200, first.text

    answer.get_by_role("button", name="thumbs down").click()

    expect(answer.locator(".outcome")).to_have_text("Already rated: each answer takes one explicit rating.")


def test_implicit_feedback_read_from_a_follow_up_is_shown_on_the_answer_it_is_about(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    _send(page, "Write a Python function that checks whether a number is prime.")
    rated = _send(page, "Also make it handle negative numbers.")
    request_type = rated.get_attribute("data-request-type") or "code_generation"

    _send(page, follow_up("satisfaction", request_type, random.Random(3)))

    note = rated.locator(".implicit-note")
    expect(note).to_have_count(1)
    expect(note).to_contain_text("satisfaction")
    expect(note).to_contain_text("👍")
    expect(page.locator(".message-assistant").last.locator(".meta-implicit")).to_contain_text("implicit satisfaction")


def test_the_gate_indicator_counts_messages_like_the_server(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _chat(browser_page, site_stack)
    history: list[dict[str, str]] = []
    with site_stack.client() as client:
        for n, system in enumerate([None, "Be brief.", None, "Be brief."]):
            history.append({"role": "user", "content": f"Question number {n}: what is {n} + {n}?"})
            messages = ([{"role": "system", "content": system}] if system else []) + history
            response = client.post("v1/chat/completions", json={"model": ROUTER, "messages": messages})
            assert response.status_code == 200, response.text
            server = response.json()["router"]["feedback_gate"]
            computed = js_module(
                page,
                "./js/conversation.js",
                "return m.gateForRequest(arg.messages, arg.required);",
                {"messages": messages, "required": server["required"]},
            )
            assert computed == server
            history.append({"role": "assistant", "content": response.json()["choices"][0]["message"]["content"]})
    assert js_module(page, "./js/conversation.js", "return m.turnsUntilGate({messages: 2, required: 4});") == 1
    assert js_module(page, "./js/conversation.js", "return m.turnsUntilGate({messages: 2, required: 7});") == 3
    assert js_module(page, "./js/conversation.js", "return m.turnsUntilGate({messages: 4, required: 4});") == 0


def test_a_wrong_client_key_is_reported_as_401(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _chat(browser_page, site_stack)
    page.fill("#client-key", "rk-" + "0" * 43)
    page.click("#connect-button")

    expect(page.locator("#hint")).to_contain_text("HTTP 401: the client key was rejected.")
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(page.locator("#send-button")).to_be_disabled()


def test_an_unreachable_api_is_reported_as_a_network_or_cors_error(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _chat(browser_page, site_stack)
    page.fill("#api-url", f"http://127.0.0.1:{free_port()}/")
    page.fill("#client-key", site_stack.info.client_key)
    page.click("#connect-button")

    expect(page.locator("#hint")).to_contain_text("network or CORS error")
    expect(page.locator("#hint")).to_contain_text(site_stack.site_origin)


def test_an_api_error_shows_the_openai_error_message_and_keeps_the_draft(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    # A router that exists in the list but not on the server: the API answers 404 model_not_found.
    page.evaluate(
        "(name) => { const s = document.querySelector('select'); s.add(new Option(name, name)); s.value = name; }",
        "no-such-router",
    )
    page.fill("#composer-input", "Hello?")
    page.click("#send-button")

    error = page.locator(".message-system")
    expect(error).to_contain_text("HTTP 404 (model_not_found)")
    expect(error).to_contain_text("no-such-router")
    expect(page.locator("#composer-input")).to_have_value("Hello?")
    expect(page.locator(".message-user")).to_have_count(0)


def test_answers_and_messages_are_rendered_as_text(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    evil = '<img src=x onerror="window.__injected = 1">\nsecond line'

    answer = _send(page, evil)

    expect(page.locator(".message-user .bubble").last).to_have_text(evil)
    assert page.locator("#messages img").count() == 0
    assert page.evaluate("window.__injected") is None
    assert answer.locator(".bubble").evaluate("n => getComputedStyle(n).whiteSpace") == "pre-wrap"


def test_new_chat_starts_a_new_session(browser_page: BrowserPage, site_stack: RunningStack) -> None:
    page = _chat(browser_page, site_stack)
    connect_chat(page, site_stack.info.client_key)
    _send(page, "Give me one fact about Mars.")
    sessions: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            sessions.append(r.headers.get("x-router-session-id"))
            if r.url.endswith("/v1/chat/completions") and r.method == "POST"
            else None
        ),
    )
    _send(page, "And one about Venus.")

    page.click("#new-chat")
    expect(page.locator(".message")).to_have_count(0)
    _send(page, "Give me one fact about Mars.")

    assert sessions[0]  # the second message continues the first answer's session
    assert sessions[1] is None  # the new chat sends no session id: the server starts a new one
    expect(page.locator("#session-facts")).to_contain_text("1 answer")
