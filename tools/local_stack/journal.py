"""A write-ahead journal: every state change the local stack acknowledges, on disk first.

The journal is a directory of numbered segment files (`00000001.log`, ...). Each record is
`length (4 bytes) | crc32 (4 bytes) | payload`; a reader stops at the first short or corrupt
record, which only the last record of a segment can be (written by a process that died before
acknowledging it). Records are appended in the order the store applied them (the caller holds
the store's lock while appending) and made durable by group commit: a writer waits until an
`fsync` covering its record has returned, and one `fsync` covers every record appended before
it, so concurrent writers share the cost.

Segments are rotated (closed, a new one opened) when they grow past a size, so a compaction can
fold closed segments into a snapshot while new records go to the open one.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = struct.Struct(">II")
SEGMENT_SUFFIX = ".log"


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:08d}{SEGMENT_SUFFIX}"


def segment_numbers(directory: Path) -> list[int]:
    """The segment numbers present in `directory`, ascending."""
    if not directory.is_dir():
        return []
    numbers = []
    for entry in directory.iterdir():
        if entry.suffix == SEGMENT_SUFFIX and entry.stem.isdigit():
            numbers.append(int(entry.stem))
    return sorted(numbers)


def encode(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one segment, in order, up to the first torn or corrupt one."""
    data = path.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        yield json.loads(payload)
        offset = start + length


class Journal:
    """Appends records to the open segment; `wait_durable` blocks until they are fsynced.

    `fsync=False` keeps records in the OS page cache only: they survive the process being
    killed, not the machine losing power.
    """

    def __init__(self, directory: Path, *, first_segment: int, segment_bytes: int, fsync: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        self._synced = threading.Condition(threading.Lock())
        self._number = first_segment
        self._fd = self._open(first_segment)
        self._size = 0
        self._appended = 0  # sequence of the last record written
        self._durable = 0  # sequence of the last record known to be on disk
        self._syncing = False
        self.records = 0
        self.syncs = 0
        self._closed = False

    def _open(self, number: int) -> int:
        fd = os.open(segment_path(self.directory, number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's directory entry survives a crash too
            finally:
                os.close(dir_fd)
        return fd

    @property
    def segment(self) -> int:
        """The number of the open segment."""
        return self._number

    def needs_rotation(self) -> bool:
        return self._size >= self.segment_bytes

    def append(self, record: dict[str, Any]) -> int:
        """Write `record` (not yet durable); returns its sequence number for `wait_durable`."""
        data = encode(record)
        with self._lock:
            if self._closed:
                raise RuntimeError("the journal is closed")
            os.write(self._fd, data)
            self._size += len(data)
            self._appended += 1
            self.records += 1
            return self._appended

    def rotate(self) -> int:
        """Close the open segment (after syncing it) and open the next; returns the closed number."""
        with self._lock:
            if self._fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            closed = self._number
            self._number += 1
            self._fd = self._open(self._number)
            self._size = 0
            appended = self._appended
        with self._synced:
            self._durable = max(self._durable, appended)
            self._synced.notify_all()
        return closed

    def wait_durable(self, sequence: int) -> None:
        """Return once record `sequence` is on disk (group commit: one fsync serves many writers)."""
        if not self._fsync or sequence <= 0:
            return
        with self._synced:
            while self._durable < sequence:
                if self._syncing:
                    self._synced.wait()
                    continue
                self._syncing = True
                break
            else:
                return
        try:
            with self._lock:
                target = self._appended
                fd = self._fd
                os.fsync(fd)
        finally:
            with self._synced:
                self._syncing = False
                self._durable = max(self._durable, target)
                self.syncs += 1
                self._synced.notify_all()

    def wait_all_durable(self) -> None:
        """Return once every record appended so far is on disk."""
        with self._lock:
            sequence = self._appended
        self.wait_durable(sequence)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fsync:
                os.fsync(self._fd)
            os.close(self._fd)
