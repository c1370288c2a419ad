"""Publish `static_site/` to a deployed stack: `python -m tools.deploy_site --stack NAME [--region R]`.

Reads the stack outputs `SiteBucket`, `SiteDistributionId` and `ApiUrl` (or takes them from
`--bucket`, `--distribution-id` and `--api-url`), uploads every page with its Content-Type and
Cache-Control, writes `config.json` (API URL, region, router names) so the pages come up
prefilled, deletes objects no longer in the site, and invalidates `/*` on CloudFront.

Exit codes: 0 published, 1 an AWS call failed, 2 bad arguments or a missing stack/output.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

REPO_ROOT = Path(__file__).resolve().parents[1]
SITE_DIR = REPO_ROOT / "static_site"
CONFIG_KEY = "config.json"
REQUIRED_OUTPUTS = ("SiteBucket", "SiteDistributionId", "ApiUrl")

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
NO_CACHE = "no-cache"
"""Pages, our own scripts and config.json: the browser revalidates (ETag) on every load, so a
deploy is visible at once and pages never run against scripts of another version."""
VENDOR_CACHE = "public, max-age=31536000, immutable"
"""Vendored libraries are pinned releases: cached for a year (rename the file to upgrade)."""
ASSET_CACHE = "public, max-age=86400"
"""Icons and images: a day."""


class DeployError(Exception):
    """A problem the user can fix (missing stack, missing outputs, bad arguments); exit code 2."""


@dataclass(frozen=True)
class SiteTarget:
    """Where the site goes and what the pages are told about the API."""

    bucket: str
    distribution_id: str
    api_url: str
    """API base URL ending with "/" (the ApiUrl output)."""
    region: str
    chat_api_url: str | None = None
    """Where the chat page sends its requests, ending with "/": the BaseUrl output without its
    `v1` (CloudFront: streamed chat answers, the other routes through the HTTP API)."""


@dataclass
class DeployReport:
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    invalidation_id: str | None = None
    site_domain: str | None = None


def content_type(key: str) -> str:
    """Content-Type for an object key; licence files without a suffix are plain text."""
    suffix = Path(key).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    if suffix in ("", ".license") or Path(key).name.upper().startswith("LICENSE"):
        return "text/plain; charset=utf-8"
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def cache_control(key: str) -> str:
    """Cache-Control for an object key (see NO_CACHE, VENDOR_CACHE, ASSET_CACHE)."""
    if key.startswith("vendor/"):
        return VENDOR_CACHE
    if Path(key).suffix.lower() in (".svg", ".ico", ".png"):
        return ASSET_CACHE
    return NO_CACHE


def normalise_api_url(url: str) -> str:
    """The API base URL with one trailing slash; DeployError unless it is http(s)."""
    text = url.strip()
    if not text.startswith(("https://", "http://")):
        raise DeployError(f"--api-url must be an http(s) URL, got {url!r}")
    return text.rstrip("/") + "/"


def site_files(root: Path) -> list[tuple[str, Path]]:
    """(object key, file) for every file under `root`, sorted; hidden files and a local
    config.json are skipped (the published config.json is generated for the target)."""
    if not root.is_dir():
        raise DeployError(f"{root} is not a directory")
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        key = rel.as_posix()
        if key == CONFIG_KEY:
            continue
        out.append((key, path))
    return out


def site_config(target: SiteTarget, routers: Sequence[str]) -> bytes:
    """The config.json the pages read: {"apiUrl", "region", "routers"}, and "chatApiUrl" when
    the stack has a streaming base URL (the chat page uses it; the dashboard signs for apiUrl)."""
    body: dict[str, Any] = {"apiUrl": target.api_url, "region": target.region, "routers": list(routers)}
    if target.chat_api_url:
        body["chatApiUrl"] = target.chat_api_url
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def stack_target(cloudformation: Any, stack: str, region: str) -> SiteTarget:
    """Read the site's outputs from stack `stack`; DeployError when it or an output is missing."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise DeployError(
                f"stack {stack!r} does not exist in {region}: deploy it first (make deploy) or pass the right --region"
            ) from exc
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [name for name in REQUIRED_OUTPUTS if not outputs.get(name)]
    if missing:
        status = stacks[0].get("StackStatus", "unknown")
        raise DeployError(
            f"stack {stack!r} ({status}) has no output {', '.join(missing)}; outputs present: "
            f"{', '.join(sorted(outputs)) or 'none'}. Is it this project's template, fully deployed?"
        )
    base = outputs.get("BaseUrl")
    return SiteTarget(
        bucket=outputs["SiteBucket"],
        distribution_id=outputs["SiteDistributionId"],
        api_url=normalise_api_url(outputs["ApiUrl"]),
        region=region,
        chat_api_url=normalise_api_url(base.rstrip("/").removesuffix("/v1")) if base else None,
    )


def _existing_keys(s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    return keys


def deploy(
    s3: Any,
    cloudfront: Any,
    target: SiteTarget,
    routers: Sequence[str],
    root: Path = SITE_DIR,
    *,
    out: Any = sys.stdout,
) -> DeployReport:
    """Upload `root` and config.json to the bucket, delete stale objects, invalidate `/*`.

    Stale objects are deleted only after every upload succeeded, so a failed deploy never
    leaves the site with pages missing.
    """
    report = DeployReport()
    files = site_files(root)
    before = _existing_keys(s3, target.bucket)
    uploads: list[tuple[str, bytes]] = [(key, path.read_bytes()) for key, path in files]
    uploads.append((CONFIG_KEY, site_config(target, routers)))
    for key, body in uploads:
        s3.put_object(
            Bucket=target.bucket,
            Key=key,
            Body=body,
            ContentType=content_type(key),
            CacheControl=cache_control(key),
        )
        report.uploaded.append(key)
        report.bytes_uploaded += len(body)
        print(f"  uploaded {key} ({len(body):,} bytes, {content_type(key)}, {cache_control(key)})", file=out)
    stale = sorted(before - set(report.uploaded))
    for start in range(0, len(stale), 1000):
        chunk = stale[start : start + 1000]
        s3.delete_objects(Bucket=target.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
    for key in stale:
        print(f"  deleted stale {key}", file=out)
    report.deleted = stale
    invalidation = cloudfront.create_invalidation(
        DistributionId=target.distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/*"]},
            "CallerReference": f"deploy-site-{time.time_ns()}",
        },
    )
    report.invalidation_id = invalidation["Invalidation"]["Id"]
    try:
        distribution = cloudfront.get_distribution(Id=target.distribution_id)
        report.site_domain = distribution["Distribution"]["DomainName"]
    except ClientError:
        report.site_domain = None  # the URLs are only a convenience in the summary
    return report


def _router_names(config_path: Path | None) -> list[str]:
    try:
        from router_core.config import ConfigError, load_config
    except ModuleNotFoundError:  # run without PYTHONPATH: the layer lives beside tools/
        sys.path.insert(0, str(REPO_ROOT / "layers" / "router_core"))
        from router_core.config import ConfigError, load_config

    try:
        return list(load_config(config_path).routers)
    except ConfigError as exc:
        raise DeployError(str(exc)) from exc


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.deploy_site",
        description="Upload static_site/ to the stack's bucket, write config.json and invalidate CloudFront.",
    )
    parser.add_argument("--stack", help="stack name: read SiteBucket, SiteDistributionId, ApiUrl from its outputs")
    parser.add_argument("--bucket", help="site bucket (instead of --stack)")
    parser.add_argument("--distribution-id", help="CloudFront distribution id (instead of --stack)")
    parser.add_argument("--api-url", help="API base URL written to config.json (instead of --stack)")
    parser.add_argument("--region", help="AWS region of the stack and API (default: the AWS profile's region)")
    parser.add_argument(
        "--config", type=Path, help="router config YAML for the router names (default: the shipped one)"
    )
    parser.add_argument("--site-dir", type=Path, default=SITE_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    direct = (args.bucket, args.distribution_id, args.api_url)
    if args.stack and any(direct):
        parser.error("give either --stack, or --bucket with --distribution-id and --api-url, not both")
    if not args.stack and not all(direct):
        parser.error("give --stack NAME, or all of --bucket, --distribution-id and --api-url")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    session = boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
    region = session.region_name
    try:
        if not region:
            raise DeployError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
        if args.stack:
            target = stack_target(session.client("cloudformation"), args.stack, region)
        else:
            target = SiteTarget(args.bucket, args.distribution_id, normalise_api_url(args.api_url), region)
        routers = _router_names(args.config)
        print(f"Publishing {args.site_dir} to s3://{target.bucket} (API {target.api_url}, {region})")
        report = deploy(session.client("s3"), session.client("cloudfront"), target, routers, args.site_dir)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS refused the deploy: {exc}", file=sys.stderr)
        return 1
    print(
        f"Uploaded {len(report.uploaded)} objects ({report.bytes_uploaded:,} bytes), deleted {len(report.deleted)} "
        f"stale, invalidation {report.invalidation_id} for /*."
    )
    if report.site_domain:
        print(f"Dashboard: https://{report.site_domain}/dashboard.html")
        print(f"Chat:      https://{report.site_domain}/chat.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
