"""An OpenAI-compatible upstream on 127.0.0.1 whose answers come from the simulated provider.

    python -m tools.local_stack.sim_upstream [--port 8900] [--latency-ms 0] [--api-key-env VAR]

`POST /v1/chat/completions` answers like `router_core.providers.simulated` would inside the
router: the requested upstream model id is mapped back to the config's model name, the request
type is the router's own classifier's, and the quality oracle decides the outcome (the answer's
footer says which). `GET /v1/models` lists the upstream model ids. With `--api-key-env VAR` the
server requires `Authorization: Bearer $VAR`. Zero latency by default: the latency benchmark
uses it as "the upstream called directly".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tools.local_stack.apigw import HttpRequest, HttpResponse
from tools.local_stack.server import PortInUse

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = REPO_ROOT / "layers" / "router_core"


def _openai_error(status: int, message: str, kind: str, code: str) -> HttpResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(body).encode("utf-8"))


class SimulatedUpstream:
    """The request handler: parses OpenAI requests and answers through SimulatedProvider."""

    def __init__(
        self, config_path: Path | None, *, latency_ms: float | None, api_key: str | None, provider: str | None
    ) -> None:
        if str(LAYER) not in sys.path:
            sys.path.insert(0, str(LAYER))
        from router_core.config import SimulatedProviderConfig, load_config
        from router_core.providers.simulated import SimulatedProvider

        config = load_config(config_path)
        simulated = {n: p for n, p in config.providers.items() if isinstance(p, SimulatedProviderConfig)}
        if provider is not None and provider not in simulated:
            raise ValueError(f"no simulated provider named {provider!r} (have {sorted(simulated)})")
        if not simulated:
            raise ValueError("the config has no simulated provider to take the oracle from")
        name = provider or next(iter(simulated))
        settings = simulated[name]
        if latency_ms is not None:
            settings = settings.model_copy(update={"latency_ms": latency_ms})
        self._provider = SimulatedProvider(name, settings, config.models)
        self._by_upstream: dict[str, Any] = {}
        for model in config.models.values():
            self._by_upstream.setdefault(model.upstream_model, model)
        self._models = config.models
        self._api_key = api_key
        self.requests = 0

    def handle(self, request: HttpRequest) -> HttpResponse:
        if self._api_key is not None:
            auth = request.header("authorization") or ""
            if auth != f"Bearer {self._api_key}":
                return _openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        path = request.raw_path.rstrip("/")
        if request.method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "simulated"} for m in self._by_upstream]
            return HttpResponse(
                200, [("Content-Type", "application/json")], json.dumps({"object": "list", "data": data}).encode()
            )
        if request.method == "POST" and path == "/v1/chat/completions":
            return self._chat(request)
        return _openai_error(
            404, f"Unknown request URL: {request.method} {request.raw_path}", "invalid_request_error", ""
        )

    def _chat(self, request: HttpRequest) -> HttpResponse:
        from router_core.classifier import classify
        from router_core.providers.base import ChatParams, UpstreamError

        self.requests += 1
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error", "")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return _openai_error(400, "'messages' must be a non-empty array", "invalid_request_error", "")
        model_id = str(body.get("model", ""))
        model = self._by_upstream.get(model_id) or self._models.get(model_id)
        if model is None:
            message = f"The model `{model_id}` does not exist or you do not have access to it."
            return _openai_error(404, message, "invalid_request_error", "model_not_found")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        params = ChatParams(
            messages=messages,
            temperature=body.get("temperature"),
            max_tokens=int(max_tokens) if max_tokens else None,
            request_type=classify(messages).request_type,
            seed=body.get("seed") if isinstance(body.get("seed"), int) else None,
        )
        try:
            completion = self._provider.complete(model, params, timeout_s=60.0)
        except UpstreamError as exc:
            return _openai_error(504, exc.message, "server_error", "timeout")
        answer_id = "chatcmpl-" + uuid.uuid4().hex
        usage = {
            "prompt_tokens": completion.input_tokens,
            "completion_tokens": completion.output_tokens,
            "total_tokens": completion.input_tokens + completion.output_tokens,
        }
        if body.get("stream"):
            return self._stream(answer_id, model_id, completion.text, completion.finish_reason, usage)
        payload = {
            "id": answer_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text},
                    "finish_reason": completion.finish_reason,
                }
            ],
            "usage": usage,
        }
        return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(payload).encode("utf-8"))

    @staticmethod
    def _stream(answer_id: str, model_id: str, text: str, finish: str, usage: dict[str, int]) -> HttpResponse:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None, **extra: Any) -> str:
            body = {
                "id": answer_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            return f"data: {json.dumps(body)}\n\n"

        events = (
            chunk({"role": "assistant", "content": text}, None) + chunk({}, finish, usage=usage) + "data: [DONE]\n\n"
        )
        return HttpResponse(200, [("Content-Type", "text/event-stream")], events.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    from tools.local_stack.server import LocalHttpServer

    parser = argparse.ArgumentParser(
        prog="python -m tools.local_stack.sim_upstream", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=8900, help="port on 127.0.0.1 (default 8900; 0 = any free)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated model latency (default 0)")
    parser.add_argument("--api-key-env", help="require Authorization: Bearer $VAR")
    parser.add_argument("--config", type=Path, help="router config with the oracle (default: the shipped example)")
    parser.add_argument("--provider", help="which simulated provider's oracle to use (default: the first)")
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"error: {args.api_key_env} is not set", file=sys.stderr)
            return 2
    upstream = SimulatedUpstream(args.config, latency_ms=args.latency_ms, api_key=api_key, provider=args.provider)
    try:
        server = LocalHttpServer(args.port, upstream.handle, "sim-upstream")
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"Simulated upstream ready: http://127.0.0.1:{server.port}/v1", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    print(f"Simulated upstream stopped after {upstream.requests} chat requests", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
