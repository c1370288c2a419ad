"""Run the local stack as a subprocess and wait until it is ready (tests, benchmarks, scripts).

Output goes to a log file (never an unread pipe, which would block the stack once full); the
ready banner is parsed from it with `parse_banner`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tools.local_stack.banner import StackInfo, parse_banner

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackProcess:
    """`python -m tools.local_stack ARGS` in the background; a context manager that stops it."""

    def __init__(self, args: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0
        self.ready_after_s: float | None = None
        """Wall time from launching the command to the ready banner, seconds."""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout_s: float = 60.0) -> StackInfo:
        """Launch and wait for the ready banner; RuntimeError (with the output) if it exits first."""
        env = dict(os.environ if self._env is None else self._env)
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.launched_at = time.perf_counter()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tools.local_stack", *self.args],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = parse_banner(self.output())
            if info is not None:
                self.ready_after_s = time.perf_counter() - self.launched_at
                return info
            if self._process.poll() is not None:
                raise RuntimeError(f"the stack exited with {self._process.returncode}:\n{self.output()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the stack was not ready within {timeout_s} s:\n{self.output()}")

    def wait(self, timeout_s: float) -> int:
        """Wait for the process to exit on its own; its exit code."""
        if self._process is None:
            raise RuntimeError("not started")
        return self._process.wait(timeout_s)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """Ctrl-C the stack (a clean stop with a final save); kill it if it does not exit in time."""
        if self._process is None or self._process.poll() is not None:
            return self._process.returncode if self._process else None
        self._process.send_signal(signal.SIGINT)
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait(5.0)

    def __enter__(self) -> StackProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
