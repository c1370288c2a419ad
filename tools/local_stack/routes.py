"""What the transformed template says the HTTP API is: routes, auth, CORS, throttling, functions.

Read from the `AWS::ApiGatewayV2::Api` OpenAPI body SAM generates (paths, integrations,
`security`, `x-amazon-apigateway-cors`), its `$default` stage (route throttling), the
`AWS::Lambda::Function` resources (code directory, handler, timeout, memory, environment) and
the `AWS::Lambda::EventSourceMapping` resources (SQS triggers).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.local_stack.template import StackTemplate, TemplateError, references_type

_INTEGRATION_FUNCTION = re.compile(r"\$\{(?P<fn>[A-Za-z0-9]+)\.Arn\}")
_PATH_PARAM = re.compile(r"\{(?P<name>[A-Za-z0-9_.-]+)(?P<greedy>\+)?\}")
_RUN_MODULE = re.compile(r"\bexec\s+python3?\s+-m\s+(?P<module>[A-Za-z_][\w.]*)")
_ANY_METHOD = "x-amazon-apigateway-any-method"
_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@dataclass(frozen=True)
class Route:
    """One HTTP API route; `route_key` is what API Gateway puts in `routeKey` ("POST /v1/feedback")."""

    method: str
    """Upper-case HTTP method, or "ANY"."""
    path: str
    """Path template as declared, e.g. /v1/items/{id}."""
    function: str
    """Logical id of the Lambda function behind the route."""
    iam: bool
    """True when the route uses the AWS_IAM authorizer (SigV4)."""
    payload_format: str = "2.0"

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def pattern(self) -> re.Pattern[str]:
        """Regex over the raw path; path parameters become named groups."""
        parts: list[str] = []
        last = 0
        for match in _PATH_PARAM.finditer(self.path):
            parts.append(re.escape(self.path[last : match.start()]))
            name = re.sub(r"\W", "_", match.group("name"))
            parts.append(f"(?P<{name}>.+)" if match.group("greedy") else f"(?P<{name}>[^/]+)")
            last = match.end()
        parts.append(re.escape(self.path[last:]))
        return re.compile("^" + "".join(parts) + "$")

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters when this route serves `method raw_path`, else None."""
        if self.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(raw_path)
        return None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}


@dataclass(frozen=True)
class CorsPolicy:
    """The API's CORS configuration (API Gateway answers preflights and adds headers itself)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_s: int | None = None
    allow_credentials: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.allow_origins)


@dataclass(frozen=True)
class Throttle:
    """Default route throttling of the `$default` stage: steady requests per second and burst."""

    rate_per_s: float
    burst: int


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the transformed template declares it."""

    logical_id: str
    name: str
    code_dir: Path
    handler: str
    """`module.attribute`, e.g. app.lambda_handler."""
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...]
    runtime: str
    reserved_concurrency: int | None = None
    """ReservedConcurrentExecutions: the most environments the function may run at once."""
    web_module: str | None = None
    """For a function run by the Lambda Web Adapter: the module its startup script serves
    (`python3 -m <module>`); each environment runs it as a web server."""

    @property
    def readiness_path(self) -> str:
        """Where the Lambda Web Adapter checks that a web function's server is up."""
        return self.environment.get("AWS_LWA_READINESS_CHECK_PATH", "/")

    @property
    def module(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def attribute(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class QueueTrigger:
    """An SQS event source mapping: which queue feeds which function, and how."""

    queue: str
    """Logical id of the queue."""
    function: str
    batch_size: int
    batching_window_s: float
    report_batch_item_failures: bool
    enabled: bool = True


@dataclass(frozen=True)
class StreamRoute:
    """A CloudFront path pattern served by a Function URL in RESPONSE_STREAM mode."""

    path_pattern: str
    """CloudFront's pattern: `*` and `?` wildcards, case-sensitive, e.g. /v1/chat/completions."""
    function: str
    """Logical id of the function behind the URL."""
    cors: CorsPolicy

    def matches(self, raw_path: str) -> bool:
        return fnmatch.fnmatchcase(raw_path, self.path_pattern)


@dataclass(frozen=True)
class ApiSpec:
    """Everything the local HTTP API needs from the template."""

    api: str
    routes: tuple[Route, ...]
    cors: CorsPolicy
    throttle: Throttle | None
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    triggers: tuple[QueueTrigger, ...] = ()
    stream_routes: tuple[StreamRoute, ...] = ()
    """Paths CloudFront sends to a streaming Function URL instead of the HTTP API, in order."""

    def stream_route(self, raw_path: str) -> StreamRoute | None:
        """The streaming route serving `raw_path` (CloudFront: the first matching behaviour)."""
        return next((r for r in self.stream_routes if r.matches(raw_path)), None)

    def find(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route serving `method raw_path` (exact method before ANY), with its path parameters."""
        candidates = sorted(self.routes, key=lambda r: (r.method == "ANY", "{" in r.path, -len(r.path)))
        for route in candidates:
            params = route.match(method, raw_path)
            if params is not None:
                return route, params
        return None


def read_api(template: StackTemplate, site_origins: Sequence[str]) -> ApiSpec:
    """The single HTTP API of the template.

    `site_origins` replace any AllowOrigins entry that refers to a CloudFront distribution
    (the deployed site's origin) with the origins the local site is served from.
    """
    apis = template.of_type("AWS::ApiGatewayV2::Api")
    if len(apis) != 1:
        raise TemplateError(f"expected exactly one HTTP API, found {sorted(apis) or 'none'}")
    (api_id, api), *_ = apis.items()
    body = (api.get("Properties") or {}).get("Body")
    if not isinstance(body, dict):
        raise TemplateError(f"{api_id}: no OpenAPI Body (is it an AWS::Serverless::HttpApi?)")
    schemes = ((body.get("components") or {}).get("securitySchemes")) or {}
    routes = tuple(_routes(template, api_id, body, schemes))
    cors = _cors(template, body.get("x-amazon-apigateway-cors"), site_origins)
    functions = {fid: _function(template, fid) for fid in template.of_type("AWS::Lambda::Function")}
    for route in routes:
        if route.function not in functions:
            raise TemplateError(f"route {route.route_key} integrates {route.function!r}, which is not a function")
    return ApiSpec(
        api=api_id,
        routes=routes,
        cors=cors,
        throttle=_throttle(template, api_id),
        functions=functions,
        triggers=tuple(_triggers(template)),
        stream_routes=tuple(_stream_routes(template, site_origins)),
    )


def _stream_routes(template: StackTemplate, site_origins: Sequence[str]) -> list[StreamRoute]:
    """CloudFront cache behaviours whose origin is a RESPONSE_STREAM function URL."""
    urls = {
        url_id: url
        for url_id, url in template.of_type("AWS::Lambda::Url").items()
        if template.properties(url_id).get("InvokeMode") == "RESPONSE_STREAM"
    }
    routes: list[StreamRoute] = []
    for dist in template.of_type("AWS::CloudFront::Distribution").values():
        config = (dist.get("Properties") or {}).get("DistributionConfig") or {}
        origin_url = {}
        for origin in config.get("Origins") or []:
            found = [u for u in urls if _references_attribute(origin.get("DomainName"), u, "FunctionUrl")]
            if found:
                origin_url[origin.get("Id")] = found[0]
        for behaviour in config.get("CacheBehaviors") or []:
            url_id = origin_url.get(behaviour.get("TargetOriginId"))
            if url_id is None:
                continue
            target = (urls[url_id].get("Properties") or {}).get("TargetFunctionArn")
            if not (isinstance(target, dict) and "Ref" in target):
                raise TemplateError(f"{url_id}: TargetFunctionArn must be a Ref to a function of this template")
            routes.append(
                StreamRoute(
                    path_pattern=str(template.resolve(behaviour.get("PathPattern"))),
                    function=str(target["Ref"]),
                    cors=_url_cors(template, (urls[url_id].get("Properties") or {}).get("Cors"), site_origins),
                )
            )
    return routes


def _references_attribute(node: Any, logical_id: str, attribute: str) -> bool:
    if isinstance(node, dict):
        get_att = node.get("Fn::GetAtt")
        if get_att in ([logical_id, attribute], f"{logical_id}.{attribute}"):
            return True
        return any(_references_attribute(v, logical_id, attribute) for v in node.values())
    if isinstance(node, list):
        return any(_references_attribute(v, logical_id, attribute) for v in node)
    return False


def _url_cors(template: StackTemplate, raw: Any, site_origins: Sequence[str]) -> CorsPolicy:
    """A Function URL's Cors, in the HTTP API's CORS shape (both answer preflights themselves)."""
    if not isinstance(raw, dict):
        return CorsPolicy()
    as_api = {
        "allowOrigins": raw.get("AllowOrigins"),
        "allowMethods": raw.get("AllowMethods"),
        "allowHeaders": raw.get("AllowHeaders"),
        "exposeHeaders": raw.get("ExposeHeaders"),
        "maxAge": raw.get("MaxAge"),
        "allowCredentials": raw.get("AllowCredentials", False),
    }
    return _cors(template, as_api, site_origins)


def _routes(template: StackTemplate, api_id: str, body: dict[str, Any], schemes: dict[str, Any]) -> list[Route]:
    default_security = body.get("security")
    routes: list[Route] = []
    for path, item in (body.get("paths") or {}).items():
        for key, operation in item.items():
            if key == _ANY_METHOD:
                method = "ANY"
            elif key in _METHODS:
                method = key.upper()
            else:
                continue
            integration = operation.get("x-amazon-apigateway-integration") or {}
            uri = integration.get("uri")
            text = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
            found = _INTEGRATION_FUNCTION.search(str(text))
            if integration.get("type") != "aws_proxy" or found is None:
                raise TemplateError(f"{api_id} {method} {path}: only Lambda proxy integrations run locally")
            payload_format = str(integration.get("payloadFormatVersion", "2.0"))
            if payload_format != "2.0":
                raise TemplateError(f"{api_id} {method} {path}: payload format {payload_format} is not supported")
            security = operation.get("security", default_security) or []
            routes.append(
                Route(
                    method=method,
                    path=path,
                    function=found.group("fn"),
                    iam=_is_iam(security, schemes, f"{method} {path}"),
                    payload_format=payload_format,
                )
            )
    return routes


def _is_iam(security: list[dict[str, Any]], schemes: dict[str, Any], route_key: str) -> bool:
    names = [name for requirement in security for name in requirement]
    if not names or names == ["NONE"]:
        return False
    for name in names:
        scheme = schemes.get(name) or {}
        if name != "AWS_IAM" and scheme.get("x-amazon-apigateway-authtype") != "awsSigv4":
            raise TemplateError(f"route {route_key}: authorizer {name!r} is not supported locally (only AWS_IAM)")
    return True


def _cors(template: StackTemplate, raw: Any, site_origins: Sequence[str]) -> CorsPolicy:
    if not isinstance(raw, dict):
        return CorsPolicy()
    origins: list[str] = []
    for entry in raw.get("allowOrigins") or []:
        if references_type(template, entry, "AWS::CloudFront::Distribution"):
            origins.extend(site_origins)
        else:
            value = template.resolve(entry)
            if isinstance(value, str) and value:
                origins.append(value)
    max_age = template.resolve(raw.get("maxAge"))
    return CorsPolicy(
        allow_origins=tuple(dict.fromkeys(o.rstrip("/") for o in origins)),
        allow_methods=tuple(str(m).upper() for m in template.resolve(raw.get("allowMethods") or [])),
        allow_headers=tuple(str(h).lower() for h in template.resolve(raw.get("allowHeaders") or [])),
        expose_headers=tuple(str(h).lower() for h in template.resolve(raw.get("exposeHeaders") or [])),
        max_age_s=None if max_age is None else int(max_age),
        allow_credentials=bool(template.resolve(raw.get("allowCredentials", False))),
    )


def _throttle(template: StackTemplate, api_id: str) -> Throttle | None:
    for stage_id, stage in template.of_type("AWS::ApiGatewayV2::Stage").items():
        if (stage.get("Properties") or {}).get("ApiId") != {"Ref": api_id}:
            continue
        settings = template.properties(stage_id).get("DefaultRouteSettings") or {}
        rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
        if rate is None and burst is None:
            return None
        return Throttle(rate_per_s=float(rate if rate is not None else 10_000), burst=int(burst or 5_000))
    return None


def _function(template: StackTemplate, logical_id: str) -> FunctionSpec:
    props = template.properties(logical_id)
    if props.get("PackageType") == "Image":
        raise TemplateError(f"{logical_id}: image functions need Docker; not supported locally")
    layers: list[Path] = []
    for layer_ref in (template.resource(logical_id).get("Properties") or {}).get("Layers") or []:
        if isinstance(layer_ref, dict) and "Ref" in layer_ref and layer_ref["Ref"] in template.resources:
            layer_props = template.resource(layer_ref["Ref"]).get("Properties") or {}
            layers.append(template.code_path(layer_props.get("Content")))
    env = (props.get("Environment") or {}).get("Variables") or {}
    code_dir = template.code_path(props.get("Code"))
    handler = str(props.get("Handler", ""))
    web_module = None
    if "AWS_LWA_INVOKE_MODE" in env or "AWS_LAMBDA_EXEC_WRAPPER" in env or handler.endswith(".sh"):
        web_module = _startup_module(logical_id, code_dir / handler)
    return FunctionSpec(
        logical_id=logical_id,
        name=template.physical_name(logical_id),
        code_dir=code_dir,
        handler=handler,
        timeout_s=int(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
        environment={str(k): str(v) for k, v in env.items()},
        layer_dirs=tuple(layers),
        runtime=str(props.get("Runtime", "")),
        reserved_concurrency=int(props["ReservedConcurrentExecutions"])
        if props.get("ReservedConcurrentExecutions") is not None
        else None,
        web_module=web_module,
    )


def _startup_module(logical_id: str, script: Path) -> str:
    """The module a Lambda Web Adapter startup script runs (`exec python3 -m <module>`)."""
    try:
        text = script.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{logical_id}: startup script {script} cannot be read: {exc.strerror}") from exc
    found = _RUN_MODULE.search(text)
    if found is None:
        raise TemplateError(
            f"{logical_id}: {script.name} must start the web server with `exec python3 -m <module>` "
            "to run locally (the Lambda Web Adapter's handler is that script)"
        )
    return found.group("module")


def _triggers(template: StackTemplate) -> list[QueueTrigger]:
    triggers: list[QueueTrigger] = []
    queues = set(template.of_type("AWS::SQS::Queue"))
    for mapping_id, mapping in template.of_type("AWS::Lambda::EventSourceMapping").items():
        raw = mapping.get("Properties") or {}
        source = raw.get("EventSourceArn")
        target = source.get("Fn::GetAtt") if isinstance(source, dict) else None
        queue = (target.partition(".")[0] if isinstance(target, str) else target[0]) if target else None
        if queue not in queues:
            continue  # streams and other sources are not run locally
        function = raw.get("FunctionName")
        if not (isinstance(function, dict) and "Ref" in function):
            raise TemplateError(f"{mapping_id}: FunctionName must be a Ref to a function of this template")
        props = template.properties(mapping_id)
        triggers.append(
            QueueTrigger(
                queue=str(queue),
                function=str(function["Ref"]),
                batch_size=int(props.get("BatchSize", 10)),
                batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                enabled=bool(props.get("Enabled", True)),
            )
        )
    return triggers
