"""Lambda's SQS event source mapping, for one queue and one function.

Like the managed poller: receive up to `batch_size` messages, waiting at most the batching
window for a batch to fill; invoke the function with a real SQS event; then, with
ReportBatchItemFailures, delete every record not listed in `batchItemFailures` (an invalid
list fails the whole batch). A raised error deletes nothing. Records left behind come back
after the queue's visibility timeout, and the queue's redrive policy (enforced by moto on
receive) moves a message received `maxReceiveCount` times to the dead-letter queue.

Receives never wait inside moto (its long poll would hold the global moto lock): the poller
short-polls and sleeps on an event that the moto listener sets whenever a message is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_LAMBDA_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
)
IDLE_POLL_S = 1.0
"""Longest sleep between receives when no send was seen (messages whose visibility timeout ran
out reappear without a send)."""


@dataclass
class PollerStats:
    """Counters since start: batches invoked, records delivered, deleted and left to retry."""

    batches: int = 0
    delivered: int = 0
    deleted: int = 0
    retried: int = 0
    invoke_errors: int = 0


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda builds from an SQS ReceiveMessage result."""
    attributes = message.get("Attributes") or {}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: attributes[k] for k in _LAMBDA_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(result: Any, batch_ids: set[str], report_failures: bool) -> set[str]:
    """The message ids a successful invocation's result reports as failed.

    Without ReportBatchItemFailures the result is ignored (all succeeded). With it, a missing,
    null or empty list means success; an entry without a valid `itemIdentifier` from this batch
    makes the whole batch a failure, as Lambda does.
    """
    if not report_failures or not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    failed: set[str] = set()
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return set(batch_ids)
        failed.add(identifier)
    return failed


class SqsPoller:
    """Polls one queue on a daemon thread and feeds batches to `invoke(event)`."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int,
        batching_window_s: float,
        report_batch_item_failures: bool,
        on_error: Callable[[str], None] = lambda _message: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._region = region
        self._invoke = invoke
        self._batch_size = max(1, batch_size)
        self._window_s = max(0.0, batching_window_s)
        self._report_failures = report_batch_item_failures
        self._on_error = on_error
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-poller:{queue_url.rsplit('/', 1)[-1]}", daemon=True
        )
        self.stats = PollerStats()

    def on_aws_call(self, event_name: str) -> None:
        """moto listener: a send to any queue wakes the poller."""
        if event_name.startswith("before-send.sqs.SendMessage"):
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.collect_batch()
                if batch:
                    self.deliver(batch)
            except Exception as exc:  # keep polling, as the managed poller does
                self._on_error(f"SQS poller: {type(exc).__name__}: {exc}")
                self._stop.wait(1.0)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=min(10, count),
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def collect_batch(self) -> list[dict[str, Any]]:
        """Messages for one invocation: up to batch_size, gathered within the batching window.

        Returns [] after an idle wait when nothing is visible (or when stopping).
        """
        self._wake.clear()
        batch = self._receive(self._batch_size)
        if not batch:
            self._wake.wait(IDLE_POLL_S)
            return []
        deadline = self._clock() + self._window_s
        while len(batch) < self._batch_size and not self._stop.is_set():
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._wake.clear()
            more = self._receive(self._batch_size - len(batch))
            if more:
                batch.extend(more)
                continue
            self._wake.wait(remaining)
        return batch

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        """Invoke the function with `batch` and delete what it processed."""
        event = {"Records": [sqs_record(m, self._arn, self._region) for m in batch]}
        ids = {m["MessageId"] for m in batch}
        self.stats.batches += 1
        self.stats.delivered += len(batch)
        try:
            result = self._invoke(event)
        except Exception as exc:
            self.stats.invoke_errors += 1
            self.stats.retried += len(batch)
            self._on_error(f"SQS batch of {len(batch)} failed ({exc}); messages return after the visibility timeout")
            return
        failed = failed_message_ids(result, ids, self._report_failures)
        done = [m for m in batch if m["MessageId"] not in failed]
        self.stats.retried += len(failed)
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            response = self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            self.stats.deleted += len(response.get("Successful", []))
