"""A job repeated every few seconds on a daemon thread (TTL sweeps, state saves)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls `job()` every `interval_s` seconds until `stop()`; a failing run is reported and retried."""

    def __init__(
        self, name: str, interval_s: float, job: Callable[[], object], on_error: Callable[[str], None]
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._job = job
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._job()
            except Exception as exc:  # the next tick tries again
                self._on_error(f"{self._name} failed: {type(exc).__name__}: {exc}")
