"""benchmarks.aws_cost measures what it prices: units, signals, log bytes and the state route."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from benchmarks import aws_cost

pytestmark = pytest.mark.integration


@pytest.fixture
def restored_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from router_core import runtime

        runtime.reset()


def test_the_cost_benchmark_measures_every_input_it_prices(restored_environment: None) -> None:
    measured = aws_cost.measure(sessions=4, turns_per_session=2)
    chat, fb, state = measured["chat"], measured["implicit_feedback"], measured["state"]
    assert chat["requests"] == 8
    # Each session's follow-up is read as feedback on its gated opening: one signal per session.
    assert chat["signals_per_request"] == pytest.approx(0.5)
    assert fb["signals"] == 4
    # key + previous turn + cells in one BatchGetItem; turn PutItem; cell UpdateItem.
    assert chat["round_trips_max"] == 3
    assert chat["write_units_mean"] == pytest.approx(2.0)
    # The batch of four signals is one transaction: four turn marks, one ADD per cell moved and one
    # activity item, each doubled. A signal costs its mark (2) plus a share of the rest, below the
    # three items of its own (6) a transaction per signal costs.
    assert fb["batches"] == 1
    assert 2.0 + 2 * 2 / 4 <= fb["write_units_per_signal"] < 6.0
    assert chat["log_lines_per_request"] == pytest.approx(1.0)  # the metrics line carrying the decision
    assert 300 < chat["log_bytes_per_request"] < 2000
    assert '"decision"' in chat["log_sample"]
    assert state["poll_read_units_mean"] >= 1.5  # three Queries, half a unit each at least
    assert state["poll_write_units_mean"] <= 1.0
    # The streamed answer is the streaming entry's own events, about one token per chunk, usage
    # reported; gzip (each event flushed) sends a small fraction of its bytes.
    streamed = measured["streamed_answer"]
    assert 0.7 < streamed["content_chunks_per_token"] < 1.5
    assert streamed["completion_tokens_mean"] > 10
    assert streamed["sse_bytes_mean"] > 10 * chat["response_bytes_mean"] > 5000
    assert streamed["gzip_bytes_mean"] < streamed["sse_bytes_mean"] / 5


def test_prices_follow_the_measured_inputs_and_settings() -> None:
    measured = {
        "chat": {
            "handler_ms_p50": 0.0,
            "signals_per_request": 0.0,
            "write_units_mean": 2.0,
            "read_units_mean": 1.5,
            "log_bytes_per_request": 974.0,
            "log_lines_per_request": 1.0,
        },
        "implicit_feedback": {
            "handler_ms_per_batch_p50": 0.0,
            "write_units_per_signal": 6.0,
            "read_units_per_signal": 0.0,
            "log_bytes_per_signal": 0.0,
            "log_lines_per_signal": 0.0,
        },
        "access_log_bytes": 0,
    }
    fn = {"memory_mb": 1024, "architecture": "arm64"}
    settings = {"chat_function": fn, "feedback_function": fn, "signal_batch_size": 10}
    at_1s = aws_cost.price_per_million(measured, settings, 1.0)
    assert at_1s["api_gateway"] == pytest.approx(1.0)
    assert at_1s["lambda_chat"] == pytest.approx(0.2 + 1e6 * aws_cost.PRICE_LAMBDA_GB_S["arm64"], abs=1e-3)
    assert at_1s["dynamodb"] == pytest.approx(2 * 0.625 + 1.5 * 0.125, abs=1e-3)
    # 974 + 26 bytes of the metrics line, 0 + 26 of the access log line
    assert at_1s["cloudwatch_logs"] == pytest.approx(1026 * 1e6 / 1e9 * 0.5, abs=1e-3)
    with_signals = aws_cost.price_per_million(measured, settings, 1.0, signals=0.5)
    assert with_signals["dynamodb"] - at_1s["dynamodb"] == pytest.approx(0.5 * 6 * 0.625, abs=2e-3)
    assert with_signals["sqs"] == pytest.approx(0.5 * aws_cost.SQS_REQUESTS_PER_SIGNAL * 0.40, abs=1e-3)
    # Provisioned capacity: a unit-hour ($0.00065 write, $0.00013 read) serves 3,600 units at full use.
    provisioned = aws_cost.price_per_million(measured, settings, 1.0, provisioned_utilization=0.5)
    assert provisioned["dynamodb"] == pytest.approx(
        2 * 0.00065 / (3600 * 0.5) * 1e6 + 1.5 * 0.00013 / (3600 * 0.5) * 1e6, abs=1e-3
    )
    assert {k: v for k, v in provisioned.items() if k not in ("dynamodb", "total")} == {
        k: v for k, v in at_1s.items() if k not in ("dynamodb", "total")
    }
    # At full use a write unit costs 0.18 against on-demand's 0.625: provisioned wins above ~29% use.
    full = aws_cost.unit_prices_per_million(1.0)
    assert full[0] == pytest.approx(0.1806, abs=1e-4) and full[1] == pytest.approx(0.0361, abs=1e-4)


def test_the_access_log_line_is_sized_from_the_templates_format() -> None:
    assert 80 < aws_cost.access_log_bytes("POST /v1/chat/completions", 200, 1012) < 200


def test_the_streaming_path_is_priced_from_the_same_measurements_plus_cloudfront_and_its_bytes() -> None:
    fn = {"memory_mb": 1024, "architecture": "arm64"}
    settings = {"chat_function": fn, "feedback_function": fn, "signal_batch_size": 10}
    measured = {
        "chat": {
            "handler_ms_p50": 0.0,
            "signals_per_request": 0.5,
            "write_units_mean": 2.0,
            "read_units_mean": 1.5,
            "log_bytes_per_request": 974.0,
            "log_lines_per_request": 1.0,
            "request_bytes_mean": 1000.0,
            "response_bytes_mean": 2000.0,
        },
        "implicit_feedback": {
            "handler_ms_per_batch_p50": 100.0,
            "write_units_per_signal": 6.0,
            "read_units_per_signal": 0.0,
            "log_bytes_per_signal": 500.0,
            "log_lines_per_signal": 1.0,
        },
        "streamed_answer": {
            "sse_bytes_mean": 30000.0,
            "gzip_bytes_mean": 3000.0,
            "completion_tokens_mean": 101.0,
        },
        "access_log_bytes": 124,
    }
    buffered = aws_cost.price_per_million(measured, settings, 1.0)
    streaming = aws_cost.streaming_price_per_million(measured, settings, 1.0)

    assert streaming["cloudfront_requests"] == pytest.approx(1.0)  # $0.0100 per 10,000 HTTPS requests
    # The gzip-encoded stream (3,000 bytes measured) + the head, at $0.085/GB; the POST body at $0.02/GB.
    body = 3000 + aws_cost.RESPONSE_HEAD_BYTES
    assert streaming["cloudfront_data_out"] == pytest.approx(
        body * 1e6 / 1e9 * 0.085 + 1000 * 1e6 / 1e9 * 0.02, abs=1e-3
    )
    # The whole stream is billed, plus the adapter's hop; nothing for bytes under 6 MB.
    extra = aws_cost.LWA_PROXY_MS / 1000 * 1e6 * aws_cost.PRICE_LAMBDA_GB_S["arm64"]
    assert streaming["lambda_chat"] == pytest.approx(buffered["lambda_chat"] + extra, abs=1e-3)
    for same in ("lambda_feedback", "dynamodb", "sqs"):
        assert streaming[same] == buffered[same]
    # No API Gateway access log line: 124 + 26 bytes fewer per request.
    assert buffered["cloudwatch_logs"] - streaming["cloudwatch_logs"] == pytest.approx(150 * 1e6 / 1e9 * 0.5, abs=1e-3)
    assert "api_gateway" not in streaming
    assert streaming["total"] == pytest.approx(sum(v for k, v in streaming.items() if k != "total"), abs=2e-3)
    assert aws_cost.buffered_data_out_per_million(measured) == pytest.approx(
        (2000 + aws_cost.RESPONSE_HEAD_BYTES) * 1e6 / 1e9 * 0.09, abs=1e-3
    )
