"""Handlers end to end, in-process, on moto (locked) with resources built from template.yaml."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from tests.aws_env import (
    REGION,
    Resources,
    create_resources,
    fake_aws_environment,
    http_event,
    lambda_context,
    load_handler,
    lock_moto,
    sqs_event,
)


@dataclass
class Stack:
    """The three handlers on one moto account, with a client key ready."""

    resources: Resources
    chat: ModuleType
    feedback: ModuleType
    state: ModuleType
    api_key: str

    def call(self, module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
        function = next(
            n for n, m in (("chat", self.chat), ("feedback", self.feedback), ("state", self.state)) if m is module
        )
        result: dict[str, Any] = module.lambda_handler(event, lambda_context(function))
        return result

    def chat_request(
        self, body: dict[str, Any] | str, *, key: str | None = None, session: str | None = None
    ) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {key or self.api_key}", "content-type": "application/json"}
        if session:
            headers["x-router-session-id"] = session
        payload = body if isinstance(body, str) else json.dumps(body)
        return self.call(self.chat, http_event("POST", "/v1/chat/completions", body=payload, headers=headers))

    def feedback_request(self, body: dict[str, Any] | str, *, key: str | None = None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {key or self.api_key}", "content-type": "application/json"}
        payload = body if isinstance(body, str) else json.dumps(body)
        return self.call(self.feedback, http_event("POST", "/v1/feedback", body=payload, headers=headers))

    def state_request(self, *, signed: bool = True, query: dict[str, str] | None = None) -> dict[str, Any]:
        return self.call(self.state, http_event("GET", "/v1/state", query=query, signed=signed))

    def drain_signals(self) -> dict[str, Any]:
        """Receive every queued signal and deliver it to the feedback handler as one SQS event."""
        sqs = boto3.client("sqs", region_name=REGION)
        messages: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        if not messages:
            return {"batchItemFailures": []}
        arn = sqs.get_queue_attributes(QueueUrl=self.resources.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        result = self.call(self.feedback, sqs_event(messages, arn))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return result

    def router_state(self, router: str = "smart-cheap-router") -> dict[str, Any]:
        response = self.state_request()
        assert response["statusCode"] == 200, response
        body = json.loads(response["body"])
        return next(r for r in body["routers"] if r["router"] == router)


@pytest.fixture(scope="session")
def handlers() -> dict[str, ModuleType]:
    for k, v in fake_aws_environment().items():
        os.environ[k] = v
    os.environ.pop("AWS_PROFILE", None)
    return {name: load_handler(name) for name in ("chat", "feedback", "state")}


@pytest.fixture
def stack(handlers: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from router_core import runtime
    from router_core.keys import create_client_key

    for k, v in fake_aws_environment().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("ROUTER_CONFIG_PATH", raising=False)
    lock_moto()
    with mock_aws():
        resources = create_resources()
        monkeypatch.setenv("TABLE_NAME", resources.table_name)
        monkeypatch.setenv("SIGNAL_QUEUE_URL", resources.queue_url)
        runtime.reset()
        key = create_client_key(runtime.store(), "tests")
        yield Stack(resources, handlers["chat"], handlers["feedback"], handlers["state"], key)
        runtime.reset()


@pytest.fixture
def router_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """Call with router fields to run the handlers on the shipped config with those changed."""
    from importlib import resources

    import yaml
    from router_core import runtime

    def apply(router: str = "smart-cheap-router", **fields: Any) -> None:
        raw = yaml.safe_load(resources.files("router_core").joinpath("routers.yaml").read_text(encoding="utf-8"))
        raw["routers"][router].update(fields)
        path = tmp_path / "routers.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        monkeypatch.setenv("ROUTER_CONFIG_PATH", str(path))
        runtime.reset()

    return apply


def two_models_on(base_url: str, **settings: Any) -> dict[str, Any]:
    """A router config whose two models (fast, smart) live on one OpenAI-compatible upstream;
    `settings` are more top-level settings (timeouts...)."""
    model = {"provider": "local"}
    return {
        "providers": {"local": {"type": "openai_compatible", "base_url": base_url}},
        "models": {
            "fast": {**model, "upstream_model": "m-fast", "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6},
            "smart": {**model, "upstream_model": "m-smart", "input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10},
        },
        "routers": {"smart-cheap-router": {"models": ["fast", "smart"], "default_model": "fast"}},
        **settings,
    }


@contextmanager
def router_config(config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handlers on `config` (written where ROUTER_CONFIG_PATH points), with fresh providers."""
    from router_core import runtime
    from router_core.providers import reset_providers

    path = tmp_path / "routers.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("ROUTER_CONFIG_PATH", str(path))
    runtime.reset()
    reset_providers()
    try:
        yield
    finally:
        reset_providers()
