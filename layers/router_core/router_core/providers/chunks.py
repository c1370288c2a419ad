"""OpenAI `chat.completion.chunk` streams: built from an answer, and folded back into one.

Every provider's `stream()` yields chunk-shaped dicts, `{"choices": [{"index", "delta",
"finish_reason", "logprobs"}], ...}`, and, when the upstream reports usage, a last chunk
`{"choices": [], "usage": {...}}`. `completion_chunks` turns a whole `Completion` into such a
stream (the simulated provider, an upstream that ignored `stream: true`, the buffered SSE of
the HTTP API); `ChunkAccumulator` folds a stream back into a `Completion` (what the router
prices and records when the stream ends, however it ends).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from router_core.providers.base import Completion, content_text, estimate_tokens, messages_text


def choice_deltas(choice: Mapping[str, Any], *, piece_chars: int = 0) -> list[dict[str, Any]]:
    """One OpenAI choice as its chunk choices (`delta`s): the role, the content (in pieces of
    about `piece_chars` characters, cut after a space when one is near; 0 = one piece), the
    refusal, each tool call (id, type and name with empty arguments, then the arguments), and
    a last chunk with the finish_reason."""
    index = choice.get("index", 0)
    message = choice.get("message") or {}

    def delta(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"index": index, "delta": body, "logprobs": None, "finish_reason": None, **extra}

    out = [delta({"role": "assistant", "content": ""})]
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    pieces = split_text(content or "", piece_chars)
    for number, piece in enumerate(pieces):
        # The choice's logprobs ride on its first content chunk.
        out.append(delta({"content": piece}, logprobs=choice.get("logprobs") if number == 0 else None))
    if message.get("refusal"):
        out.append(delta({"refusal": message["refusal"]}))
    for position, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        opening = {"index": position, "id": call.get("id"), "type": call.get("type", "function")}
        opening["function"] = {"name": function.get("name"), "arguments": ""}
        out.append(delta({"tool_calls": [opening]}))
        for piece in split_text(function.get("arguments") or "", piece_chars):
            out.append(delta({"tool_calls": [{"index": position, "function": {"arguments": piece}}]}))
    if message.get("function_call"):
        out.append(delta({"function_call": message["function_call"]}))
    out.append(delta({}, finish_reason=choice.get("finish_reason")))
    return out


def split_text(text: str, piece_chars: int) -> list[str]:
    """`text` cut into pieces of about `piece_chars` characters (after a space when one lies in
    the second half of the piece), joining back to `text`; 0 or less = one piece."""
    if not text:
        return []
    if piece_chars <= 0 or len(text) <= piece_chars:
        return [text]
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + piece_chars)
        if end < len(text):
            space = text.rfind(" ", start + piece_chars // 2, end)
            if space > start:
                end = space + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def completion_chunks(
    completion: Completion, *, piece_chars: int = 0, pause: Callable[[], None] | None = None
) -> Iterator[dict[str, Any]]:
    """A whole answer as a chunk stream: every choice's deltas, then a usage chunk. `pause` is
    called between two content chunks (the simulated provider's pace)."""
    base: dict[str, Any] = {}
    if completion.system_fingerprint is not None:
        base["system_fingerprint"] = completion.system_fingerprint
    first = True
    for choice in completion.response_choices():
        for delta in choice_deltas(choice, piece_chars=piece_chars):
            if pause is not None and not first and ("content" in delta["delta"] or "tool_calls" in delta["delta"]):
                pause()
            first = False
            yield {**base, "choices": [delta]}
    yield {**base, "choices": [], "usage": usage_of(completion)}


def usage_of(completion: Completion) -> dict[str, Any]:
    """The upstream's own usage object (details included) when it reported one, else the counts."""
    if completion.usage is not None:
        return dict(completion.usage)
    return {
        "prompt_tokens": completion.input_tokens,
        "completion_tokens": completion.output_tokens,
        "total_tokens": completion.input_tokens + completion.output_tokens,
    }


class ChunkAccumulator:
    """Folds chunks into the answer they spell: per choice its content, refusal, tool calls
    (arguments concatenated by index) and finish_reason; the usage and fingerprint reported."""

    def __init__(self) -> None:
        self._choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.system_fingerprint: str | None = None
        self.service_tier: str | None = None
        self.upstream_model: str | None = None
        self.chunks = 0

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Take one chunk into account (unknown fields are ignored)."""
        self.chunks += 1
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = dict(usage)
        for name in ("system_fingerprint", "service_tier"):
            if isinstance(chunk.get(name), str):
                setattr(self, name, chunk[name])
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.upstream_model = chunk["model"]
        for item in chunk.get("choices") or ():
            if isinstance(item, dict):
                self._add_choice(item)

    def _add_choice(self, item: Mapping[str, Any]) -> None:
        index = item.get("index", 0) if isinstance(item.get("index"), int) else 0
        state = self._choices.setdefault(index, {"content": [], "refusal": [], "calls": {}, "finish": None})
        raw_delta = item.get("delta")
        delta: Mapping[str, Any] = raw_delta if isinstance(raw_delta, dict) else {}
        if isinstance(delta.get("content"), str):
            state["content"].append(delta["content"])
        if isinstance(delta.get("refusal"), str):
            state["refusal"].append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            position = call.get("index", 0) if isinstance(call.get("index"), int) else 0
            entry = state["calls"].setdefault(position, {"id": None, "type": "function", "name": "", "arguments": []})
            entry["id"] = call.get("id") or entry["id"]
            entry["type"] = call.get("type") or entry["type"]
            raw_function = call.get("function")
            function: Mapping[str, Any] = raw_function if isinstance(raw_function, dict) else {}
            if function.get("name"):
                entry["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                entry["arguments"].append(function["arguments"])
        if isinstance(item.get("finish_reason"), str):
            state["finish"] = item["finish_reason"]

    @property
    def finished(self) -> bool:
        """True once every choice seen so far has its finish_reason."""
        return bool(self._choices) and all(s["finish"] for s in self._choices.values())

    def text(self) -> str:
        """The first choice's content so far."""
        state = self._choices.get(min(self._choices)) if self._choices else None
        return "".join(state["content"]) if state else ""

    def choices(self, *, unfinished: str) -> tuple[dict[str, Any], ...]:
        """The OpenAI choices spelled so far; a choice without a finish_reason gets `unfinished`."""
        out = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["refusal"]:
                message["refusal"] = "".join(state["refusal"])
            if state["calls"]:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": c["type"],
                        "function": {"name": c["name"], "arguments": "".join(c["arguments"])},
                    }
                    for _, c in sorted(state["calls"].items())
                ]
            finish = state["finish"] or unfinished
            out.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
        return tuple(out)

    def completion(
        self, *, messages: list[dict[str, Any]], upstream_model: str, latency_ms: float, unfinished: str = "stop"
    ) -> Completion:
        """The answer so far as a Completion: token counts from the upstream's usage report when
        it sent one, else estimated from the prompt and what was produced (`usage_estimated`)."""
        choices = self.choices(unfinished=unfinished)
        first: dict[str, Any] = choices[0] if choices else {"message": {"content": None}, "finish_reason": unfinished}
        prompt, produced = _counts(self.usage)
        estimated = prompt is None or produced is None
        if prompt is None or produced is None:
            written = "".join(
                content_text(c["message"].get("content")) + json.dumps(c["message"].get("tool_calls") or "")
                for c in choices
            )
            prompt = estimate_tokens(messages_text(messages))
            produced = estimate_tokens(written) if self.chunks else 0
        return Completion(
            text=content_text(first["message"].get("content")),
            input_tokens=prompt,
            output_tokens=produced,
            finish_reason=str(first["finish_reason"]),
            upstream_model=self.upstream_model or upstream_model,
            latency_ms=latency_ms,
            usage_estimated=estimated,
            choices=choices,
            usage=None if estimated else self.usage,
            system_fingerprint=self.system_fingerprint,
            service_tier=self.service_tier,
        )


def _counts(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    if not usage:
        return None, None
    prompt, produced = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return _count(prompt), _count(produced)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
