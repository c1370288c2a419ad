"""The chat page streams answers: it reads the SSE body as it arrives, shows the router's choice
before the first token, grows the answer in place, and stops on demand keeping what arrived.

The event reader is checked on real streamed bodies of the shared stack, cut at every byte. The
growth and Stop checks need answers that take seconds: they start their own stack whose
simulated provider streams slowly (`SLOW_STREAM`).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import ROUTER, BrowserPage, RunningStack, connect_chat, js_module, open_page
from tests.e2e.conftest import start_local_stack
from tools.local_stack.launcher import REPO_ROOT

pytestmark = pytest.mark.browser

SHIPPED_CONFIG = REPO_ROOT / "layers" / "router_core" / "router_core" / "routers.yaml"
SLOW_STREAM: dict[str, Any] = {"stream_interval_ms": 60}
"""Simulated-provider settings for answers that stream for seconds: one chunk every 60 ms."""
LONG_PROMPT = "Write a Python function that merges two sorted lists, and explain it step by step."
MIN_RENDERS = 10
"""The issue's target: the page shows at least 10 separate pieces of a 20-chunk answer."""

# Installed before sending: one record per mutation batch that changed the streaming answer's
# text, with its length, the time, and whether the router's chips were already on the answer.
WATCH_ANSWER = """() => {
  window.__renders = [];
  const messages = document.getElementById("messages");
  new MutationObserver(() => {
    const node = messages.querySelector(".message-assistant[data-state='streaming']");
    if (!node) return;
    const length = node.querySelector(".bubble").textContent.length;
    const last = window.__renders[window.__renders.length - 1];
    if (length === 0 || (last && last.length === length)) return;
    const chip = (name) => (node.querySelector(`.meta-${name} strong`) || {}).textContent || "";
    window.__renders.push({ t: performance.now(), length, model: chip("model"), type: chip("type") });
  }).observe(messages, { subtree: true, childList: true, characterData: true });
}"""


def _streamed_text(sse: str) -> tuple[str, dict[str, Any] | None]:
    """The answer's text (every content delta, in order) and the router facts of an SSE body."""
    text, facts = "", None
    for line in sse.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[len("data: ") :])
        facts = chunk.get("router", facts)
        for choice in chunk.get("choices") or ():
            text += (choice.get("delta") or {}).get("content") or ""
    return text, facts


def _stream_body(stack: RunningStack, prompt: str) -> str:
    with stack.client() as client:
        body = {"model": ROUTER, "messages": [{"role": "user", "content": prompt}], "stream": True}
        response = client.post("v1/chat/completions", json=body | {"stream_options": {"include_usage": True}})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.text


def test_the_event_reader_rebuilds_a_real_stream_cut_anywhere(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    sse = _stream_body(site_stack, "Write a haiku about rivers, with an émoji 🌊.")
    expected, facts = _streamed_text(sse)
    assert expected and facts is not None
    page = open_page(browser_page, f"{site_stack.site_origin}/chat.html")
    # Every single cut point, then random pieces (1-9 bytes, so multi-byte characters split too);
    # then CRLF line ends, as some servers send them, one character at a time.
    rng = random.Random(5)
    data = sse.encode()
    cuts: list[list[int]] = [[at] for at in range(1, len(data))]
    for _ in range(20):
        points, at = [], 0
        while at < len(data):
            at += rng.randint(1, 9)
            points.append(at)
        cuts.append(points)
    result = js_module(
        page,
        "./js/stream.js",
        """
        const bytes = new TextEncoder().encode(arg.sse);
        const failures = [];
        for (const [n, points] of arg.cuts.entries()) {
          const reader = new m.SseReader(), answer = new m.StreamedAnswer(), decoder = new TextDecoder();
          let shown = "", from = 0;
          for (const to of [...points, bytes.length]) {
            const piece = decoder.decode(bytes.slice(from, to), { stream: true });
            for (const e of reader.push(piece)) shown += answer.apply(e.data);
            from = to;
          }
          for (const e of [...reader.push(decoder.decode()), ...reader.end()]) shown += answer.apply(e.data);
          const facts = answer.facts || {};
          const whole = shown === arg.expected && answer.content === arg.expected && answer.done;
          if (!whole || facts.turn_id !== arg.turn || !answer.usage) failures.push(n);
        }
        return failures;
        """,
        {"sse": sse, "expected": expected, "turn": facts["turn_id"], "cuts": cuts},
    )
    assert result == []
    crlf = js_module(
        page,
        "./js/stream.js",
        """
        const text = arg.sse.replaceAll("\\n", "\\r\\n");
        const reader = new m.SseReader(), answer = new m.StreamedAnswer();
        for (const ch of text) for (const e of reader.push(ch)) answer.apply(e.data);
        return [answer.content, answer.done];
        """,
        {"sse": sse},
    )
    assert crlf == [expected, True]


def test_an_error_event_ends_the_answer_and_keeps_what_arrived(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = open_page(browser_page, f"{site_stack.site_origin}/chat.html")
    sse = (
        'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
        'data: {"choices":[{"index":0,"delta":{"content":"Half an ans"}}]}\n\n'
        'data: {"error":{"message":"upstream reset the connection","type":"server_error","code":"upstream_error"}}\n\n'
        "data: [DONE]\n\n"
    )
    got = js_module(
        page,
        "./js/stream.js",
        """
        const reader = new m.SseReader(), answer = new m.StreamedAnswer();
        for (const e of reader.push(arg)) answer.apply(e.data);
        return { content: answer.content, error: answer.error };
        """,
        sse,
    )
    assert got == {
        "content": "Half an ans",
        "error": {"message": "upstream reset the connection", "type": "server_error", "code": "upstream_error"},
    }


def test_the_page_asks_for_a_stream_and_renders_the_streamed_answer(
    browser_page: BrowserPage, site_stack: RunningStack
) -> None:
    page = open_page(browser_page, f"{site_stack.site_origin}/chat.html")
    connect_chat(page, site_stack.info.client_key)
    sent: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.url.endswith("/v1/chat/completions") and request.method == "POST":
            sent.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    page.evaluate(TAP_BODIES)
    page.fill("#composer-input", "Give me one fact about Jupiter.")
    page.click("#send-button")
    answer = page.locator(".message-assistant").last
    expect(answer).to_have_attribute("data-state", "done")

    assert sent[0]["stream"] is True and sent[0]["stream_options"] == {"include_usage": True}
    text, facts = _streamed_text(_tapped_body(page, 0))
    expect(answer.locator(".bubble")).to_have_text(text)
    assert facts is not None and answer.get_attribute("data-turn-id") == facts["turn_id"]
    expect(page.locator("#stop-button")).to_be_hidden()
    expect(page.locator("#messages")).to_have_attribute("aria-busy", "false")
    assert browser_page.errors() == []


# ------------------------------------------------------------------ slow streams


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack whose simulated models stream their answers a chunk at a time, slowly."""
    base = tmp_path_factory.mktemp("slow-stream")
    config = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    for provider in config["providers"].values():
        if provider.get("type") == "simulated":
            provider.update(SLOW_STREAM)
    path = Path(base / "routers.yaml")
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    stack = start_local_stack(base / "state", extra=("--config", str(path)))
    try:
        yield stack
    finally:
        stack.process.stop()


# Installed before sending: a copy of every chat completion body, as the page's fetch received
# it (Chromium's DevTools cannot always give the body of a streamed response back afterwards).
TAP_BODIES = """() => {
  window.__bodies = [];
  const original = window.fetch;
  window.fetch = async (...args) => {
    const response = await original(...args);
    const url = String((args[0] && args[0].url) || args[0]);
    if (!url.endsWith("/v1/chat/completions") || !response.body) return response;
    const [copy, page] = response.body.tee();
    const slot = window.__bodies.push(null) - 1;
    new Response(copy).text().then(
      (text) => { window.__bodies[slot] = text; },
      () => { window.__bodies[slot] = false; },  // aborted (Stop): the page's own branch reports it
    );
    return new Response(page, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}"""


def _tapped_body(page: Page, index: int) -> str:
    """The `index`-th chat completion body the page received whole (see TAP_BODIES)."""
    deadline = time.monotonic() + 15
    while True:
        body = page.evaluate(f"() => window.__bodies[{index}]")
        if isinstance(body, str):
            return body
        assert time.monotonic() < deadline, "the tapped body never completed"
        page.wait_for_timeout(20)


def _send_watched(page: Page, stack: RunningStack, prompt: str) -> None:
    """Connect, watch the answer's text and tap its body, send `prompt`."""
    connect_chat(page, stack.info.client_key)
    page.evaluate(TAP_BODIES)
    page.evaluate(WATCH_ANSWER)
    page.fill("#composer-input", prompt)
    page.click("#send-button")


def test_tokens_render_as_they_arrive_with_the_routers_choice_shown_first(
    browser_page: BrowserPage, slow_stack: RunningStack
) -> None:
    page = open_page(browser_page, f"{slow_stack.site_origin}/chat.html")
    _send_watched(page, slow_stack, LONG_PROMPT)
    answer = page.locator(".message-assistant").last

    # While the answer streams, the chips from the response headers are already on it.
    expect(answer).to_have_attribute("data-state", "streaming")
    expect(answer.locator(".meta-model strong")).to_have_text(answer.get_attribute("data-model") or "?")
    assert answer.get_attribute("data-model") in {"fast", "smart"}
    expect(page.get_by_role("button", name="Stop the answer")).to_be_visible()
    expect(answer).to_have_attribute("data-state", "done", timeout=60_000)

    renders: list[dict[str, Any]] = page.evaluate("window.__renders")
    lengths = [r["length"] for r in renders]
    assert len(renders) >= MIN_RENDERS, lengths
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)  # it only grows
    assert renders[-1]["t"] - renders[0]["t"] > 0.5 * (MIN_RENDERS - 1) * SLOW_STREAM["stream_interval_ms"]
    # The first token already found the model and request type on the answer.
    assert renders[0]["model"] == answer.get_attribute("data-model")
    assert renders[0]["type"] == (answer.get_attribute("data-request-type") or "").replace("_", " ")
    text, facts = _streamed_text(_tapped_body(page, 0))
    expect(answer.locator(".bubble")).to_have_text(text)  # exactly the deltas, concatenated
    assert lengths[-1] == len(text)
    assert facts is not None and facts["turn_id"] == answer.get_attribute("data-turn-id")
    expect(answer.locator(".meta-cost strong")).to_have_text(re.compile(r"^\$0\.\d+$"))
    expect(answer.get_by_role("button", name="thumbs up")).to_be_enabled()
    assert browser_page.errors() == []


def test_stop_ends_the_stream_and_keeps_the_partial_answer(browser_page: BrowserPage, slow_stack: RunningStack) -> None:
    page = open_page(browser_page, f"{slow_stack.site_origin}/chat.html")
    _send_watched(page, slow_stack, LONG_PROMPT)
    answer = page.locator(".message-assistant").last
    # Polled from here: the page's CSP (script-src 'self') forbids the eval wait_for_function needs.
    deadline = time.monotonic() + 15
    while page.evaluate("() => window.__renders.length") < 3:
        assert time.monotonic() < deadline, "the answer did not start streaming"
        page.wait_for_timeout(20)

    stop = page.get_by_role("button", name="Stop the answer")
    stop.focus()
    page.keyboard.press("Enter")  # keyboard-operable

    expect(answer).to_have_attribute("data-state", "stopped")
    kept = answer.locator(".bubble").text_content() or ""
    assert kept.endswith("⏹ stopped")
    partial = kept.removesuffix("⏹ stopped")
    assert len(partial) >= page.evaluate("window.__renders[2].length")
    page.wait_for_timeout(4 * SLOW_STREAM["stream_interval_ms"])
    assert answer.locator(".bubble").text_content() == kept  # nothing arrives after Stop
    expect(stop).to_be_hidden()
    expect(page.locator("#send-button")).to_be_enabled()
    expect(page.locator("#composer-input")).to_be_focused()

    # The conversation goes on: the stopped answer is part of the history sent next.
    sent: list[dict[str, Any]] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data or "{}")) if r.method == "POST" else None)
    page.fill("#composer-input", "Thanks, go on.")
    page.keyboard.press("Escape")  # Esc with nothing streaming does nothing
    page.click("#send-button")
    expect(page.locator(".message-assistant").last).to_have_attribute("data-state", "done", timeout=60_000)
    assert sent[0]["messages"][-2] == {"role": "assistant", "content": partial}
    assert browser_page.errors() == []
