"""Bedrock answers for a real `bedrock-runtime` client, parsed by botocore's own parsers.

    fake = FakeBedrock(client)
    fake.queue_stream(stream_events([{"text": "Hello"}], "end_turn"))
    fake.queue_converse(converse_answer([{"text": "Hello"}], "end_turn"))
    fake.queue_error(429, "ThrottlingException", "Too many requests")
    ... call client.converse_stream / client.converse ...
    assert fake.requests[0]["operation"] == "ConverseStream"

The answers are HTTP responses handed over on botocore's `before-send` event, after the request
was validated, serialised and signed: a ConverseStream answer is the binary event stream
(`encode_event`: prelude with lengths and CRC32, string headers, JSON payload, message CRC32)
that botocore reads into an `EventStream`, a Converse answer is its JSON body, an error is an
error status with Bedrock's error type header. botocore's Stubber cannot stand in here: it
validates a stubbed response against the output shape, and the `stream` member must then be a
dict, never the `EventStream` botocore itself returns. Nothing leaves the process.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse

_STRING_HEADER = 7
"""Header value type of a UTF-8 string in the event stream encoding (botocore.eventstream)."""


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One binary event stream message, framed as botocore.eventstream decodes it."""
    encoded_headers = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", _STRING_HEADER, len(value)) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """A ConverseStream event (`messageStart`, `contentBlockDelta`, `metadata`...)."""
    headers = {":message-type": "event", ":event-type": event_type, ":content-type": "application/json"}
    return encode_event(headers, json.dumps(body).encode())


def exception_event(exception_type: str, message: str) -> bytes:
    """An exception event inside the stream (`throttlingException`, `modelStreamErrorException`...)."""
    headers = {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"}
    return encode_event(headers, json.dumps({"message": message}).encode())


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(
    blocks: list[dict[str, Any]],
    stop: str,
    usage: dict[str, int] | None = None,
    piece: int = 4,
) -> list[bytes]:
    """The events Bedrock streams for an answer of Converse content `blocks` (as `converse_answer`
    takes them): text and each tool input's JSON text arrive in pieces of `piece` characters."""
    events = [event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(blocks):
        if "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            deltas = [{"toolUse": {"input": p}} for p in _pieces(json.dumps(use["input"]), piece)]
        else:
            deltas = [{"text": p} for p in _pieces(block["text"], piece)]
        events += [event("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas]
        events.append(event("contentBlockStop", {"contentBlockIndex": index}))
    events.append(event("messageStop", {"stopReason": stop}))
    if usage is not None:
        events.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 90}}))
    return events


def converse_answer(blocks: list[dict[str, Any]], stop: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A Converse response body with these content blocks."""
    return {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": stop,
        "usage": usage or {"inputTokens": 20, "outputTokens": 10, "totalTokens": 30},
        "metrics": {"latencyMs": 90},
    }


class RawBody:
    """What botocore reads an HTTP body from (a urllib3 response): `stream()` and `close()`.

    The body is handed over in small pieces, so messages straddle reads. `failure` is raised
    once the data is used up (a connection that breaks mid-stream); `closed` records `close()`,
    after which nothing more is read.
    """

    def __init__(self, data: bytes, piece: int = 11, failure: Exception | None = None) -> None:
        self._data = data
        self._piece = piece
        self._failure = failure
        self.closed = False
        self.read = 0
        """Bytes handed to the reader so far."""

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while self.read < len(self._data) and not self.closed:
            piece = self._data[self.read : self.read + self._piece]
            self.read += len(piece)
            yield piece
        if self._failure is not None and not self.closed:
            raise self._failure

    def close(self) -> None:
        self.closed = True


class FakeBedrock:
    """Answers a client's Converse and ConverseStream calls from a queue, recording each request."""

    def __init__(self, client: Any) -> None:
        self._answers: deque[AWSResponse] = deque()
        self.requests: list[dict[str, Any]] = []
        """Each request as sent: operation, url, JSON body."""
        self.bodies: list[RawBody] = []
        """Each answer's body, in the order the answers were given."""
        for operation in ("Converse", "ConverseStream"):
            client.meta.events.register(f"before-send.bedrock-runtime.{operation}", self._answer)

    def queue_stream(self, events: list[bytes], failure: Exception | None = None) -> RawBody:
        """Answer the next call with these events (then `failure`, if given); returns the body."""
        body = RawBody(b"".join(events), failure=failure)
        headers = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": "req-1"}
        self._answers.append(AWSResponse("https://bedrock.test", 200, headers, body))
        return body

    def queue_converse(self, answer: dict[str, Any]) -> None:
        """Answer the next call with this Converse JSON body."""
        body = RawBody(json.dumps(answer).encode(), piece=1 << 20)
        self._answers.append(AWSResponse("https://bedrock.test", 200, {"content-type": "application/json"}, body))

    def queue_error(self, status: int, code: str, message: str) -> None:
        """Answer the next call with Bedrock's error `code` and HTTP `status`."""
        body = RawBody(json.dumps({"message": message}).encode(), piece=1 << 20)
        headers = {"content-type": "application/json", "x-amzn-errortype": f"{code}:http://internal.amazon.com/"}
        self._answers.append(AWSResponse("https://bedrock.test", status, headers, body))

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        operation = "ConverseStream" if request.url.endswith("/converse-stream") else "Converse"
        self.requests.append({"operation": operation, "url": request.url, "body": json.loads(request.body or b"{}")})
        answer = self._answers.popleft()
        self.bodies.append(answer.raw)
        return answer
