"""The local stack end to end: real HTTP on 127.0.0.1 against the real handlers in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.auth
import httpx
import openai
import pytest
from router_core.config import REQUEST_TYPES

from tools.local_stack.launcher import REPO_ROOT, free_port

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

ROUTER = "smart-cheap-router"


def chat_body(*contents: str, answers: tuple[str, ...] = ()) -> dict[str, Any]:
    """A chat request alternating the user `contents` with the given assistant `answers`."""
    messages: list[dict[str, str]] = []
    for index, content in enumerate(contents):
        messages.append({"role": "user", "content": content})
        if index < len(answers):
            messages.append({"role": "assistant", "content": answers[index]})
    return {"model": ROUTER, "messages": messages}


def gated_chat_body(topic: str) -> dict[str, Any]:
    """A conversation long enough (user, assistant, user + the answer) to pass the signal gate."""
    return chat_body(
        f"Write a Python function that parses {topic} records from a CSV file.",
        f"Next, write a unit test for the {topic} parser function.",
        answers=(f"def parse_{topic}(path):\n    return []",),
    )


def find_cell(router_state: dict[str, Any], request_type: str, model: str) -> dict[str, Any]:
    (found,) = [c for c in router_state["cells"] if c["request_type"] == request_type and c["model"] == model]
    return dict(found)


def totals(router_state: dict[str, Any]) -> dict[str, float]:
    cells = router_state["cells"]
    return {
        "turns": router_state["counts"]["turns"],
        "feedback": router_state["counts"]["feedback"],
        "routed": sum(c["routed"] for c in cells),
        "cell_feedback": sum(c["feedback"] for c in cells),
        "alpha": sum(c["alpha"] for c in cells),
        "beta": sum(c["beta"] for c in cells),
    }


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# --------------------------------------------------------------------------- OpenAI clients


def test_the_openai_client_chats_through_the_local_api_and_reads_the_router_headers(
    local_stack: RunningStack,
) -> None:
    client = openai.OpenAI(base_url=local_stack.info.openai_base_url, api_key=local_stack.info.client_key)
    raw = client.chat.completions.with_raw_response.create(
        model=ROUTER, messages=[{"role": "user", "content": "Write a Python function that reverses a string."}]
    )
    completion = raw.parse()
    assert raw.headers["x-router-model"] in {"fast", "smart"}
    assert raw.headers["x-router-request-type"] == "code_generation"
    assert raw.headers["x-router-turn-id"].startswith(raw.headers["x-router-session-id"] + ".")
    assert 0.0 < float(raw.headers["x-router-propensity"]) <= 1.0
    assert completion.model == raw.headers["x-router-model"]
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    models = {m.id for m in client.models.list()}
    assert {ROUTER, "fast", "smart"} <= models


def test_the_openai_client_streams_through_the_local_api(local_stack: RunningStack) -> None:
    client = openai.OpenAI(base_url=local_stack.info.openai_base_url, api_key=local_stack.info.client_key)
    stream = client.chat.completions.create(
        model=ROUTER, messages=[{"role": "user", "content": "What is the capital of France?"}], stream=True
    )
    text = "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
    assert "[simulated answer by" in text


def test_a_wrong_client_key_is_401_in_openai_shape(local_stack: RunningStack) -> None:
    client = openai.OpenAI(base_url=local_stack.info.openai_base_url, api_key="rk-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=ROUTER, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401


# --------------------------------------------------------------------------- IAM (SigV4) route


def test_get_state_signed_with_botocore_is_200_with_every_router(local_stack: RunningStack) -> None:
    response = local_stack.signed("GET", "/v1/state")
    assert response.status_code == 200, response.text
    routers = response.json()["routers"]
    assert [r["router"] for r in routers] == [ROUTER]
    assert {c["request_type"] for c in routers[0]["cells"]} == set(REQUEST_TYPES)


def test_get_state_with_a_signed_query_filters_the_routers(local_stack: RunningStack) -> None:
    response = local_stack.signed("GET", "/v1/state", query=f"router={ROUTER}")
    assert response.status_code == 200, response.text
    assert [r["router"] for r in response.json()["routers"]] == [ROUTER]


def _replace_query(parts: dict[str, Any]) -> None:
    parts["url"] = parts["url"].replace(f"router={ROUTER}", "router=another-router")


def _add_body(parts: dict[str, Any]) -> None:
    parts["body"] = b'{"injected": true}'


@pytest.mark.parametrize(
    ("case", "kwargs", "message"),
    [
        ("wrong secret", {"secret": "wrong-secret-0000000000000000000000000000"}, "signature we calculated"),
        ("tampered query", {"query": f"router={ROUTER}", "tamper": _replace_query}, "signature we calculated"),
        ("tampered body", {"tamper": _add_body}, "signature we calculated"),
        ("wrong region", {"region": "eu-west-1"}, "valid region"),
    ],
)
def test_get_state_with_a_bad_signature_is_403(
    local_stack: RunningStack, case: str, kwargs: dict[str, Any], message: str
) -> None:
    response = local_stack.signed("GET", "/v1/state", **kwargs)
    assert response.status_code == 403, case
    assert message in response.json()["message"]


def test_get_state_unsigned_is_403_forbidden(local_stack: RunningStack) -> None:
    response = httpx.get(local_stack.info.api_url + "v1/state", headers={"Origin": local_stack.site_origin})
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert response.headers["access-control-allow-origin"] == local_stack.site_origin  # pages can read why
    with local_stack.client() as client:  # a client key is no substitute for SigV4
        assert client.get("/v1/state").status_code == 403


def test_get_state_signed_more_than_five_minutes_ago_is_403(
    local_stack: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    six_minutes_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: six_minutes_ago)
    response = local_stack.signed("GET", "/v1/state")
    assert response.status_code == 403
    assert response.json()["message"].startswith("Signature expired")


# --------------------------------------------------------------------------- API Gateway behaviour


def test_a_preflight_from_the_site_origin_is_answered_by_the_api_with_the_cors_policy(
    local_stack: RunningStack,
) -> None:
    response = httpx.options(
        local_stack.info.api_url + "v1/chat/completions",
        headers={
            "Origin": local_stack.site_origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-router-session-id",
        },
        timeout=10.0,
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == local_stack.site_origin
    allowed = set(response.headers["access-control-allow-headers"].split(","))
    assert {"authorization", "content-type", "x-router-session-id", "x-amz-date"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-max-age"] == "600"


def test_responses_to_the_site_origin_expose_the_router_headers(local_stack: RunningStack) -> None:
    with local_stack.client(headers={"Origin": local_stack.site_origin}) as client:
        response = client.post("/v1/chat/completions", json=chat_body("What is the boiling point of water?"))
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == local_stack.site_origin
    exposed = set(response.headers["access-control-expose-headers"].split(","))
    assert {"x-router-model", "x-router-request-type", "x-router-turn-id", "x-router-propensity"} <= exposed


def test_a_foreign_origin_gets_no_cors_headers(local_stack: RunningStack) -> None:
    foreign = "http://evil.example"
    preflight = httpx.options(
        local_stack.info.api_url + "v1/chat/completions",
        headers={"Origin": foreign, "Access-Control-Request-Method": "POST"},
        timeout=10.0,
    )
    assert "access-control-allow-origin" not in preflight.headers
    with local_stack.client(headers={"Origin": foreign}) as client:
        response = client.post("/v1/chat/completions", json=chat_body("What is the speed of light?"))
    assert response.status_code == 200
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_an_unknown_route_is_404_not_found(local_stack: RunningStack) -> None:
    with local_stack.client() as client:
        for method, path in (("GET", "/v1/nothing"), ("GET", "/v1/state/")):
            response = client.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.json() == {"message": "Not Found"}
            assert response.headers["apigw-requestid"]
        # /v1/chat/completions is the streaming function's URL (as behind BaseUrl): it answers itself.
        response = client.get("/v1/chat/completions")
        assert response.status_code == 404
        assert response.headers["apigw-requestid"]


def test_a_body_over_ten_megabytes_is_413_with_cors_without_reaching_the_function(local_stack: RunningStack) -> None:
    port = urlsplit(local_stack.info.api_url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Origin: {local_stack.site_origin}\r\n".encode()
            + f"Content-Length: {10 * 1024 * 1024 + 1}\r\n\r\n".encode()
        )
        received = b""
        while chunk := sock.recv(4096):  # the server answers and closes without reading the body
            received += chunk
    text = received.decode("latin-1")
    assert text.startswith("HTTP/1.1 413")
    assert f"Access-Control-Allow-Origin: {local_stack.site_origin}\r\n" in text  # errors carry CORS too
    assert text.endswith('\r\n\r\n{"message": "Request Entity Too Large"}')


def test_the_site_serves_config_json_and_a_favicon_but_nothing_outside_static_site(
    local_stack: RunningStack,
) -> None:
    site = local_stack.site_origin
    config = httpx.get(f"{site}/config.json", timeout=10.0)
    assert config.status_code == 200
    # The local stack's own credentials too (local-only), so both pages connect with one click.
    assert config.json() == {
        "apiUrl": local_stack.info.api_url,
        "region": local_stack.info.region,
        "routers": [ROUTER],
        "accessKeyId": local_stack.info.access_key_id,
        "secretAccessKey": local_stack.info.secret_access_key,
        "clientKey": local_stack.info.client_key,
    }
    icon = httpx.get(f"{site}/favicon.ico", timeout=10.0)
    assert (
        icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon" and icon.content[:4] == b"\0\0\1\0"
    )
    with socket.create_connection(("127.0.0.1", local_stack.site_port), timeout=10.0) as sock:
        sock.sendall(b"GET /../template.yaml HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 404")


# --------------------------------------------------------------------------- learning


def test_explicit_feedback_moves_the_state_exactly_once(local_stack: RunningStack) -> None:
    with local_stack.client() as client:
        chat = client.post("/v1/chat/completions", json=gated_chat_body("invoice"))
        assert chat.status_code == 200, chat.text
        request_type, model = chat.headers["x-router-request-type"], chat.headers["x-router-model"]
        turn_id = chat.headers["x-router-turn-id"]
        before = find_cell(local_stack.router_state(), request_type, model)

        first = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"})
        assert first.status_code == 200, first.text
        assert first.json()["applied"] is True
        after = find_cell(local_stack.router_state(), request_type, model)
        assert after["feedback"] == before["feedback"] + 1
        assert after["alpha"] == pytest.approx(before["alpha"] + 1.0, abs=1e-3)
        assert after["beta"] == pytest.approx(before["beta"], abs=1e-3)

        replay = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"})
        assert replay.status_code == 409, replay.text
        assert replay.json()["error"]["code"] == "already_scored"
        unchanged = find_cell(local_stack.router_state(), request_type, model)
        assert unchanged["feedback"] == after["feedback"]
        assert unchanged["alpha"] == pytest.approx(after["alpha"], abs=1e-3)


def test_a_satisfied_follow_up_flows_through_sqs_and_moves_the_state(local_stack: RunningStack) -> None:
    first_body = gated_chat_body("shipment")
    with local_stack.client() as client:
        first = client.post("/v1/chat/completions", json=first_body)
        assert first.status_code == 200, first.text
        turn_id, session = first.headers["x-router-turn-id"], first.headers["x-router-session-id"]
        request_type, model = first.headers["x-router-request-type"], first.headers["x-router-model"]
        before = find_cell(local_stack.router_state(), request_type, model)

        answer = first.json()["choices"][0]["message"]["content"]
        follow_up = {
            "model": ROUTER,
            "messages": [
                *first_body["messages"],
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "Thanks, that worked perfectly! Now write a function to reverse a list."},
            ],
        }
        second = client.post("/v1/chat/completions", json=follow_up, headers={"x-router-session-id": session})
        assert second.status_code == 200, second.text
        implicit = second.json()["router"]["implicit_feedback"]
        assert implicit["turn_id"] == turn_id
        assert implicit["kind"] == "satisfaction"

    def applied() -> bool:
        state = local_stack.router_state()
        return find_cell(state, request_type, model)["feedback"] == before["feedback"] + 1

    wait_for(applied, 15.0, "the implicit signal to reach the feedback function through SQS")
    state = local_stack.router_state()
    after = find_cell(state, request_type, model)
    assert after["alpha"] == pytest.approx(before["alpha"] + 1.0, abs=1e-3)
    events = [e for e in state["activity"] if e["turn_id"] == turn_id]
    assert [(e["source"], e["kind"]) for e in events] == [("implicit", "satisfaction")]


def test_eight_concurrent_clients_lose_no_turn_and_no_feedback(local_stack: RunningStack) -> None:
    clients, chats_each = 8, 5
    before = totals(local_stack.router_state())
    results: list[tuple[int, int, str]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(client_index: int) -> None:
        with local_stack.client() as client:
            for n in range(chats_each):
                chat = client.post("/v1/chat/completions", json=gated_chat_body(f"c{client_index}n{n}"))
                if chat.status_code != 200:
                    with lock:
                        errors.append(f"chat {chat.status_code}: {chat.text}")
                    continue
                rating = "up" if (client_index + n) % 2 == 0 else "down"
                feedback = client.post(
                    "/v1/feedback", json={"turn_id": chat.headers["x-router-turn-id"], "rating": rating}
                )
                with lock:
                    results.append((chat.status_code, feedback.status_code, rating))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120.0)
    assert not errors
    sent = clients * chats_each
    assert [f for _, f, _ in results] == [200] * sent
    ups = sum(1 for *_, rating in results if rating == "up")

    after = totals(local_stack.router_state())
    assert after["turns"] - before["turns"] == sent
    assert after["routed"] - before["routed"] == sent
    assert after["feedback"] - before["feedback"] == sent
    assert after["cell_feedback"] - before["cell_feedback"] == sent
    assert after["alpha"] - before["alpha"] == pytest.approx(ups, abs=0.05)
    assert after["beta"] - before["beta"] == pytest.approx(sent - ups, abs=0.05)


# --------------------------------------------------------------------------- process lifecycle


def test_a_restart_on_the_same_state_dir_keeps_the_posteriors_and_the_key(
    tmp_path: Path, start_stack: Callable[..., RunningStack]
) -> None:
    state_dir = tmp_path / "state"
    first = start_stack(state_dir)
    with first.client() as client:
        chat = client.post("/v1/chat/completions", json=gated_chat_body("restart"))
        assert chat.status_code == 200, chat.text
        turn_id = chat.headers["x-router-turn-id"]
        assert client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "down"}).status_code == 200
    cells_before = {(c["request_type"], c["model"]): c for c in first.router_state()["cells"]}
    assert first.process.stop() == 0
    assert (state_dir / "state.json").is_file()

    second = start_stack(state_dir)
    assert second.info.client_key == first.info.client_key
    assert second.info.access_key_id == first.info.access_key_id
    cells_after = {(c["request_type"], c["model"]): c for c in second.router_state()["cells"]}
    assert cells_after.keys() == cells_before.keys()
    for key, before in cells_before.items():
        after = cells_after[key]
        assert (after["routed"], after["feedback"]) == (before["routed"], before["feedback"]), key
        assert after["alpha"] == pytest.approx(before["alpha"], abs=1e-3), key
        assert after["beta"] == pytest.approx(before["beta"], abs=1e-3), key
    with second.client() as client:  # the turn itself survived: it is still scored
        replay = client.post("/v1/feedback", json={"turn_id": turn_id, "rating": "up"})
        assert replay.status_code == 409, replay.text


def test_same_origin_mode_serves_the_pages_and_the_api_from_one_port(
    tmp_path: Path, start_stack: Callable[..., RunningStack]
) -> None:
    stack = start_stack(tmp_path / "state", extra=("--same-origin",))
    assert stack.info.dashboard_url == stack.info.api_url + "dashboard.html"
    page = httpx.get(stack.info.dashboard_url, timeout=10.0)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    config = httpx.get(stack.info.api_url + "config.json", timeout=10.0).json()
    assert config["apiUrl"] == stack.info.api_url
    with stack.client() as client:
        assert client.get("/v1/models").status_code == 200
        missing = client.get("/no-such-page.html")
        assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}


def test_upstream_mode_sends_every_model_to_the_openai_compatible_url(
    tmp_path: Path, start_stack: Callable[..., RunningStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.local_stack.server import LocalHttpServer
    from tools.local_stack.sim_upstream import SimulatedUpstream

    upstream = SimulatedUpstream(None, latency_ms=0.0, api_key="sk-e2e-upstream", provider=None)
    server = LocalHttpServer(0, upstream.handle, "sim-upstream")
    server.start()
    try:
        monkeypatch.setenv("E2E_UPSTREAM_KEY", "sk-e2e-upstream")
        url = f"http://127.0.0.1:{server.port}/v1"
        stack = start_stack(tmp_path / "state", extra=("--upstream-url", url, "--upstream-key-env", "E2E_UPSTREAM_KEY"))
        client = openai.OpenAI(base_url=stack.info.openai_base_url, api_key=stack.info.client_key)
        raw = client.chat.completions.with_raw_response.create(
            model=ROUTER, messages=[{"role": "user", "content": "What is the tallest mountain in Africa?"}]
        )
        model = raw.headers["x-router-model"]
        assert f"[simulated answer by {model}:" in (raw.parse().choices[0].message.content or "")
        assert upstream.requests == 1
        generated = (tmp_path / "state" / "routers.upstream.yaml").read_text()
        assert url in generated and "E2E_UPSTREAM_KEY" in generated and "sk-e2e-upstream" not in generated
    finally:
        server.stop()


def test_a_port_in_use_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "tools.local_stack", "--api-port", str(port)),
                *("--site-port", str(free_port()), "--state-dir", str(tmp_path / "state"), "--no-traffic"),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"port {port}" in lines[0] and "already in use" in lines[0]


def test_the_ready_banner_and_state_files_are_where_the_stack_says(local_stack: RunningStack) -> None:
    # 5 s on an idle machine; a machine busier than its core count stretches every start alike.
    busy = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert local_stack.info.ready_s < 5.0 * busy
    assert local_stack.info.api_url == f"http://127.0.0.1:{local_stack.api_port}/"
    assert local_stack.info.dashboard_url == f"http://localhost:{local_stack.site_port}/dashboard.html"
    saved = json.loads((local_stack.state_dir / "client-key.json").read_text())
    assert saved["key"] == local_stack.info.client_key
    assert (local_stack.state_dir / "aws-credentials.json").stat().st_mode & 0o077 == 0


# --------------------------------------------------------------------------- SQS event source (in-process)


@pytest.mark.integration
def test_a_poison_signal_is_retried_by_the_poller_then_moved_to_the_dead_letter_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real feedback handler reports the bad record failed; moto's redrive moves it after 5 receives."""
    import boto3
    from moto import mock_aws

    from tools.local_stack.aws import create_resources, patch_moto_lock
    from tools.local_stack.aws_endpoint import AwsEndpoint
    from tools.local_stack.routes import read_api
    from tools.local_stack.runtime import LocalFunction
    from tools.local_stack.sqs_poller import SqsPoller
    from tools.local_stack.template import StackTemplate

    region = "us-east-1"
    template = StackTemplate.load(REPO_ROOT / "template.yaml", region=region)
    spec = read_api(template, [])
    feedback = spec.functions["FeedbackFunction"]
    (trigger,) = spec.triggers
    for name, value in feedback.environment.items():
        monkeypatch.setenv(name, value)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "ROUTER_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    patch_moto_lock()
    from router_core import runtime

    with mock_aws():
        runtime.reset()
        sqs = boto3.client("sqs", region_name=region)
        resources = create_resources(template, boto3.client("dynamodb", region_name=region), sqs)
        queue = resources.queues[trigger.queue]
        assert queue.dead_letter_queue is not None and queue.max_receive_count == 5
        dead_letters = resources.queues[queue.dead_letter_queue]
        # Failed records come back after the visibility timeout: zero here, so the test needs no waiting.
        sqs.set_queue_attributes(QueueUrl=queue.url, Attributes={"VisibilityTimeout": "0"})
        endpoint = AwsEndpoint(region)
        endpoint.start()
        environment = {
            **feedback.environment,
            "PATH": os.environ.get("PATH", ""),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url,
            "AWS_ENDPOINT_URL_SQS": endpoint.url,
        }
        function = LocalFunction(
            feedback,
            region=region,
            account_id=template.account_id,
            log_dir=tmp_path,
            environment=environment,
            concurrency=1,
        )
        function.load()
        poller = SqsPoller(
            sqs=sqs,
            queue_url=queue.url,
            queue_arn=queue.arn,
            region=region,
            invoke=function.invoke,
            batch_size=trigger.batch_size,
            batching_window_s=0.0,
            report_batch_item_failures=trigger.report_batch_item_failures,
        )
        unknown_turn = {
            "turn_id": "nosuchsession.1.abcdef01",
            "key_hash": "0" * 64,
            "router": ROUTER,
            "request_type": "writing",
            "model": "fast",
            "reward": 1.0,
            "kind": "satisfaction",
        }
        sqs.send_message(QueueUrl=queue.url, MessageBody="this is not a signal")
        sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps(unknown_turn))
        first = poller.collect_batch()
        assert len(first) == 2
        poller.deliver(first)  # partial failure: the good record is deleted, the poison one stays
        assert (poller.stats.deleted, poller.stats.retried) == (1, 1)
        for _ in range(queue.max_receive_count):
            batch = poller.collect_batch()
            if batch:
                assert [m["Body"] for m in batch] == ["this is not a signal"]
                poller.deliver(batch)
        moved = sqs.receive_message(QueueUrl=dead_letters.url, AttributeNames=["All"]).get("Messages", [])
        left = sqs.receive_message(QueueUrl=queue.url).get("Messages", [])
        function.close()
        endpoint.stop()
        runtime.reset()
    assert poller.stats.batches == queue.max_receive_count
    assert poller.stats.deleted == 1
    assert poller.stats.retried == queue.max_receive_count
    assert [m["Body"] for m in moved] == ["this is not a signal"]
    assert left == []
    # Alone in its batch the poison record is reported failed: the invocation itself never fails.
    assert poller.stats.invoke_errors == 0
    assert "BatchProcessingError" not in function.log_path.read_text()


def test_sixty_four_clients_connecting_at_once_are_all_answered(local_stack: RunningStack) -> None:
    # 64 fresh connections opened together (a burst of clients): none is reset or refused.
    url = local_stack.info.api_url + "v1/models"
    headers = {"Authorization": f"Bearer {local_stack.info.client_key}"}
    start = threading.Barrier(64)
    statuses: list[int | str] = []
    lock = threading.Lock()

    def client() -> None:
        start.wait(timeout=30)
        try:
            with httpx.Client(timeout=60.0) as http:
                status: int | str = http.get(url, headers=headers).status_code
        except httpx.TransportError as exc:  # a reset or refused connection
            status = type(exc).__name__
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert statuses == [200] * 64
