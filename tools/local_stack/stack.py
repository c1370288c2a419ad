"""Starts and stops every part of the local stack, in dependency order.

Start: bind the ports (fail fast), load the template, isolate the AWS environment, start moto
and create the table and queues, recover the saved state (snapshot + journal), start
journaling, serve DynamoDB/SQS to the functions' processes, start one execution environment
per function, make sure a client key exists, then serve.

Stop (Ctrl-C, SIGTERM): stop the demo traffic, stop accepting connections and answer any new
request with 503 `shutting_down`, let in-flight requests finish, stop the SQS pollers, the
sweeper and the journal (every acknowledged write is already on disk), then the environments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tools.local_stack import aws
from tools.local_stack.apigw import HttpRequest, HttpResponse
from tools.local_stack.aws_endpoint import AwsEndpoint
from tools.local_stack.banner import StackInfo, format_banner
from tools.local_stack.credentials import load_or_create_credential, save_client_key, saved_client_key
from tools.local_stack.gateway import Exchange, Gateway
from tools.local_stack.pages import SitePages, site_config
from tools.local_stack.persistence import STATE_FILE, DurableState
from tools.local_stack.routes import ApiSpec, FunctionSpec, read_api
from tools.local_stack.runtime import LocalFunction, preload_layers
from tools.local_stack.server import HOST, LocalHttpServer
from tools.local_stack.sigv4 import Credential, SigV4Verifier
from tools.local_stack.sqs_poller import SqsPoller
from tools.local_stack.sweeper import TtlSweeper
from tools.local_stack.template import StackTemplate
from tools.local_stack.upstream_config import write_upstream_config

CLIENT_KEY_NAME = "local"
_INHERITED = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH"})
"""Variables of the stack's own environment a function's process also gets (Lambda sets these too)."""
UPSTREAM_CONFIG_FILE = "routers.upstream.yaml"


@dataclass
class StackOptions:
    """Everything the command line can change (defaults are `make run`'s)."""

    repo_root: Path
    api_port: int = 3000
    site_port: int = 8080
    state_dir: Path = Path(".local")
    traffic: bool = True
    same_origin: bool = False
    upstream_url: str | None = None
    upstream_key_env: str | None = None
    config_path: Path | None = None
    region: str = "us-east-1"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    function_logs_to_console: bool = False
    access_log: bool = True
    sweep_interval_s: float = 30.0
    concurrency: int = 32
    """Execution environments per function at most (the template's reserved concurrency wins)."""
    fsync: bool = True
    """Journal records are fsynced before a write is acknowledged (False: survive a process
    crash, not a power loss)."""
    compact_every_mb: float = 4.0
    """The journal is folded into the snapshot each time this much was written."""
    final_snapshot_timeout_s: float = 10.0
    """A clean stop folds the journal into the snapshot unless that takes longer (then the next
    start replays the journal: nothing is lost either way)."""
    drain_timeout_s: float = 35.0
    """How long a stop waits for in-flight requests (the API's 30 s integration timeout + 5)."""
    traffic_rounds: int = 300
    traffic_rate: float = 1.0
    seed: int | None = None
    """Seeds the router's decisions, the simulated models and the demo traffic (reproducible runs)."""


class LocalStack:
    """The running stack. `start()` returns once it serves; `stop()` is safe to call once started."""

    def __init__(
        self,
        options: StackOptions,
        *,
        out: IO[str] = sys.stdout,
        err: IO[str] = sys.stderr,
        started_at: float | None = None,
    ) -> None:
        self.options = options
        self._out = out
        self._err = err
        self._started_at = time.perf_counter() if started_at is None else started_at
        self.state_dir = options.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        self._servers: list[LocalHttpServer] = []
        self._functions: dict[str, LocalFunction] = {}
        self._pollers: list[SqsPoller] = []
        self._sweeper: TtlSweeper | None = None
        self._durable: DurableState | None = None
        self._endpoint: AwsEndpoint | None = None
        self._gateway: Gateway | None = None
        self._moto = aws.MotoSession()
        self._traffic: subprocess.Popen[bytes] | None = None
        self._traffic_log: IO[bytes] | None = None
        self._print_lock = threading.Lock()
        self._passed_env: set[str] = set()
        self.info: StackInfo | None = None
        self.notes: list[str] = []

    # -- output

    def say(self, text: str) -> None:
        with self._print_lock:
            self._out.write(text + "\n")
            self._out.flush()

    def warn(self, text: str) -> None:
        with self._print_lock:
            self._err.write(f"! {text}\n")
            self._err.flush()

    # -- start

    def start(self) -> StackInfo:
        """Bring everything up; raises PortInUse, TemplateError, ConfigError or RuntimeError."""
        opts = self.options
        api_server = LocalHttpServer(opts.api_port, _unavailable, "api")
        self._servers.append(api_server)
        site_server = None
        if not opts.same_origin:
            site_server = LocalHttpServer(opts.site_port, _unavailable, "site")
            self._servers.append(site_server)
        self.state_dir.mkdir(parents=True, exist_ok=True)

        api_url = f"http://{HOST}:{api_server.port}/"
        if site_server is not None:
            site_base = f"http://localhost:{site_server.port}/"
            site_origins = [f"http://localhost:{site_server.port}", f"http://{HOST}:{site_server.port}"]
        else:
            site_base = api_url
            site_origins = [f"http://{HOST}:{api_server.port}", f"http://localhost:{api_server.port}"]

        template = StackTemplate.load(
            opts.repo_root / "template.yaml",
            region=opts.region,
            parameter_overrides=opts.parameter_overrides,
            cache_dir=self.state_dir / "cache",
        )
        spec = read_api(template, site_origins)
        credential = load_or_create_credential(self.state_dir, template.account_id)

        self._prepare_environment(spec)
        from router_core.config import load_config

        config = load_config()
        # Keys a provider reads from the environment (api_key_env): the functions' processes need them.
        self._passed_env = {
            name
            for provider in config.providers.values()
            if (name := getattr(provider, "api_key_env", None)) and name in os.environ
        }

        self._moto.start()
        dynamodb = self._moto.client("dynamodb", opts.region)
        sqs = self._moto.client("sqs", opts.region)
        resources = aws.create_resources(template, dynamodb, sqs)
        self._check_environment(spec, resources)
        tables = list(resources.tables.values())
        self._durable = DurableState(
            self.state_dir,
            tables,
            list(resources.queues.values()),
            opts.region,
            fsync=opts.fsync,
            segment_bytes=int(opts.compact_every_mb * 1024 * 1024),
            on_error=self.warn,
        )
        recovery = self._durable.recover()
        self._durable.start()  # from here on every write is journaled
        self._sweeper = TtlSweeper(
            dynamodb, tables, region=opts.region, interval_s=opts.sweep_interval_s, on_error=self.warn
        )
        swept = self._sweeper.sweep_once()
        if recovery.snapshot_items or recovery.journal_records:
            self.notes.append(
                f"restored {recovery.snapshot_items} items and {recovery.journal_records} journaled writes "
                f"from {self.state_dir} in {recovery.seconds:.1f} s ({swept} expired)"
            )
        self._endpoint = AwsEndpoint(opts.region)
        self._endpoint.start()

        self._load_functions(spec, template)
        client_key = self._client_key()

        pages = SitePages(
            opts.repo_root / "static_site",
            _default_root_object(template),
            lambda: site_config(
                api_url,
                opts.region,
                list(config.routers),
                {
                    "accessKeyId": credential.access_key_id,
                    "secretAccessKey": credential.secret_access_key,
                    "clientKey": client_key,
                },
            ),
        )
        gateway = self._gateway = Gateway(
            spec,
            self._functions,
            SigV4Verifier([credential], opts.region),
            account_id=template.account_id,
            fallback=pages.respond if opts.same_origin else None,
            on_exchange=self._access_log if opts.access_log else None,
            on_error=self.warn,
            before_response=self._durable.barrier,
        )
        api_server.app = gateway.handle
        if site_server is not None:
            site_server.app = pages.serve

        for trigger in spec.triggers:
            if not trigger.enabled:
                continue
            queue = resources.queues[trigger.queue]
            function = self._functions[trigger.function]
            poller = SqsPoller(
                sqs=sqs,
                queue_url=queue.url,
                queue_arn=queue.arn,
                region=opts.region,
                invoke=function.invoke,
                batch_size=trigger.batch_size,
                batching_window_s=trigger.batching_window_s,
                report_batch_item_failures=trigger.report_batch_item_failures,
                on_error=self.warn,
            )
            aws.add_listener(poller.on_aws_call)
            self._pollers.append(poller)

        for server in self._servers:
            server.start()
        for poller in self._pollers:
            poller.start()
        self._sweeper.start()

        self.info = StackInfo(
            api_url=api_url,
            dashboard_url=site_base + _output_path(template, "DashboardUrl", _default_root_object(template)),
            chat_url=site_base + _output_path(template, "ChatUrl", "chat.html"),
            client_key=client_key,
            access_key_id=credential.access_key_id,
            secret_access_key=credential.secret_access_key,
            region=opts.region,
            state_dir=str(self.state_dir),
            ready_s=time.perf_counter() - self._started_at,
        )
        if opts.traffic:
            self._start_traffic(api_url, client_key, credential)
        self.say(
            format_banner(
                self.info,
                python=_display_python(opts.repo_root),
                router=next(iter(config.routers)),
                log_dir=str(self.log_dir) + "/",
                notes=self.notes,
            )
        )
        return self.info

    def _prepare_environment(self, spec: ApiSpec) -> None:
        """Set the environment every function sees, before anything imports boto3 clients."""
        opts = self.options
        aws.isolate_environment(opts.region)
        merged: dict[str, str] = {}
        for fn in spec.functions.values():
            for key, value in fn.environment.items():
                merged.setdefault(key, value)
        os.environ.update(merged)  # the stack's own calls (the client key) use the same names
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon locally
        if opts.seed is not None:
            os.environ["ROUTER_SEED"] = str(opts.seed)  # read by router_core.runtime
        else:
            os.environ.pop("ROUTER_SEED", None)
        layer_dirs = {d for fn in spec.functions.values() for d in fn.layer_dirs}
        for entry in sorted(layer_dirs, key=str):
            if str(entry) not in sys.path:
                sys.path.insert(0, str(entry))
        config_path = opts.config_path.resolve() if opts.config_path else None
        if opts.upstream_url:
            generated = write_upstream_config(
                config_path, opts.upstream_url, opts.upstream_key_env, self.state_dir / UPSTREAM_CONFIG_FILE
            )
            os.environ["ROUTER_CONFIG_PATH"] = str(generated)
            self.notes.append(f"every model is served by {opts.upstream_url} (config: {generated})")
            if opts.upstream_key_env and not os.environ.get(opts.upstream_key_env):
                self.notes.append(f"{opts.upstream_key_env} is not set: upstream calls will fail")
        elif config_path is not None:
            os.environ["ROUTER_CONFIG_PATH"] = str(config_path)

    @staticmethod
    def _check_environment(spec: ApiSpec, resources: aws.Resources) -> None:
        names = {t.name for t in resources.tables.values()}
        urls = {q.url for q in resources.queues.values()}
        for fn in spec.functions.values():
            table = fn.environment.get("TABLE_NAME")
            queue = fn.environment.get("SIGNAL_QUEUE_URL")
            if table is not None and table not in names:
                raise RuntimeError(f"{fn.logical_id}: TABLE_NAME {table} is not a table moto created ({names})")
            if queue is not None and queue not in urls:
                raise RuntimeError(f"{fn.logical_id}: SIGNAL_QUEUE_URL {queue} is not a queue moto created ({urls})")

    def _function_environment(self, fn: FunctionSpec) -> dict[str, str]:
        """What a function's process sees: its template variables, Lambda's, and the local AWS."""
        assert self._endpoint is not None
        env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("AWS_")}
        env.update({k: os.environ[k] for k in ("ROUTER_SEED", "ROUTER_CONFIG_PATH") if k in os.environ})
        env.update({k: os.environ[k] for k in self._passed_env})
        env.update(fn.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_ENDPOINT_URL_DYNAMODB": self._endpoint.url,
                "AWS_ENDPOINT_URL_SQS": self._endpoint.url,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _load_functions(self, spec: ApiSpec, template: StackTemplate) -> None:
        preload_layers(sorted({d for fn in spec.functions.values() for d in fn.layer_dirs}, key=str))
        functions = {
            logical_id: LocalFunction(
                fn_spec,
                region=self.options.region,
                account_id=template.account_id,
                log_dir=self.log_dir,
                environment=self._function_environment(fn_spec),
                concurrency=fn_spec.reserved_concurrency or self.options.concurrency,
                logs_to_console=self.options.function_logs_to_console,
            )
            for logical_id, fn_spec in spec.functions.items()
        }
        self._functions.update(functions)
        errors: list[BaseException] = []

        def cold_start(function: LocalFunction) -> None:
            try:
                function.load()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=cold_start, args=(f,)) for f in functions.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _client_key(self) -> str:
        from router_core.keys import create_client_key, hash_key
        from router_core.store import RouterStore

        store = RouterStore()
        key = saved_client_key(self.state_dir)
        if key is not None and store.get_client_key(hash_key(key)) is not None:
            return key
        key = create_client_key(store, CLIENT_KEY_NAME)
        save_client_key(self.state_dir, key, CLIENT_KEY_NAME)
        return key

    def _start_traffic(self, api_url: str, client_key: str, credential: Credential) -> None:
        root = self.options.repo_root
        if not (root / "tools" / "traffic.py").is_file():
            self.notes.append("tools/traffic.py not found: no synthetic traffic (the dashboard moves as you chat)")
            return
        log_path = self.log_dir / "traffic.log"
        self._traffic_log = log_path.open("ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "layers" / "router_core")])
        # The local IAM user, so the tool can read the signed GET /v1/state (secret via env, not argv).
        env["AWS_ACCESS_KEY_ID"] = credential.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = credential.secret_access_key
        self._traffic = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.traffic",
                "--api-url",
                api_url.rstrip("/"),
                "--api-key",
                client_key,
                "--rounds",
                str(self.options.traffic_rounds),
                "--rate",
                str(self.options.traffic_rate),
                # A dissatisfied follow-up on failure: the demo then learns from both sides.
                "--negative-signals",
                *(["--seed", str(self.options.seed)] if self.options.seed is not None else []),
            ],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._traffic_log,
            stderr=subprocess.STDOUT,
        )
        self.notes.append(
            f"synthetic traffic: {self.options.traffic_rounds} sessions, {self.options.traffic_rate:g} s apart "
            f"(log: {log_path}; --no-traffic to disable)"
        )

    # -- running

    def _access_log(self, exchange: Exchange) -> None:
        response = exchange.response
        extra = []
        for header, label in (("x-router-model", "model"), ("x-router-request-type", "type")):
            value = response.header(header)
            if value:
                extra.append(f"{label}={value}")
        route = exchange.route.route_key if exchange.route else f"{exchange.request.method} {exchange.request.raw_path}"
        self.say(
            f"{time.strftime('%H:%M:%S')}  {response.status}  {exchange.elapsed_ms:7.1f} ms  {route}  {' '.join(extra)}"
        )

    def status(self) -> dict[str, Any]:
        """Counters for tests and the shutdown summary."""
        return {
            "invocations": {k: f.invocations for k, f in self._functions.items()},
            "errors": {k: f.errors for k, f in self._functions.items()},
            "environments": {k: f.peak_environments for k, f in self._functions.items()},
            "cold_starts": {k: f.cold_starts for k, f in self._functions.items()},
            "sqs": [p.stats for p in self._pollers],
            "swept": self._sweeper.deleted if self._sweeper else 0,
            "compactions": self._durable.stats.compactions if self._durable else 0,
        }

    # -- stop

    def stop(self) -> None:
        """Stop gracefully: no new requests, in-flight ones finish, every write already durable."""
        if self._traffic is not None and self._traffic.poll() is None:
            self._traffic.send_signal(signal.SIGINT)  # the tool prints its summary when interrupted
            try:
                self._traffic.wait(5.0)
            except subprocess.TimeoutExpired:
                self._traffic.kill()
                self._traffic.wait(5.0)
        if self._traffic_log is not None:
            self._traffic_log.close()
        if self._gateway is not None:
            self._gateway.drain()
        for server in self._servers:
            server.stop_accepting()
        if self._gateway is not None and not self._gateway.wait_idle(self.options.drain_timeout_s):
            self.warn(f"requests still running after {self.options.drain_timeout_s:g} s; stopping anyway")
        for poller in self._pollers:
            aws.remove_listener(poller.on_aws_call)
            poller.stop()
        if self._sweeper is not None:
            self._sweeper.stop()
        for function in self._functions.values():
            function.close()
        if self._endpoint is not None:
            self._endpoint.stop()
        for server in self._servers:
            server.stop()
        if self._durable is not None:
            self._durable.stop(compact_timeout_s=self.options.final_snapshot_timeout_s)
            self.say(f"State saved in {self.state_dir} ({STATE_FILE} and journal/)")
        self._moto.stop()


def _unavailable(_request: HttpRequest) -> HttpResponse:
    # Answers between bind and ready (the sockets exist so a taken port fails fast).
    from tools.local_stack.apigw import gateway_error

    return gateway_error(503, "Service Unavailable")


def _default_root_object(template: StackTemplate) -> str:
    for logical_id in template.of_type("AWS::CloudFront::Distribution"):
        config = template.properties(logical_id).get("DistributionConfig") or {}
        if config.get("DefaultRootObject"):
            return str(config["DefaultRootObject"])
    return "index.html"


def _output_path(template: StackTemplate, output: str, default: str) -> str:
    """The path (without its leading /) of a site URL the template outputs, e.g. dashboard.html."""
    spec = template.outputs.get(output)
    if not isinstance(spec, dict) or "Value" not in spec:
        return default
    return urlsplit(str(template.resolve(spec["Value"]))).path.lstrip("/") or default


def _display_python(repo_root: Path) -> str:
    venv_python = repo_root / ".venv" / "bin" / "python"
    try:
        return str(venv_python.relative_to(Path.cwd())) if venv_python.exists() else sys.executable
    except ValueError:
        return str(venv_python)


def make_stop_event() -> tuple[threading.Event, Callable[[int, Any], None]]:
    """An event set by SIGINT/SIGTERM, and the signal handler that sets it."""
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    return stop, handler
