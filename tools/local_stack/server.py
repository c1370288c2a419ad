"""HTTP/1.1 servers on 127.0.0.1 (stdlib), turning sockets into `HttpRequest`/`HttpResponse`.

Keep-alive with Nagle's algorithm disabled and an explicit Content-Length on every response
(without both, each request waits ~40 ms on delayed ACKs). Bodies above the API's 10 MB limit
are refused with 413 without being read; chunked request bodies are supported.
"""

from __future__ import annotations

import errno
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tools.local_stack.apigw import HttpRequest, HttpResponse, StreamBody, gateway_error
from tools.local_stack.gateway import MAX_PAYLOAD_BYTES

HOST = "127.0.0.1"
IDLE_TIMEOUT_S = 120.0
"""Idle keep-alive connections are closed after this many seconds."""


class PortInUse(Exception):
    """The port is taken; `port` says which."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} on {HOST} is already in use")
        self.port = port


class _TooLarge(Exception):
    pass


class LocalHttpServer(ThreadingHTTPServer):
    """A threading HTTP server bound to 127.0.0.1 that hands every request to `app`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    """Listen backlog. socketserver's default (5) resets connections when dozens of clients
    connect at once while the accept loop waits for the GIL."""

    def __init__(self, port: int, app: Callable[[HttpRequest], HttpResponse], name: str) -> None:
        self.app = app
        self.name = name
        self.closing = False
        """Set while stopping: every response closes its connection (keep-alive ends)."""
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(port) from exc
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=f"http:{self.name}", daemon=True
        )
        self._thread.start()

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already open are still answered."""
        self.closing = True
        if self._thread is not None:
            self.shutdown()  # waits for serve_forever, so only once it was started
            self._thread.join(5.0)
            self._thread = None
        self.socket.close()

    def stop(self) -> None:
        self.stop_accepting()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S
    server: LocalHttpServer

    def version_string(self) -> str:
        return "local-stack"

    def __getattr__(self, name: str) -> Any:
        # Every method (GET, POST, OPTIONS, DELETE...) goes through the same path.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        oversize = False
        try:
            body = self._read_body()
        except _TooLarge:
            # Answered without reading the body, so the connection cannot be reused.
            self.close_connection = True
            body, oversize = b"", True
        except ValueError as exc:
            self.close_connection = True
            self._send(gateway_error(400, f"Bad Request: {exc}"))
            return
        if self.path.startswith("/"):  # origin-form; urlsplit would read "//x" as a host
            raw_path, _, raw_query = self.path.partition("#")[0].partition("?")
        else:  # absolute-form (http://host/path), as sent to proxies
            parts = urlsplit(self.path)
            raw_path, raw_query = parts.path or "/", parts.query
        request = HttpRequest(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=tuple((k, v) for k, v in self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            oversize=oversize,
        )
        try:
            response = self.server.app(request)
        except Exception:  # a bug in the stack itself: answer like API Gateway, keep serving
            traceback.print_exc()
            response = gateway_error(500, "Internal Server Error")
        self._send(response, head=self.command == "HEAD")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise ValueError("invalid Content-Length") from None
        if length < 0:
            raise ValueError("invalid Content-Length")
        if length > MAX_PAYLOAD_BYTES:
            raise _TooLarge
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_PAYLOAD_BYTES:
                raise _TooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, response: HttpResponse, *, head: bool = False) -> None:
        if response.stream is not None:
            self._send_stream(response, response.stream, head=head)
            return
        try:
            self.send_response(response.status)
            has_length = False
            for name, value in response.headers:
                if name.lower() == "content-length":
                    if not head:
                        continue
                    has_length = True
                if name.lower() in ("connection", "transfer-encoding"):
                    continue
                self.send_header(name, value)
            if not has_length:
                self.send_header("Content-Length", str(len(response.body)))
            if self.server.closing or response.header("Connection") == "close":
                self.close_connection = True
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head and response.body:
                self.wfile.write(response.body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_stream(self, response: HttpResponse, stream: StreamBody, *, head: bool) -> None:
        """Write the head at once, then each piece as its own chunk (flushed: Nagle is off and
        the writer unbuffered). HTTP/1.0 clients get the body delimited by closing instead."""
        chunked = self.request_version == "HTTP/1.1"
        complete = False
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            if self.server.closing or not chunked or response.header("Connection") == "close":
                self.close_connection = True
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if head:
                complete = True
                return
            for piece in stream:
                if piece:  # an empty chunk would end the body
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            complete = True
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the client went away
        except Exception:
            pass  # the function failed mid-answer (the gateway logged it): the body stays cut off
        finally:
            stream.close()
            if not complete:
                self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # The access log is written by the stack from Gateway exchanges; http.server's own
        # per-request lines would duplicate it.
        return
