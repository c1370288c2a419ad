"""The local stack's write-ahead journal: order, torn tails, group commit, rotation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tools.local_stack.journal import Journal, read_segment, segment_numbers, segment_path

pytestmark = pytest.mark.unit


def test_records_come_back_in_the_order_they_were_appended(tmp_path: Path) -> None:
    journal = Journal(tmp_path, first_segment=1, segment_bytes=1 << 20)
    for number in range(50):
        journal.wait_durable(journal.append({"n": number, "text": "ünïcode"}))
    journal.close()
    assert [r["n"] for r in read_segment(segment_path(tmp_path, 1))] == list(range(50))


@pytest.mark.parametrize("cut", [1, 4, 9, 20])
def test_a_torn_last_record_is_ignored_and_every_earlier_one_kept(tmp_path: Path, cut: int) -> None:
    journal = Journal(tmp_path, first_segment=1, segment_bytes=1 << 20)
    for number in range(3):
        journal.append({"n": number, "pad": "x" * 10})
    journal.close()
    path = segment_path(tmp_path, 1)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # the process died while writing the last record
    assert [r["n"] for r in read_segment(path)] == [0, 1]


def test_a_corrupt_record_ends_the_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path, first_segment=1, segment_bytes=1 << 20)
    for number in range(3):
        journal.append({"n": number})
    journal.close()
    path = segment_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF  # a flipped byte in the last payload: its checksum no longer matches
    path.write_bytes(bytes(data))
    assert [r["n"] for r in read_segment(path)] == [0, 1]


def test_concurrent_writers_share_fsyncs_and_every_record_is_durable_when_they_return(tmp_path: Path) -> None:
    journal = Journal(tmp_path, first_segment=1, segment_bytes=1 << 20)
    barrier = threading.Barrier(8)

    def writer(index: int) -> None:
        barrier.wait()
        for number in range(50):
            journal.wait_durable(journal.append({"w": index, "n": number}))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert journal.records == 400
    assert 1 <= journal.syncs <= 400
    journal.close()
    records = list(read_segment(segment_path(tmp_path, 1)))
    assert len(records) == 400
    for index in range(8):  # each writer's records in its own order
        assert [r["n"] for r in records if r["w"] == index] == list(range(50))


def test_rotation_closes_the_segment_and_continues_in_the_next(tmp_path: Path) -> None:
    journal = Journal(tmp_path, first_segment=7, segment_bytes=64)
    journal.append({"n": 0, "pad": "y" * 80})
    assert journal.needs_rotation()
    assert journal.rotate() == 7
    assert journal.segment == 8 and not journal.needs_rotation()
    journal.wait_durable(journal.append({"n": 1}))
    journal.close()
    assert segment_numbers(tmp_path) == [7, 8]
    assert [r["n"] for r in read_segment(segment_path(tmp_path, 8))] == [1]


def test_a_closed_journal_refuses_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path, first_segment=1, segment_bytes=1 << 20, fsync=False)
    journal.close()
    with pytest.raises(RuntimeError):
        journal.append({"n": 1})
