"""`python -m tools.traffic` against the local stack: it teaches the router, and its numbers are the router's.

Every run is the real command in a subprocess (exit codes, output) against the real handlers on
127.0.0.1; the state is read independently through the signed `GET /v1/state`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROUTER, RunningStack
from tests.fake_upstream import Behaviour, FakeUpstream
from tools.corpus import PROMPTS, follow_up, opening_messages
from tools.local_stack.launcher import REPO_ROOT, free_port
from tools.traffic import RouterApi, session_rng

pytestmark = pytest.mark.e2e

# A tolerance for forgetting: evidence decays with a 168 h half-life, so over a test's seconds
# the earlier evidence of a cell loses far less than this.
DECAY_TOLERANCE = 0.02


def _env(*, with_aws: bool = False) -> dict[str, str]:
    """The environment without ambient AWS credentials or config (so no state read by accident)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "ROUTER_API_KEY"}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _aws_args(stack: RunningStack) -> list[str]:
    info = stack.info
    return [  # `--flag=value`, as a secret is a value whatever its first character
        f"--aws-access-key-id={info.access_key_id}",
        f"--aws-secret-access-key={info.secret_access_key}",
        f"--region={info.region}",
    ]


def run_tool(args: list[str], *, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.traffic", *args],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_json(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    """A fast (--rate 0) run against `stack` with its state read, summary as JSON."""
    info = stack.info
    return run_tool(
        ["--api-url", info.api_url, "--api-key", info.client_key, "--rate", "0", "--json", *args, *_aws_args(stack)]
    )


def _cells(router_state: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["request_type"], c["model"]): c for c in router_state["cells"]}


def _settled_state(stack: RunningStack, expected_feedback: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """The router's state once `expected_feedback` events are counted (signals land through SQS)."""
    deadline = time.monotonic() + timeout_s
    state = stack.router_state()
    while state["counts"]["feedback"] < expected_feedback and time.monotonic() < deadline:
        time.sleep(0.2)
        state = stack.router_state()
    return state


def test_short_run_teaches_the_oracle_and_its_summary_matches_the_state(local_stack: RunningStack) -> None:
    before = _settled_state(local_stack, 0)
    done = run_json(local_stack, "--rounds", "36", "--seed", "7", "--negative-signals", "--concurrency", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sessions"] == {"completed": 36, "failed": 0}
    assert summary["turns_sent"] == 72
    assert summary["classification"]["first_turn_as_labelled"] == 36
    read = summary["signals"]["read_by_router"]
    sent = summary["signals"]["sent"]
    # Every satisfied follow-up read as satisfaction, every complaint as a negative kind, nothing else.
    assert read.get("satisfaction", 0) == sent["satisfaction"]
    assert sum(n for kind, n in read.items() if kind != "satisfaction") == sent["negative"]
    assert summary["signals"]["unread"] == 0 and summary["signals"]["unexpected"] == 0
    signals = sum(read.values())

    after = _settled_state(local_stack, before["counts"]["feedback"] + signals)
    # The tool's own before/after reading and an independent one agree with what it sent.
    assert summary["state"]["turns_delta"] == 72
    assert summary["state"]["feedback_delta"] == signals
    assert after["counts"]["turns"] - before["counts"]["turns"] == 72
    assert after["counts"]["feedback"] - before["counts"]["feedback"] == signals
    assert summary["spend"]["actual_usd"] == pytest.approx(
        after["spend"]["actual_usd"] - before["spend"]["actual_usd"], abs=1e-6
    )

    # Each cell moved by exactly the signals that scored it: α by their rewards, β by the rest.
    old, new = _cells(before), _cells(after)
    for request_type, row in summary["signals"]["by_cell"].items():
        for model, moved in row.items():
            cell = (request_type, model)
            assert new[cell]["feedback"] - old[cell]["feedback"] == sum(moved["kinds"].values())
            assert new[cell]["alpha"] - old[cell]["alpha"] == pytest.approx(moved["alpha"], abs=DECAY_TOLERANCE)
            assert new[cell]["beta"] - old[cell]["beta"] == pytest.approx(moved["beta"], abs=DECAY_TOLERANCE)

    # The oracle's direction, whatever the draws (which model gets how many code sessions depends
    # on them): smart's posterior mean for code is above fast's (0.92 vs 0.35 true), and the
    # router's own trade with the true qualities names smart.
    assert new[("code_generation", "smart")]["mean"] > new[("code_generation", "fast")]["mean"]
    assert summary["state"]["types"]["code_generation"]["best_trade_model"] == "smart"


def test_oracle_file_reverses_what_the_router_learns(local_stack: RunningStack, tmp_path: Path) -> None:
    oracle = tmp_path / "oracle.yaml"
    oracle.write_text("technical_design: {fast: 1.0, smart: 0.0}\n", encoding="utf-8")
    before = local_stack.router_state()
    done = run_json(local_stack, "--oracle", str(oracle), "--rounds", "20", "--seed", "3", "--negative-signals")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["types"] == ["technical_design"]
    cells = summary["signals"]["by_cell"]["technical_design"]
    # smart fails every time (β only) and fast succeeds every time (α only).
    assert cells["smart"]["alpha"] == 0 and cells["smart"]["beta"] >= 1
    assert "satisfaction" not in cells["smart"]["kinds"]
    assert set(cells.get("fast", {"kinds": {}})["kinds"]) <= {"satisfaction"}
    after = _settled_state(local_stack, before["counts"]["feedback"] + summary["state"]["feedback_delta"])
    old, new = _cells(before), _cells(after)
    smart = ("technical_design", "smart")
    assert new[smart]["beta"] - old[smart]["beta"] == pytest.approx(cells["smart"]["beta"], abs=DECAY_TOLERANCE)
    assert new[smart]["alpha"] == pytest.approx(old[smart]["alpha"], abs=DECAY_TOLERANCE)
    assert summary["state"]["types"]["technical_design"]["best_trade_model"] == "fast"
    assert summary["state"]["types"]["technical_design"]["pick_share"]["fast"] > 0.5


def test_a_streamed_run_teaches_the_router_like_whole_answers_and_times_the_first_content(
    local_stack: RunningStack,
) -> None:
    before = _settled_state(local_stack, 0)
    done = run_json(local_stack, "--stream", "--rounds", "8", "--seed", "5", "--negative-signals")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sessions"] == {"completed": 8, "failed": 0}
    assert summary["turns_sent"] == 16
    assert summary["classification"]["first_turn_as_labelled"] == 8
    read, sent = summary["signals"]["read_by_router"], summary["signals"]["sent"]
    assert read.get("satisfaction", 0) == sent["satisfaction"]
    assert sum(n for kind, n in read.items() if kind != "satisfaction") == sent["negative"]
    assert summary["signals"]["unread"] == 0 and summary["signals"]["unexpected"] == 0
    signals = sum(read.values())
    assert summary["state"]["turns_delta"] == 16 and summary["state"]["feedback_delta"] == signals
    after = _settled_state(local_stack, before["counts"]["feedback"] + signals)
    assert after["counts"]["feedback"] - before["counts"]["feedback"] == signals
    assert summary["spend"]["actual_usd"] == pytest.approx(
        after["spend"]["actual_usd"] - before["spend"]["actual_usd"], abs=1e-6
    )

    streaming = summary["streaming"]
    assert streaming["answers"] == 16
    assert streaming["chunks_per_answer"]["median"] >= 2  # token by token, not one block
    first = streaming["first_content_s"]
    assert 0 < first["median"] <= first["p95"] < 30
    assert "time to first content" in done.stderr and "content chunks per answer" in done.stderr


def test_a_streamed_answer_carries_the_same_learning_facts_as_a_whole_one(local_stack: RunningStack) -> None:
    info = local_stack.info
    rng = session_rng(3, 0)
    messages = opening_messages(PROMPTS["code_generation"][0], rng)
    with RouterApi(info.api_url, info.client_key, timeout_s=30.0) as api:
        whole = api.chat(ROUTER, messages, "traffic-whole-" + os.urandom(6).hex())
        first = api.chat(ROUTER, messages, "traffic-streamed-" + os.urandom(6).hex(), stream=True)
        praise = [*messages, {"role": "assistant", "content": first.content}]
        praise.append({"role": "user", "content": follow_up("satisfaction", "code_generation", rng)})
        second = api.chat(ROUTER, praise, first.session_id, stream=True)
    assert whole.content_chunks is None and whole.first_content_s is None
    for reply in (whole, first):
        assert reply.request_type == "code_generation" and reply.model in ("fast", "smart")
        assert reply.turn_id and reply.turn_id.startswith(reply.session_id)
        assert reply.gate_passed and reply.cost_usd > 0 and reply.baseline_cost_usd >= reply.cost_usd
        assert reply.propensity is not None and 0 < reply.propensity <= 1
        assert reply.usage["completion_tokens"] > 0
        assert "[simulated answer by" in reply.content
    assert first.content_chunks is not None and first.content_chunks >= 2
    assert first.first_content_s is not None and first.first_content_s > 0
    assert second.session_id == first.session_id and second.turn_id != first.turn_id
    assert second.implicit_feedback is not None
    assert second.implicit_feedback["turn_id"] == first.turn_id
    assert second.implicit_feedback["kind"] == "satisfaction"


def test_a_stream_the_model_breaks_fails_its_sessions_with_the_routers_message(
    tmp_path: Path, start_stack: Callable[..., RunningStack]
) -> None:
    pieces = ["Here ", "is ", "half ", "an ", "answer"]
    with FakeUpstream(Behaviour.streamed(pieces, fail_after=2)) as upstream:
        stack = start_stack(tmp_path / "state", extra=("--upstream-url", upstream.base_url))
        args = ["--api-url", stack.info.api_url, "--api-key", stack.info.client_key, "--stream", "--json"]
        done = run_tool([*args, "--rounds", "2", "--rate", "0", "--timeout", "10"], timeout=60)
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sessions"] == {"completed": 0, "failed": 2}
    assert summary["turns_sent"] == 0
    (message,) = summary["errors"]
    assert "error event (upstream_stream_failed)" in message and "the fake upstream broke mid-stream" in message
    assert summary["errors"][message] == 2
    assert summary["streaming"]["answers"] == 0
    assert "Traceback" not in done.stderr


def test_without_aws_credentials_the_state_read_is_skipped_and_said(local_stack: RunningStack) -> None:
    done = run_tool(
        [
            "--api-url",
            local_stack.info.api_url,
            "--api-key",
            local_stack.info.client_key,
            "--rounds",
            "3",
            "--rate",
            "0",
        ]
    )
    assert done.returncode == 0, done.stderr
    assert "no AWS credentials: skipped the /v1/state read" in done.stdout
    assert "3 sessions" in done.stdout
    assert "signals read by the router" in done.stdout


def test_client_key_from_the_environment_and_default_quality_for_types_the_oracle_omits(
    local_stack: RunningStack,
) -> None:
    env = _env()
    env["ROUTER_API_KEY"] = local_stack.info.client_key
    args = ["--api-url", local_stack.info.api_url, "--rounds", "4", "--rate", "0", "--types", "general", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "tools.traffic", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["state"] is None
    assert list(summary["picks"]) == ["general"]
    assert sum(summary["picks"]["general"].values()) == 4
    # general is not in the oracle: every model is worth 0.7 there, so nothing is lost.
    assert summary["quality"] == {"expected": 0.7, "oracle_best": 0.7, "kept": 1.0}


def _bad_oracle(tmp_path: Path, text: str) -> str:
    path = tmp_path / "oracle.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong_url", "cannot connect to"),
        ("wrong_key", "rejected the client key (401"),
        ("unknown_router", "unknown router 'no-such-router'"),
        ("oracle_probability", "expected a probability between 0 and 1, got 1.5"),
        ("oracle_type", "unknown request type 'cooking'"),
        ("oracle_yaml", "not valid YAML or JSON"),
        ("oracle_missing", "cannot read it"),
        ("no_key", "--api-key is required"),
        ("unknown_types", "--types: unknown request type(s) ['poetry']"),
        ("wrong_secret", "403"),
    ],
)
def test_bad_arguments_give_one_clear_line_and_exit_code_2(
    local_stack: RunningStack, tmp_path: Path, case: str, expected: str
) -> None:
    api, key = local_stack.info.api_url, local_stack.info.client_key
    args = ["--api-url", api, "--api-key", key, "--rounds", "2", "--rate", "0"]
    if case == "wrong_url":
        args = ["--api-url", f"http://127.0.0.1:{free_port()}", "--api-key", key, "--rounds", "2", "--timeout", "3"]
    elif case == "wrong_key":
        args = ["--api-url", api, "--api-key", "rk-not-a-real-key", "--rounds", "2"]
    elif case == "unknown_router":
        args += ["--router", "no-such-router"]
    elif case == "oracle_probability":
        args += ["--oracle", _bad_oracle(tmp_path, "code_generation: {smart: 1.5, fast: 0.2}\n")]
    elif case == "oracle_type":
        args += ["--oracle", _bad_oracle(tmp_path, '{"cooking": {"smart": 0.9}}')]
    elif case == "oracle_yaml":
        args += ["--oracle", _bad_oracle(tmp_path, "code_generation: {smart: [0.9\n")]
    elif case == "oracle_missing":
        args += ["--oracle", str(tmp_path / "missing.yaml")]
    elif case == "no_key":
        args = ["--api-url", api, "--rounds", "2"]
    elif case == "unknown_types":
        args += ["--types", "code_generation,poetry"]
    elif case == "wrong_secret":
        info = local_stack.info
        args += ["--aws-access-key-id", info.access_key_id, "--aws-secret-access-key", "x" * 40]
        args += ["--region", info.region]
    done = run_tool(args, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_prints_the_summary_of_finished_sessions(local_stack: RunningStack) -> None:
    info = local_stack.info
    args = ["--api-url", info.api_url, "--api-key", info.client_key, "--rounds", "500", "--rate", "0.1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.traffic", *args],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "(interrupted)" in out
    assert "Quality, spend and signals" in out
