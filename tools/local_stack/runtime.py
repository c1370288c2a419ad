"""Lambda functions run in-process: one module and one lock per function.

A deployed execution environment serves one request at a time, and Powertools resolvers keep
the current event on the app object, so each function here has a lock: requests to the same
function queue, requests to different functions run in parallel.

Each function's module is imported once under a private name (every function's handler file
is `app.py`), with its code directory and its layers on `sys.path`, after the environment is
set. What a function prints (Powertools logs, metrics) goes to `<log dir>/<function>.log`,
like a CloudWatch log group, so the console stays readable.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from tools.local_stack.routes import FunctionSpec


class FunctionError(Exception):
    """The function raised (Lambda reports an unhandled error); the traceback is in its log."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message


class FunctionTimeout(Exception):
    """The function ran longer than its configured Timeout (Lambda would have stopped it)."""


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes handlers use)."""

    def __init__(self, spec: FunctionSpec, region: str, account_id: str, *, clock: Callable[[], float]) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{spec.name}"
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._clock = clock
        self._deadline = clock() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout (never negative)."""
        return max(0, int((self._deadline - self._clock()) * 1000))


class FunctionOutput(io.TextIOBase):
    """Installed as sys.stdout: text a thread writes while it runs a function goes to that
    function's log (Powertools logs and metrics write to stdout); other text goes to the
    original stream. Warnings and tracebacks on stderr stay on the console.
    """

    def __init__(self, fallback: TextIO) -> None:
        super().__init__()
        self._fallback = fallback
        self._local = threading.local()

    def bind(self, sink: TextIO | None) -> TextIO | None:
        """Route this thread's writes to `sink` (None: back to the fallback); returns the previous sink."""
        previous: TextIO | None = getattr(self._local, "sink", None)
        self._local.sink = sink
        return previous

    def _target(self) -> TextIO:
        sink: TextIO | None = getattr(self._local, "sink", None)
        return sink if sink is not None else self._fallback

    def write(self, text: str) -> int:
        target = self._target()
        written = target.write(text)
        if target is not self._fallback:
            target.flush()
        return written

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._fallback, "encoding", "utf-8")

    def isatty(self) -> bool:
        return False


class LocalFunction:
    """One Lambda function: its module (imported once) and the lock of its execution environment."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        region: str,
        account_id: str,
        log_dir: Path,
        output: FunctionOutput | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._region = region
        self._account_id = account_id
        self._output = output
        self._clock = clock
        self._lock = threading.Lock()
        self._handler: Callable[[dict[str, Any], Any], Any] | None = None
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{spec.logical_id}.log"
        self._log: TextIO = self.log_path.open("a", encoding="utf-8", buffering=1)
        self.invocations = 0
        self.errors = 0

    def load(self) -> None:
        """Import the handler module (cold start). The environment must already be set."""
        module_path = self._module_file()
        for entry in (*self.spec.layer_dirs, self.spec.code_dir):
            if str(entry) not in sys.path:
                sys.path.insert(0, str(entry))
        name = f"_local_lambda_{self.spec.logical_id}_{self.spec.module.replace('.', '_')}"
        module_spec = importlib.util.spec_from_file_location(name, module_path)
        if module_spec is None or module_spec.loader is None:
            raise RuntimeError(f"{self.spec.logical_id}: cannot import {module_path}")
        module: ModuleType = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        previous = self._bind_output()
        try:
            module_spec.loader.exec_module(module)
        finally:
            self._unbind_output(previous)
        handler = getattr(module, self.spec.attribute, None)
        if not callable(handler):
            raise RuntimeError(f"{self.spec.logical_id}: {module_path} has no callable {self.spec.attribute!r}")
        self._handler = handler

    def _module_file(self) -> Path:
        base = self.spec.code_dir / Path(*self.spec.module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        raise RuntimeError(
            f"{self.spec.logical_id}: handler {self.spec.handler!r} not found in {self.spec.code_dir} "
            f"(expected {base.with_suffix('.py').name})"
        )

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on `event` with a fresh context; one invocation at a time per function.

        Raises FunctionError when the handler raises, FunctionTimeout when it ran past Timeout.
        """
        if self._handler is None:
            raise RuntimeError(f"{self.spec.logical_id} is not loaded")
        with self._lock:
            self.invocations += 1
            context = LambdaContext(self.spec, self._region, self._account_id, clock=self._clock)
            started = self._clock()
            previous = self._bind_output()
            try:
                result = self._handler(event, context)
            except Exception as exc:
                self.errors += 1
                self._log.write(
                    f"[ERROR] {type(exc).__name__}: {exc} (request {context.aws_request_id})\n"
                    + "".join(traceback.format_exception(exc))
                )
                raise FunctionError(self.spec.logical_id, type(exc).__name__, str(exc)) from exc
            finally:
                self._unbind_output(previous)
            elapsed = self._clock() - started
            if elapsed > self.spec.timeout_s:
                self.errors += 1
                self._log.write(f"Task timed out after {elapsed:.2f} seconds (request {context.aws_request_id})\n")
                raise FunctionTimeout(f"{self.spec.logical_id} ran {elapsed:.1f} s, Timeout is {self.spec.timeout_s} s")
            return result

    def _bind_output(self) -> TextIO | None:
        return self._output.bind(self._log) if self._output is not None else None

    def _unbind_output(self, previous: TextIO | None) -> None:
        if self._output is not None:
            self._output.bind(previous)

    def close(self) -> None:
        self._log.close()
