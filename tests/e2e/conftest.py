"""The local stack as a subprocess on free ports with a temporary state directory.

`local_stack` (one per module) yields a `RunningStack`: the URLs, the printed client key and
local AWS credentials, and helpers for plain and SigV4-signed calls. `start_local_stack`
starts extra instances (restart and port tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tools.local_stack.banner import StackInfo
from tools.local_stack.launcher import StackProcess, free_port

ROUTER = "smart-cheap-router"


@dataclass
class RunningStack:
    """A started stack and what it printed."""

    info: StackInfo
    process: StackProcess
    state_dir: Path
    api_port: int
    site_port: int

    @property
    def site_origin(self) -> str:
        return f"http://localhost:{self.site_port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client for the API, authenticated with the printed client key."""
        headers = {"Authorization": f"Bearer {self.info.client_key}", **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.info.api_url, headers=headers, timeout=30.0, **kwargs)

    def signed(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes = b"",
        secret: str | None = None,
        region: str | None = None,
        tamper: Callable[[dict[str, Any]], None] | None = None,
    ) -> httpx.Response:
        """Send a request signed by botocore (service execute-api) with the stack's credentials.

        `tamper` may change the prepared request (url, headers, body) after signing.
        """
        url = self.info.api_url.rstrip("/") + path + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url, data=body)
        credentials = Credentials(self.info.access_key_id, secret or self.info.secret_access_key)
        SigV4Auth(credentials, "execute-api", region or self.info.region).add_auth(request)
        prepared = request.prepare()
        parts: dict[str, Any] = {"url": prepared.url, "headers": dict(prepared.headers.items()), "body": body}
        if tamper is not None:
            tamper(parts)
        return httpx.request(method, parts["url"], headers=parts["headers"], content=parts["body"], timeout=30.0)

    def state(self) -> dict[str, Any]:
        """The signed GET /v1/state snapshot (asserts 200)."""
        response = self.signed("GET", "/v1/state")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def router_state(self, router: str = ROUTER) -> dict[str, Any]:
        (found,) = [r for r in self.state()["routers"] if r["router"] == router]
        return dict(found)


def start_local_stack(
    state_dir: Path, *, api_port: int | None = None, site_port: int | None = None, extra: tuple[str, ...] = ()
) -> RunningStack:
    """Start a stack (no synthetic traffic) and wait until it printed its ready banner."""
    api_port = api_port or free_port()
    site_port = site_port or free_port()
    args = [
        "--api-port",
        str(api_port),
        "--site-port",
        str(site_port),
        "--state-dir",
        str(state_dir),
        "--no-traffic",
        *extra,
    ]
    process = StackProcess(args, state_dir.parent / f"{state_dir.name}-output.log")
    info = process.start(timeout_s=60.0)
    return RunningStack(info=info, process=process, state_dir=state_dir, api_port=api_port, site_port=site_port)


@pytest.fixture
def start_stack() -> Iterator[Callable[..., RunningStack]]:
    """A factory for extra stacks; every stack it started is stopped at teardown."""
    started: list[RunningStack] = []

    def start(state_dir: Path, **kwargs: Any) -> RunningStack:
        stack = start_local_stack(state_dir, **kwargs)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.process.stop()


STACK_SEED = os.environ.get("ROUTER_TEST_SEED", "11")
"""Seeds the shared stack's router and simulated models (`--seed`); vary it to re-run the suite
under other draws (the learning tests assert what must hold whatever the draws)."""


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    base = tmp_path_factory.mktemp("local-stack")
    stack = start_local_stack(base / "state", extra=("--seed", STACK_SEED))
    try:
        yield stack
    finally:
        code = stack.process.stop()
        assert code == 0, f"the stack did not stop cleanly ({code}):\n{stack.process.output()}"
