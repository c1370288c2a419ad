"""Durable state for the local stack: a snapshot plus a write-ahead journal.

Every call that changes DynamoDB or SQS state passes through one hook under the moto lock
(`aws.set_recorder`). A successful DynamoDB write is journaled as the request itself; an SQS
call is journaled as the messages it added and removed (sends, deletes, moves to the
dead-letter queue). Before the API answers any client, every record appended so far is
fsynced (`DurableState.barrier`, group commit), so a write acknowledged to any client survives
SIGTERM, `kill -9` or a crash.

At start, `<state dir>/state.json` (the snapshot) is loaded straight into moto's backends and
the journal segments written after it are replayed, in order, through moto's own request
handling: the result is the state as it was after the last acknowledged write. In the
background, when the open segment grows past a size, it is closed and a separate process
(`python -m tools.local_stack.compact`) folds the closed segments into a new snapshot, written
atomically; the segments it covered are then deleted. The serving process never scans its own
tables to save them, so saving costs it nothing while requests run, restart time is linear in
the items stored, and a snapshot is a consistent prefix of the journal by construction.

SQS messages restored after a restart are visible at once, with their receive count reset (a
signal may be delivered again; applying feedback is idempotent per turn).
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.local_stack.aws import QueueInfo, TableInfo
from tools.local_stack.journal import Journal, read_segment, segment_numbers, segment_path

STATE_FILE = "state.json"
SCHEMA_FILE = "schema.json"
JOURNAL_DIR = "journal"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SEGMENT_BYTES = 4 * 1024 * 1024
"""A segment this large is closed and compacted (about 4,000 chats' worth of writes)."""
COMPACTION_RETRY_S = 60.0
"""After a failed compaction the next try waits this long (nothing is lost meanwhile)."""
ACCOUNT_ID = "123456789012"
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
SQS_READ_ONLY = frozenset({"GetQueueUrl", "GetQueueAttributes", "ListQueues", "ListQueueTags"})


# -- moto's backends, addressed directly (bulk load and dump without the request path)


def _dynamodb_backend(region: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT_ID][region]


def _sqs_backend(region: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[ACCOUNT_ID][region]


def _encode(value: Any) -> Any:
    """A typed value as moto holds it made JSON-safe (binary → base64 text, as on the wire)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    """The inverse of `_encode` for typed values: B and BS come back as bytes."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if key == "B" and isinstance(inner, str):
                out[key] = base64.b64decode(inner)
            elif key == "BS" and isinstance(inner, list):
                out[key] = [base64.b64decode(x) if isinstance(x, str) else x for x in inner]
            else:
                out[key] = _decode(inner)
        return out
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _decode_item(attrs: dict[str, Any]) -> dict[str, Any]:
    """`_decode` for one item, skipping the attributes that cannot hold binary (most of them)."""
    out = {}
    for name, typed in attrs.items():
        if len(typed) == 1 and next(iter(typed)) in ("S", "N", "BOOL", "NULL", "SS", "NS"):
            out[name] = typed
        else:
            out[name] = _decode(typed)
    return out


def _table_items(table: Any) -> list[Any]:
    if table.range_key_attr:
        return [item for partition in table.items.values() for item in partition.values()]
    return list(table.items.values())


def dump_state(tables: list[TableInfo], queues: list[QueueInfo], region: str) -> dict[str, Any]:
    """Every item and every queued message, as a JSON-safe document (call with moto quiet)."""
    dynamodb = _dynamodb_backend(region)
    sqs = _sqs_backend(region)
    out_tables: dict[str, list[Any]] = {}
    for info in tables:
        items = [_encode(item.to_json()["Attributes"]) for item in _table_items(dynamodb.get_table(info.name))]
        items.sort(key=lambda attrs: json.dumps([attrs.get(k) for k in info.key_attributes], sort_keys=True))
        out_tables[info.logical_id] = items
    out_queues: dict[str, list[Any]] = {}
    for queue_info in queues:
        queue = sqs.get_queue(queue_info.name)
        out_queues[queue_info.logical_id] = [_message_record(m) for m in queue._messages]
    return {"version": FORMAT_VERSION, "tables": out_tables, "queues": out_queues}


def _message_record(message: Any) -> dict[str, Any]:
    return {"id": message.id, "body": message.body, "attributes": message.message_attributes or {}}


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON to `path` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path}: unreadable saved state ({exc}); move it away to start afresh") from exc
    if document.get("version") not in READABLE_VERSIONS:
        raise RuntimeError(f"{path}: saved state format {document.get('version')!r} is not {FORMAT_VERSION}")
    return document


def load_snapshot(document: dict[str, Any], tables: list[TableInfo], queues: list[QueueInfo], region: str) -> int:
    """Put a snapshot's items and messages into moto's (empty) backends; returns the item count.

    Items go straight into moto's tables (`moto_items.restore_item`): they were validated when
    first written, and moto's per-attribute checks would make a restart quadratic.

    Tables and queues the template no longer has are ignored.
    """
    from tools.local_stack.moto_items import restore_item

    dynamodb = _dynamodb_backend(region)
    restored = 0
    by_table = {t.logical_id: t for t in tables}
    for logical_id, items in (document.get("tables") or {}).items():
        info = by_table.get(logical_id)
        if info is None:
            continue
        table = dynamodb.get_table(info.name)
        for attrs in items:
            restore_item(table, _decode_item(attrs))
        restored += len(items)
    by_queue = {q.logical_id: q for q in queues}
    sqs = _sqs_backend(region)
    for logical_id, messages in (document.get("queues") or {}).items():
        queue_info = by_queue.get(logical_id)
        if queue_info is None:
            continue
        for record in messages:
            _put_message(sqs, queue_info.name, record)
    return restored


def _put_message(sqs: Any, queue_name: str, record: dict[str, Any]) -> None:
    message = sqs.send_message(queue_name, record["body"], message_attributes=record.get("attributes") or None)
    message.id = record["id"]


def _dynamodb_request(region: str, op: str, body: str) -> Any:
    from botocore.awsrequest import AWSPreparedRequest
    from botocore.compat import HTTPHeaders

    headers = HTTPHeaders()
    headers["X-Amz-Target"] = f"DynamoDB_20120810.{op}"
    headers["Content-Type"] = "application/x-amz-json-1.0"
    return AWSPreparedRequest("POST", f"https://dynamodb.{region}.amazonaws.com/", headers, body, False)


def apply_record(record: dict[str, Any], region: str, queue_names: dict[str, str]) -> None:
    """Re-apply one journal record to moto (replay). `queue_names`: queue name → itself (known)."""
    if record["t"] == "ddb":
        from moto.core.models import botocore_stubber

        result = botocore_stubber.process_request(_dynamodb_request(region, record["op"], record["body"]))
        if result is None or result[0] != 200:
            status = None if result is None else result[0]
            raise RuntimeError(f"journal replay: {record['op']} answered {status} (the journal and moto disagree)")
        return
    sqs = _sqs_backend(region)
    for queue_name, message in record.get("put", []):
        if queue_name in queue_names:
            _put_message(sqs, queue_name, message)
    for queue_name, message_id in record.get("del", []):
        if queue_name in queue_names:
            queue = sqs.get_queue(queue_name)
            queue._messages = [m for m in queue._messages if m.id != message_id]


def replay_segments(directory: Path, numbers: list[int], region: str, queues: list[QueueInfo]) -> int:
    names = {q.name: q.name for q in queues}
    count = 0
    for number in numbers:
        for record in read_segment(segment_path(directory, number)):
            apply_record(record, region, names)
            count += 1
    return count


@contextlib.contextmanager
def _bulk_allocation() -> Iterator[None]:
    """No cyclic garbage collection while millions of long-lived objects are created, then
    those objects are frozen out of every later collection.

    Stored items hold no reference cycles (refcounting frees them when deleted); scanning them
    again and again made a restart of 100,000 turns 3–4 times slower, and a full collection
    while serving would stall every request for as long as the scan takes.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


# -- the hook every moto call passes through


class Recorder:
    """Journals each state change under the moto lock (see `aws.set_recorder`).

    Records are written at once, in the order moto applied them, and made durable by
    `DurableState.barrier`, which the API calls before it answers a client: one fsync per
    acknowledged response instead of one per write, and a response is only sent once everything
    it could depend on is on disk.
    """

    def __init__(self, journal: Journal, queues: list[QueueInfo], region: str) -> None:
        self.journal = journal
        self._queue_names = [q.name for q in queues]
        self._region = region

    def apply(self, event_name: str, request: Any, call: Callable[[], Any]) -> Any:
        """Run `call` (the moto call), journal what it changed, return its response."""
        _, _, rest = event_name.partition("before-send.")
        service, _, op = rest.partition(".")
        if service == "dynamodb":
            response = call()
            if op in DYNAMODB_WRITES and response is not None and response.status_code == 200:
                body = request.body
                text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else str(body or "")
                self.journal.append({"t": "ddb", "op": op, "body": text})
            return response
        if service == "sqs" and op not in SQS_READ_ONLY:
            before = self._messages()
            response = call()
            after = self._messages()
            put = [(name, _message_record(m)) for (name, mid), m in after.items() if (name, mid) not in before]
            gone = [[name, mid] for (name, mid) in before if (name, mid) not in after]
            if put or gone:
                self.journal.append({"t": "sqs", "put": put, "del": gone})
            return response
        return call()

    def _messages(self) -> dict[tuple[str, str], Any]:
        sqs = _sqs_backend(self._region)
        out: dict[tuple[str, str], Any] = {}
        for name in self._queue_names:
            queue = sqs.queues.get(name)
            if queue is not None:
                for message in queue._messages:
                    out[(name, message.id)] = message
        return out


@dataclass
class RecoveryReport:
    snapshot_items: int = 0
    journal_records: int = 0
    seconds: float = 0.0


@dataclass
class PersistenceStats:
    compactions: int = 0
    last_compaction_s: float | None = None
    compaction_failures: int = 0


class DurableState:
    """Recovers the state at start, journals every change, compacts in the background."""

    def __init__(
        self,
        state_dir: Path,
        tables: list[TableInfo],
        queues: list[QueueInfo],
        region: str,
        *,
        fsync: bool = True,
        segment_bytes: int = SEGMENT_BYTES,
        check_interval_s: float = 1.0,
        on_error: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE
        self.journal_dir = state_dir / JOURNAL_DIR
        self._tables = tables
        self._queues = queues
        self._region = region
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._check_interval_s = check_interval_s
        self._on_error = on_error
        self._journal: Journal | None = None
        self._recorder: Recorder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._compact_lock = threading.Lock()
        self._through = 0
        self.stats = PersistenceStats()

    def recover(self) -> RecoveryReport:
        """Load the snapshot and replay the journal after it (before anything serves)."""
        started = time.perf_counter()
        report = RecoveryReport()
        with _bulk_allocation():
            document = read_snapshot(self.path)
            if document is not None:
                report.snapshot_items = load_snapshot(document, self._tables, self._queues, self._region)
                self._through = int(document.get("through_segment", 0))
            del document
            pending = [n for n in segment_numbers(self.journal_dir) if n > self._through]
            report.journal_records = replay_segments(self.journal_dir, pending, self._region, self._queues)
        report.seconds = time.perf_counter() - started
        return report

    def start(self) -> None:
        """Open a new journal segment and journal every change from now on."""
        from tools.local_stack import aws

        self._write_schema()
        existing = segment_numbers(self.journal_dir)
        first = max([self._through, *existing]) + 1
        self._journal = Journal(
            self.journal_dir, first_segment=first, segment_bytes=self._segment_bytes, fsync=self._fsync
        )
        self._recorder = Recorder(self._journal, self._queues, self._region)
        aws.set_recorder(self._recorder)
        self._thread = threading.Thread(target=self._run, name="compaction", daemon=True)
        self._thread.start()

    def _write_schema(self) -> None:
        write_atomic(
            self.state_dir / SCHEMA_FILE,
            {
                "region": self._region,
                "tables": [t.to_json() for t in self._tables],
                "queues": [q.to_json() for q in self._queues],
            },
        )

    @property
    def journal(self) -> Journal | None:
        return self._journal

    def barrier(self) -> None:
        """Return once every change made so far is on disk (called before each API response).

        Records are appended in the order moto applied them, so anything a response could have
        read or caused is at or before the last record appended now.
        """
        if self._journal is not None:
            self._journal.wait_all_durable()

    def _run(self) -> None:
        wait_s = self._check_interval_s
        while not self._stop.wait(wait_s):
            wait_s = self._check_interval_s
            try:
                if self._journal is not None and self._journal.needs_rotation():
                    self.compact()
            except Exception as exc:  # retried later; meanwhile the journal keeps everything
                self.stats.compaction_failures += 1
                wait_s = COMPACTION_RETRY_S
                self._on_error(f"compaction failed (retried in {COMPACTION_RETRY_S:g} s): {type(exc).__name__}: {exc}")

    def compact(self, timeout_s: float | None = None) -> bool:
        """Close the open segment and fold every closed segment into a new snapshot (another process).

        On failure or past `timeout_s` nothing is lost: the segments stay and are replayed at start.
        """
        from tools.local_stack import aws

        if self._journal is None:
            return False
        with self._compact_lock:
            with aws.MOTO_LOCK:  # no record is half-written while the segment closes
                closed = self._journal.rotate()
            started = time.perf_counter()
            started_monotonic = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "tools.local_stack.compact", str(self.state_dir), str(closed)],
                cwd=Path(__file__).resolve().parents[2],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout_s,
            )
            if result.returncode != 0:
                raise RuntimeError((result.stderr or result.stdout).strip().splitlines()[-1:] or "no output")
            for number in segment_numbers(self.journal_dir):
                if number <= closed:
                    segment_path(self.journal_dir, number).unlink(missing_ok=True)
            self._through = closed
            gc.collect()  # the young objects only: what earlier freezes hold is not scanned again
            gc.freeze()
            elapsed = time.perf_counter() - started
            self.stats.compactions += 1
            self.stats.last_compaction_s = elapsed
            self._log_compaction(started_monotonic, elapsed, result.stdout.strip())
            return True

    def _log_compaction(self, started_monotonic: float, seconds: float, output: str) -> None:
        """One JSON line per compaction in `<state dir>/logs/compactions.jsonl` (times and counts)."""
        try:
            counts = json.loads(output.splitlines()[-1]) if output else {}
        except ValueError:
            counts = {}
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "started_monotonic": round(started_monotonic, 3),
            "ended_monotonic": round(started_monotonic + seconds, 3),
            "seconds": round(seconds, 3),
            **counts,
        }
        log = self.state_dir / "logs" / "compactions.jsonl"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def stop(self, *, compact_timeout_s: float | None = None) -> None:
        """Stop journaling (every record is already on disk).

        With `compact_timeout_s`, fold this run's journal into the snapshot first, unless that
        takes longer (then the next start replays it).
        """
        from tools.local_stack import aws

        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
        if compact_timeout_s is not None and self._journal is not None and self._journal.records:
            try:
                self.compact(timeout_s=compact_timeout_s)
            except subprocess.TimeoutExpired:
                self._on_error(f"the snapshot took over {compact_timeout_s:g} s; the journal is replayed at start")
            except Exception as exc:
                self._on_error(f"final compaction failed (the journal keeps everything): {exc}")
        aws.set_recorder(None)
        if self._journal is not None:
            self._journal.close()


def compact_offline(state_dir: Path, through: int) -> dict[str, Any]:
    """Snapshot + segments up to `through` → a new snapshot (run in its own process)."""
    from tools.local_stack import aws

    schema = json.loads((state_dir / SCHEMA_FILE).read_text(encoding="utf-8"))
    region = schema["region"]
    tables = [TableInfo.from_json(t) for t in schema["tables"]]
    queues = [QueueInfo.from_json(q) for q in schema["queues"]]
    aws.isolate_environment(region)
    session = aws.MotoSession()
    session.start()
    try:
        aws.create_from_definitions(tables, queues, session.client("dynamodb", region), session.client("sqs", region))
        path = state_dir / STATE_FILE
        gc.disable()  # a one-shot process that allocates only long-lived objects
        document = read_snapshot(path)
        previous = 0
        items = 0
        if document is not None:
            items = load_snapshot(document, tables, queues, region)
            previous = int(document.get("through_segment", 0))
        del document
        numbers = [n for n in segment_numbers(state_dir / JOURNAL_DIR) if previous < n <= through]
        records = replay_segments(state_dir / JOURNAL_DIR, numbers, region, queues)
        out = dump_state(tables, queues, region)
        out["through_segment"] = max(previous, through)
        out["saved_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_atomic(path, out)
        return {"items_before": items, "records": records, "items": sum(len(v) for v in out["tables"].values())}
    finally:
        session.stop()
