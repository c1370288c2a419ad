"""`python -m tools.local_stack`: the whole router on 127.0.0.1, no AWS account needed.

Exit codes: 0 after Ctrl-C / SIGTERM, 1 when start-up fails, 2 when a port is taken or the
arguments are wrong.
"""

from __future__ import annotations

import time

_STARTED_AT = time.perf_counter()  # before the heavy imports: "ready in" counts them

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from tools.local_stack.server import PortInUse  # noqa: E402
from tools.local_stack.stack import LocalStack, StackOptions, make_stop_event  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


def _overrides(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--parameter-overrides expects Key=Value, got {pair!r}")
        out[key] = value
    return out


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_stack",
        description="Run the adaptive router locally: API, functions, DynamoDB/SQS (moto), pages.",
    )
    parser.add_argument("--api-port", type=int, default=3000, help="API port on 127.0.0.1 (default 3000)")
    parser.add_argument("--site-port", type=int, default=8080, help="pages port (default 8080; http://localhost)")
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="saved table, keys, logs")
    parser.add_argument("--no-traffic", action="store_true", help="do not start synthetic traffic")
    parser.add_argument("--same-origin", action="store_true", help="serve the pages from the API port too")
    parser.add_argument("--upstream-url", help="send every model to this OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--upstream-key-env", help="environment variable holding the upstream API key")
    parser.add_argument("--config", type=Path, help="router config YAML (default: the shipped example)")
    parser.add_argument("--region", default="us-east-1", help="AWS region the stack pretends to be in")
    parser.add_argument(
        "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameter values"
    )
    parser.add_argument("--function-logs-to-console", action="store_true", help="print function logs here")
    parser.add_argument("--quiet", action="store_true", help="no access log line per request")
    parser.add_argument(
        "--seed", type=int, help="seed the router's decisions, the simulated models and the demo traffic"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=32,
        help="execution environments per function at most, like Lambda's concurrency (default 32)",
    )
    parser.add_argument(
        "--compact-every-mb",
        type=float,
        default=4.0,
        help="fold the journal into the snapshot each time this many MB were journaled (default 4)",
    )
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="do not fsync the journal before acknowledging a write (survives crashes, not power loss)",
    )
    args = parser.parse_args(argv)
    if not 0.01 <= args.compact_every_mb <= 1024:
        parser.error("--compact-every-mb must be between 0.01 and 1024")
    if args.upstream_key_env and not args.upstream_url:
        parser.error("--upstream-key-env needs --upstream-url")
    try:
        args.overrides = _overrides(args.parameter_overrides)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = StackOptions(
        repo_root=REPO_ROOT,
        api_port=args.api_port,
        site_port=args.site_port,
        state_dir=args.state_dir,
        traffic=not args.no_traffic,
        same_origin=args.same_origin,
        upstream_url=args.upstream_url,
        upstream_key_env=args.upstream_key_env,
        config_path=args.config,
        region=args.region,
        parameter_overrides=args.overrides,
        function_logs_to_console=args.function_logs_to_console,
        access_log=not args.quiet,
        seed=args.seed,
        concurrency=args.concurrency,
        compact_every_mb=args.compact_every_mb,
        fsync=not args.no_fsync,
    )
    stop, handler = make_stop_event()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    stack = LocalStack(options, started_at=_STARTED_AT)
    try:
        stack.start()
    except PortInUse as exc:
        print(f"error: {exc}; stop what uses it or choose another port (--api-port / --site-port)", file=sys.stderr)
        stack.stop()
        return 2
    except Exception as exc:
        print(f"error: the local stack could not start: {type(exc).__name__}: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    while not stop.wait(0.2):
        pass
    print("Stopping…", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
