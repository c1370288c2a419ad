"""Lambda execution environments as processes: several per function, each with its own state.

Like Lambda, an execution environment serves one request at a time and keeps its module state
(Powertools loggers and metrics, boto3 clients, caches) between requests; a function scales by
starting more environments, up to its concurrency limit (the template's
ReservedConcurrentExecutions, else the stack's default). Environments never share memory: each
is its own process, forked from a server that has already imported the heavy libraries (boto3,
Powertools, pydantic, httpx), so a cold start only imports the function's own code. A request
that finds every environment busy and the limit reached waits for one to free up.

An environment's environment variables are exactly the function's (plus the local AWS
endpoint and fake credentials); its stdout and stderr go to `<log dir>/<function>.log`, like a
CloudWatch log group. A request past the function's Timeout kills its environment, as Lambda
does. Environments idle for `IDLE_S` are stopped (one per function stays warm).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import multiprocessing
import os
import pkgutil
import runpy
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Generator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tools.local_stack.routes import FunctionSpec

IDLE_S = 300.0
"""An environment unused this long is stopped (the first one of each function stays)."""
INIT_TIMEOUT_S = 10.0
"""Lambda's init phase limit."""
PARALLEL_STARTS = 2
"""Environments starting at once, across functions: a start is CPU-bound (imports, clients),
so a burst of 32 at once on a small machine would push each past the init limit."""
_starts = threading.BoundedSemaphore(PARALLEL_STARTS)
PRELOAD = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "pydantic",
    "httpx",
    "yaml",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.validation",
    "aws_lambda_powertools.event_handler.openapi.params",
)
"""Imported once by the fork server, shared copy-on-write by every environment (with every
module of the functions' layers: see `preload_layers`)."""

_context: Any = None
_context_lock = threading.Lock()
_layer_modules: list[str] = []


def preload_layers(layer_dirs: list[Path]) -> None:
    """Have the fork server import every module of these layers too (call before the first start).

    Layer code is shared by every environment and imports no state of its own at import time,
    so importing it once makes each cold start only run the function's own module.
    """
    for layer in layer_dirs:
        for package in sorted(p for p in layer.iterdir() if (p / "__init__.py").is_file()):
            _layer_modules.append(package.name)
            for module in pkgutil.walk_packages([str(package)], prefix=f"{package.name}."):
                _layer_modules.append(module.name)


def _multiprocessing() -> Any:
    """The fork-server context (started on first use, with the heavy imports preloaded)."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([*PRELOAD, *_layer_modules])
            _context = context
        return _context


class FunctionError(Exception):
    """The function raised (Lambda reports an unhandled error); the traceback is in its log."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message


class FunctionTimeout(Exception):
    """The function ran longer than its configured Timeout (its environment was stopped)."""


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


def _enter_environment(settings: dict[str, Any]) -> None:
    """Make this process an execution environment: the function's variables, log and path."""
    os.environ.clear()
    os.environ.update(settings["environment"])
    if settings.get("log_path"):
        fd = os.open(settings["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
    for entry in reversed(settings["path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def _environment_main(
    conn: Connection,
    settings: dict[str, Any],
) -> None:
    """The body of one execution environment process: init, then invoke requests until EOF."""
    _enter_environment(settings)
    spec = settings["spec"]
    try:
        module_spec = importlib.util.spec_from_file_location(settings["module_name"], settings["module_file"])
        if module_spec is None or module_spec.loader is None:
            raise RuntimeError(f"cannot import {settings['module_file']}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[settings["module_name"]] = module
        module_spec.loader.exec_module(module)
        handler = getattr(module, settings["attribute"], None)
        if not callable(handler):
            raise RuntimeError(f"{settings['module_file']} has no callable {settings['attribute']!r}")
    except Exception as exc:
        traceback.print_exc()
        conn.send_bytes(json.dumps({"init_error": {"type": type(exc).__name__, "message": str(exc)}}).encode())
        return
    conn.send_bytes(b'{"ready": true}')
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the stack stopped (or died): Lambda freezes and later discards the sandbox
        if not data:
            return
        event = json.loads(data)
        context = LambdaContext(spec, settings["region"], settings["account_id"], clock=time.monotonic)
        try:
            result = handler(event, context)
            reply = json.dumps({"result": result})
        except Exception as exc:
            print(f"[ERROR] {type(exc).__name__}: {exc} (request {context.aws_request_id})", flush=True)
            traceback.print_exc()
            reply = json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}})
        except BaseException as exc:  # SystemExit and the like end the environment, as in Lambda
            conn.send_bytes(json.dumps({"error": {"type": "Runtime.ExitError", "message": repr(exc)}}).encode())
            return
        sys.stdout.flush()
        try:
            conn.send_bytes(reply.encode("utf-8"))
        except (BrokenPipeError, OSError):
            return


class ExecutionEnvironment:
    """One environment process and the pipe to it."""

    def __init__(self, function: str, process: Any, conn: Connection) -> None:
        self.function = function
        self.process = process
        self.conn = conn
        self.last_used = time.monotonic()
        self.invocations = 0

    def invoke(self, event: dict[str, Any], timeout_s: float) -> Any:
        self.invocations += 1
        try:
            self.conn.send_bytes(json.dumps(event).encode("utf-8"))
            if not self.conn.poll(timeout_s):
                self.kill()
                raise FunctionTimeout(f"{self.function} ran past its Timeout of {timeout_s:g} s")
            reply = json.loads(self.conn.recv_bytes())
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as exc:
            self.kill()
            raise FunctionError(self.function, "Runtime.ExitError", f"the environment exited ({exc})") from exc
        finally:
            self.last_used = time.monotonic()
        if "error" in reply:
            raise FunctionError(self.function, reply["error"]["type"], reply["error"]["message"])
        return reply["result"]

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join(2.0)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send_bytes(b"")
        self.process.join(2.0)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()


def _web_environment_main(conn: Connection, settings: dict[str, Any]) -> None:
    """The body of one Lambda Web Adapter environment: run the startup module (`python -m`).

    The server it starts takes one connection per invocation (the gateway relays each request
    on a fresh one); when a connection's handling ends, the client port is reported on `conn`,
    so the stack knows the invocation is over (the adapter knows it when the response ends).
    """
    _enter_environment(settings)
    original = socketserver.ThreadingMixIn.process_request_thread
    lock = threading.Lock()

    def reporting(server: Any, request: Any, client_address: Any) -> None:
        try:
            original(server, request, client_address)
        finally:
            with lock, contextlib.suppress(OSError):
                conn.send_bytes(str(client_address[1]).encode("ascii"))

    socketserver.ThreadingMixIn.process_request_thread = reporting  # type: ignore[method-assign,assignment]

    def exit_with_the_stack() -> None:
        with contextlib.suppress(EOFError, OSError):
            conn.recv_bytes()  # nothing is ever sent: this returns when the stack closes its end or dies
        os._exit(0)

    threading.Thread(target=exit_with_the_stack, name="stack-watch", daemon=True).start()
    try:
        runpy.run_module(settings["web_module"], run_name="__main__", alter_sys=True)
    except BaseException:
        traceback.print_exc()
        raise


class StreamedResult:
    """A web function's response: the head at once, then the body as it is written."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: Generator[bytes, None, None]) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class WebEnvironment:
    """One Lambda Web Adapter environment: a process serving HTTP on a 127.0.0.1 port."""

    def __init__(self, function: str, process: Any, conn: Connection, port: int) -> None:
        self.function = function
        self.process = process
        self.conn = conn
        self.port = port
        self.last_used = time.monotonic()
        self.invocations = 0
        self._finished: set[int] = set()

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def wait_finished(self, client_port: int, timeout_s: float) -> bool:
        """True once the server is done with the connection from `client_port`."""
        deadline = time.monotonic() + timeout_s
        while client_port not in self._finished:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or not self.conn.poll(remaining):
                    return False
                self._finished.add(int(self.conn.recv_bytes()))
            except (EOFError, OSError, ValueError):
                return False
        self._finished.discard(client_port)
        return True

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join(2.0)
        self.conn.close()

    def stop(self) -> None:
        self.kill()  # a web server has no clean stop signal; nothing is in flight when this runs


Environment = ExecutionEnvironment | WebEnvironment
_LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"
"""SO_LINGER on, 0 s: closing sends a reset, so the peer's next write fails at once."""
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(port: int, path: str) -> bool:
    """The adapter's readiness check: True once GET `path` gets an HTTP answer."""
    connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        connection.request("GET", path)
        return connection.getresponse().status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class LocalFunction:
    """One Lambda function: up to `concurrency` execution environments, started on demand."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        region: str,
        account_id: str,
        log_dir: Path,
        environment: dict[str, str],
        concurrency: int,
        logs_to_console: bool = False,
    ) -> None:
        self.spec = spec
        self.concurrency = max(1, concurrency)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{spec.logical_id}.log"
        self._settings: dict[str, Any] = {
            "environment": environment,
            "log_path": None if logs_to_console else str(self.log_path),
            "path": [str(p) for p in (*spec.layer_dirs, spec.code_dir)],
            "module_name": f"_local_lambda_{spec.logical_id}_{spec.module.replace('.', '_')}",
            "module_file": str(self._module_file()) if spec.web_module is None else "",
            "web_module": spec.web_module,
            "attribute": spec.attribute,
            "spec": spec,
            "region": region,
            "account_id": account_id,
        }
        self._idle: list[Environment] = []
        self._count = 0  # environments alive or starting
        self._available = threading.Condition()
        self._closed = False
        self.invocations = 0
        self.errors = 0
        self.cold_starts = 0
        self.init_seconds: list[float] = []
        self.peak_environments = 0

    def _module_file(self) -> Path:
        base = self.spec.code_dir / Path(*self.spec.module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        raise RuntimeError(
            f"{self.spec.logical_id}: handler {self.spec.handler!r} not found in {self.spec.code_dir} "
            f"(expected {base.with_suffix('.py').name})"
        )

    def load(self) -> None:
        """Start the first environment (a cold start); raises RuntimeError if its init fails."""
        with self._available:
            self._count += 1
        try:
            environment = self._start_environment()
        except Exception:
            with self._available:
                self._count -= 1
            raise
        self._release(environment)

    def _start_environment(self) -> Environment:
        with _starts:
            return self._start_one() if self.spec.web_module is None else self._start_web()

    def _start_web(self) -> WebEnvironment:
        """Start the web server as the Lambda Web Adapter would, and wait for its readiness check."""
        started = time.monotonic()
        port = _free_port()
        settings = dict(self._settings)
        settings["environment"] = {**self._settings["environment"], "AWS_LWA_PORT": str(port), "PORT": str(port)}
        context = _multiprocessing()
        parent, child = context.Pipe()
        process = context.Process(
            target=_web_environment_main, args=(child, settings), name=f"lambda:{self.spec.logical_id}", daemon=True
        )
        process.start()
        child.close()
        environment = WebEnvironment(self.spec.logical_id, process, parent, port)
        while not _answers(port, self.spec.readiness_path):
            if not environment.alive:
                environment.kill()
                raise RuntimeError(f"{self.spec.logical_id}: the web server exited during init (see {self.log_path})")
            if time.monotonic() - started > INIT_TIMEOUT_S:
                environment.kill()
                raise RuntimeError(f"{self.spec.logical_id}: init took longer than {INIT_TIMEOUT_S:g} s")
            time.sleep(0.01)  # the adapter retries its readiness check every 10 ms
        self.cold_starts += 1
        self.init_seconds.append(time.monotonic() - started)
        return environment

    def _start_one(self) -> ExecutionEnvironment:
        started = time.monotonic()
        context = _multiprocessing()
        parent, child = context.Pipe()
        process = context.Process(
            target=_environment_main,
            args=(child, self._settings),
            name=f"lambda:{self.spec.logical_id}",
            daemon=True,
        )
        process.start()
        child.close()
        environment = ExecutionEnvironment(self.spec.logical_id, process, parent)
        if not parent.poll(INIT_TIMEOUT_S):
            environment.kill()
            raise RuntimeError(f"{self.spec.logical_id}: init took longer than {INIT_TIMEOUT_S:g} s")
        try:
            ready = json.loads(parent.recv_bytes())
        except (EOFError, OSError) as exc:
            environment.kill()
            raise RuntimeError(f"{self.spec.logical_id}: the environment exited during init") from exc
        if "init_error" in ready:
            environment.kill()
            error = ready["init_error"]
            raise RuntimeError(f"{self.spec.logical_id}: init failed: {error['type']}: {error['message']}")
        self.cold_starts += 1
        self.init_seconds.append(time.monotonic() - started)
        return environment

    def _acquire(self) -> Environment:
        with self._available:
            while True:
                if self._closed:
                    raise FunctionError(self.spec.logical_id, "Runtime.Stopped", "the stack is stopping")
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive:
                        return environment
                    self._count -= 1
                if self._count < self.concurrency:
                    self._count += 1
                    self.peak_environments = max(self.peak_environments, self._count)
                    break
                self._available.wait()
        try:
            return self._start_environment()
        except Exception as exc:
            with self._available:
                self._count -= 1
                self._available.notify()
            raise FunctionError(self.spec.logical_id, "Runtime.InitError", str(exc)) from exc

    def _release(self, environment: Environment) -> None:
        with self._available:
            if not environment.alive or self._closed:
                self._count -= 1
                if environment.alive:
                    environment.stop()
            else:
                self._idle.append(environment)
                self._reap_idle()
            self._available.notify()

    def _reap_idle(self) -> None:
        now = time.monotonic()
        keep = [e for e in self._idle if now - e.last_used < IDLE_S]
        stale = [e for e in self._idle if now - e.last_used >= IDLE_S]
        while stale and not keep and self._count - len(stale) < 1:
            keep.append(stale.pop())  # one stays warm
        for environment in stale:
            environment.stop()
            self._count -= 1
        self._idle = keep

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on `event` in a free environment (a new one if none is free and the
        limit allows, else wait). Raises FunctionError or FunctionTimeout.
        """
        if self.spec.web_module is not None:
            raise FunctionError(self.spec.logical_id, "Runtime.InvalidEntrypoint", "served over HTTP (web adapter)")
        environment = self._acquire()
        assert isinstance(environment, ExecutionEnvironment)
        self.invocations += 1
        try:
            return environment.invoke(event, float(self.spec.timeout_s))
        except (FunctionError, FunctionTimeout):
            self.errors += 1
            raise
        finally:
            self._release(environment)

    def stream(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, request_id: str
    ) -> StreamedResult:
        """Relay one HTTP request to a free web environment, as the Lambda Web Adapter does.

        Returns once the head arrived; the body yields what the server writes, as it writes it.
        Closing the body early (the client went away) resets the connection to the server, which
        then stops its handler; the environment is reused once the server is done with it. Past
        the function's Timeout the environment is killed and the body ends. Raises
        FunctionError or FunctionTimeout before the head.
        """
        environment = self._acquire()
        assert isinstance(environment, WebEnvironment)
        self.invocations += 1
        environment.invocations += 1
        deadline = time.monotonic() + self.spec.timeout_s
        context = LambdaContext(self.spec, self._settings["region"], self._settings["account_id"], clock=time.monotonic)
        lambda_context = {  # what the adapter sends in x-amzn-lambda-context
            "request_id": request_id,
            "deadline": int((time.time() + self.spec.timeout_s) * 1000),
            "invoked_function_arn": context.invoked_function_arn,
            "xray_trace_id": None,
            "client_context": None,
            "identity": None,
            "env_config": {
                "function_name": self.spec.name,
                "memory": self.spec.memory_mb,
                "version": "$LATEST",
                "log_stream": context.log_stream_name,
                "log_group": context.log_group_name,
            },
        }
        connection = http.client.HTTPConnection(HOST, environment.port, timeout=self.spec.timeout_s)
        try:
            connection.connect()
            sock: socket.socket = connection.sock  # kept: http.client hands it to the response
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client_port = int(sock.getsockname()[1])
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.putheader("x-amzn-lambda-context", json.dumps(lambda_context))
            connection.putheader("Content-Length", str(len(body)))
            connection.putheader("Connection", "close")
            connection.endheaders(body)
            response = connection.getresponse()
        except TimeoutError as exc:
            self.errors += 1
            connection.close()
            environment.kill()
            self._release(environment)
            raise FunctionTimeout(f"{self.spec.logical_id} ran past its Timeout of {self.spec.timeout_s} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.errors += 1
            connection.close()
            environment.kill()
            self._release(environment)
            raise FunctionError(self.spec.logical_id, "Runtime.ExitError", f"the web server failed ({exc})") from exc

        def pieces() -> Generator[bytes, None, None]:
            complete = False
            try:
                while True:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                    data = response.read1(65536)
                    if not data:
                        complete = True
                        return
                    yield data
            except TimeoutError as exc:
                self.errors += 1
                environment.kill()
                message = f"{self.spec.logical_id} ran past its Timeout of {self.spec.timeout_s} s"
                raise FunctionTimeout(message) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.errors += 1
                environment.kill()
                raise FunctionError(self.spec.logical_id, "Runtime.ExitError", f"the answer broke off ({exc})") from exc
            finally:
                if not complete and environment.alive:
                    # The client went away: a reset tells the server at its next write.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                response.close()
                sock.close()
                connection.close()
                self._settle(environment, client_port, deadline)

        return StreamedResult(response.status, response.getheaders(), pieces())

    def _settle(self, environment: WebEnvironment, client_port: int, deadline: float) -> None:
        """Give `environment` back once its server finished the request (in the background if it
        has not yet: a stopped stream may still be closing its handler)."""
        if not environment.alive or environment.wait_finished(client_port, 0.5):
            environment.last_used = time.monotonic()
            self._release(environment)
            return

        def wait() -> None:
            if not environment.wait_finished(client_port, max(0.0, deadline - time.monotonic())):
                environment.kill()  # past the function's Timeout, as Lambda would
            environment.last_used = time.monotonic()
            self._release(environment)

        threading.Thread(target=wait, name=f"settle:{self.spec.logical_id}", daemon=True).start()

    def close(self) -> None:
        """Stop every environment (waits for none: call after in-flight requests finished)."""
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._available.notify_all()
        for environment in idle:
            environment.stop()
