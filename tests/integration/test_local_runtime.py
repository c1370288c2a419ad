"""Lambda execution environments as processes: isolation, reuse, scaling, limits, failures."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tools.local_stack.routes import FunctionSpec
from tools.local_stack.runtime import FunctionError, FunctionTimeout, LocalFunction

pytestmark = pytest.mark.integration

HANDLER = """
import os, time

CALLS = 0  # module state: kept between requests in one environment, never shared between two


def handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("raise"):
        raise ValueError("asked to fail")
    time.sleep(event.get("sleep", 0))
    return {
        "pid": os.getpid(),
        "calls": CALLS,
        "visible": sorted(k for k in os.environ if k.startswith("LOCAL_TEST_")),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "name": context.function_name,
    }
"""


def _function(tmp_path: Path, *, concurrency: int, timeout_s: int = 3, code: str = HANDLER) -> LocalFunction:
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "app.py").write_text(code)
    spec = FunctionSpec(
        logical_id="TestFunction",
        name="stack-TestFunction",
        code_dir=code_dir,
        handler="app.handler",
        timeout_s=timeout_s,
        memory_mb=128,
        environment={"LOCAL_TEST_GIVEN": "yes"},
        layer_dirs=(),
        runtime="python3.12",
    )
    os.environ["LOCAL_TEST_NOT_GIVEN"] = "parent only"
    function = LocalFunction(
        spec,
        region="us-east-1",
        account_id="123456789012",
        log_dir=tmp_path / "logs",
        environment={"PATH": os.environ.get("PATH", ""), **spec.environment},
        concurrency=concurrency,
    )
    function.load()
    return function


def test_an_environment_keeps_its_module_state_and_sees_only_its_own_variables(tmp_path: Path) -> None:
    function = _function(tmp_path, concurrency=4)
    try:
        first = function.invoke({})
        second = function.invoke({})
    finally:
        function.close()
    assert first["pid"] == second["pid"] != os.getpid()
    assert (first["calls"], second["calls"]) == (1, 2)
    assert first["visible"] == ["LOCAL_TEST_GIVEN"]
    assert 0 < first["remaining_ms"] <= 3000 and first["name"] == "stack-TestFunction"


def test_concurrent_requests_run_in_separate_environments_up_to_the_limit(tmp_path: Path) -> None:
    function = _function(tmp_path, concurrency=3)
    results: list[dict[str, int]] = []
    lock = threading.Lock()

    def call() -> None:
        result = function.invoke({"sleep": 0.6})
        with lock:
            results.append(result)

    try:
        threads = [threading.Thread(target=call) for _ in range(5)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        function.close()
    pids = {r["pid"] for r in results}
    assert len(results) == 5
    assert len(pids) == 3 and function.peak_environments == 3  # never more than the limit
    assert elapsed >= 1.2  # five 0.6 s requests on three environments: two rounds


def test_a_slow_request_does_not_hold_up_another(tmp_path: Path) -> None:
    function = _function(tmp_path, concurrency=2)
    try:
        slow = threading.Thread(target=function.invoke, args=({"sleep": 2.0},))
        slow.start()
        time.sleep(0.2)
        started = time.monotonic()
        function.invoke({})
        quick = time.monotonic() - started
        slow.join()
    finally:
        function.close()
    assert quick < 1.5  # a second environment (cold start included) instead of waiting 2 s


def test_an_error_is_reported_with_its_type_and_the_environment_serves_the_next_request(tmp_path: Path) -> None:
    function = _function(tmp_path, concurrency=1)
    try:
        with pytest.raises(FunctionError) as raised:
            function.invoke({"raise": True})
        after = function.invoke({})
    finally:
        function.close()
    assert raised.value.error_type == "ValueError" and "asked to fail" in raised.value.message
    assert after["calls"] == 2  # the same warm environment
    assert "ValueError: asked to fail" in function.log_path.read_text()


def test_a_request_past_the_timeout_stops_its_environment_and_the_next_one_starts_fresh(tmp_path: Path) -> None:
    function = _function(tmp_path, concurrency=1, timeout_s=1)
    try:
        before = function.invoke({})
        with pytest.raises(FunctionTimeout):
            function.invoke({"sleep": 5})
        after = function.invoke({})
    finally:
        function.close()
    assert after["pid"] != before["pid"] and after["calls"] == 1
    assert function.errors == 1


def test_a_handler_that_fails_to_import_fails_the_start_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="init failed: ZeroDivisionError"):
        _function(tmp_path, concurrency=1, code="x = 1 / 0\n")
