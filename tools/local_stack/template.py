"""template.yaml, transformed offline by aws-sam-translator, with intrinsics resolved locally.

The SAM transform turns `AWS::Serverless::*` resources into the CloudFormation the deployed
stack is made of (the HTTP API's OpenAPI body, Lambda functions, event source mappings...).
Everything the local stack builds (routes, CORS, functions, table, queues) is read from that
output, so local and deployed behaviour cannot drift.

Physical names are deterministic (`<stack name>-<logical id>`), so a resource's Ref and ARN are
known before moto creates it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_CODE_BUCKET = "local-code"
"""CodeUri/ContentUri paths are rewritten to s3://local-code/<path> before the transform (it
needs S3 URIs); the path comes back out of the transformed `Code.S3Key`."""

STACK_NAME = "adaptive-router-local"
ACCOUNT_ID = "123456789012"
"""moto's default account: ARNs built here match the ones moto reports."""


class TemplateError(ValueError):
    """The template cannot be read, transformed or resolved for local use; the message says why."""


class _NoValue:
    """`AWS::NoValue`: the property is dropped."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def _code_uri_to_s3(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("s3://"):
        return f"s3://{LOCAL_CODE_BUCKET}/{value.strip('/')}"
    return value


def cached_transform(
    template_path: Path, region: str, parameter_values: Mapping[str, str] | None, cache_dir: Path | None
) -> dict[str, Any]:
    """`transform_template`, reusing a previous result for the same template, region, parameters
    and translator version from `cache_dir` (the translator's import alone takes ~0.7 s)."""
    if cache_dir is None:
        return transform_template(template_path, region, parameter_values)
    from importlib.metadata import version

    try:
        text = template_path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{template_path}: cannot read: {exc.strerror}") from exc
    digest = hashlib.sha256()
    for part in (text, region.encode(), json.dumps(sorted((parameter_values or {}).items())).encode()):
        digest.update(part)
        digest.update(b"\x1f")
    digest.update(version("aws-sam-translator").encode())
    path = cache_dir / f"template-{digest.hexdigest()[:24]}.json"
    try:
        cached: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cached
    except (OSError, ValueError):
        pass
    out = transform_template(template_path, region, parameter_values)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out), encoding="utf-8")
    os.replace(tmp, path)
    return out


def transform_template(
    template_path: Path, region: str, parameter_values: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The CloudFormation the SAM transform makes of `template_path`, computed offline.

    `parameter_values` are the non-default parameters (the transform inlines some parameter
    references, e.g. in the HTTP API's CORS configuration). No AWS call is made: managed policy
    names are not looked up (our policies are inline).
    """
    # Imported here: the translator takes ~0.3 s to import and only start-up needs it.
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    try:
        raw = yaml_parse(template_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"{template_path}: cannot read: {exc.strerror}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("Resources"), dict):
        raise TemplateError(f"{template_path}: no Resources section")
    sam = copy.deepcopy(raw)
    globals_fn = sam.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = _code_uri_to_s3(globals_fn["CodeUri"])
    for resource in sam["Resources"].values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = _code_uri_to_s3(props[key])

    class _OfflinePolicies:
        """Managed policy names would need IAM; none are used, so the map is empty."""

        def load(self) -> dict[str, str]:
            return {}

    previous_region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator reads the region from the environment
    try:
        out: dict[str, Any] = transform(sam, dict(parameter_values or {}), _OfflinePolicies())
    except Exception as exc:  # the translator raises several unrelated exception types
        raise TemplateError(f"{template_path}: SAM transform failed: {exc}") from exc
    finally:
        if previous_region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous_region
    return out


@dataclass
class StackTemplate:
    """A transformed template plus what intrinsic functions resolve to on this machine.

    `attribute_hooks` lets the caller decide what an attribute of a resource type means locally
    (e.g. a CloudFront distribution's DomainName is the local site's host).
    """

    resources: dict[str, Any]
    parameters: dict[str, str]
    conditions: dict[str, Any]
    outputs: dict[str, Any]
    region: str
    root: Path
    stack_name: str = STACK_NAME
    account_id: str = ACCOUNT_ID
    attribute_hooks: dict[tuple[str, str], Callable[[str], str]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        template_path: Path,
        *,
        region: str,
        parameter_overrides: Mapping[str, str] | None = None,
        cache_dir: Path | None = None,
    ) -> StackTemplate:
        """Transform `template_path` and bind parameters (defaults, then `parameter_overrides`).

        With `cache_dir`, a transform of the same inputs is reused (see `cached_transform`).
        """
        out = cached_transform(template_path, region, parameter_overrides, cache_dir)
        declared = out.get("Parameters") or {}
        params: dict[str, str] = {}
        for name, spec in declared.items():
            if "Default" in spec:
                params[name] = _param_text(spec["Default"])
        for name, value in (parameter_overrides or {}).items():
            if name not in declared:
                raise TemplateError(f"parameter override {name!r} is not a template parameter ({sorted(declared)})")
            allowed = declared[name].get("AllowedValues")
            if allowed and value not in [_param_text(v) for v in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            params[name] = value
        missing = sorted(set(declared) - set(params))
        if missing:
            raise TemplateError(f"parameters without a default need a value: {missing}")
        return cls(
            resources=out["Resources"],
            parameters=params,
            conditions=out.get("Conditions") or {},
            outputs=out.get("Outputs") or {},
            region=region,
            root=template_path.resolve().parent,
        )

    # -- queries

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id → resource, for every resource of `resource_type` (in template order)."""
        return {k: v for k, v in self.resources.items() if v.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resolved Properties of a resource (intrinsics evaluated, NoValue dropped)."""
        props = self.resource(logical_id).get("Properties") or {}
        resolved = self.resolve(props)
        return resolved if isinstance(resolved, dict) else {}

    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"no resource {logical_id!r} in the template") from None
        return found

    def physical_name(self, logical_id: str) -> str:
        """The local name of a resource: its explicit name property, else `<stack>-<logical id>`."""
        res = self.resource(logical_id)
        props = res.get("Properties") or {}
        name_key = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Lambda::Function": "FunctionName",
        }.get(str(res.get("Type")))
        if name_key and name_key in props:
            return str(self.resolve(props[name_key]))
        return f"{self.stack_name}-{logical_id}"

    def code_path(self, code: Any) -> Path:
        """The directory a transformed `Code`/`Content` property points at (see LOCAL_CODE_BUCKET)."""
        if not isinstance(code, dict) or code.get("S3Bucket") != LOCAL_CODE_BUCKET:
            raise TemplateError(f"code location {code!r} is not a local path; the local stack runs local code")
        return (self.root / str(code["S3Key"])).resolve()

    # -- intrinsic functions

    def ref(self, name: str) -> Any:
        """What `!Ref name` resolves to locally."""
        pseudo: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            kind = str(self.resources[name].get("Type"))
            physical = self.physical_name(name)
            if kind == "AWS::SQS::Queue":
                return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{physical}"
            return physical
        raise TemplateError(f"!Ref {name}: no such parameter, pseudo parameter or resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """What `!GetAtt logical_id.attribute` resolves to locally."""
        kind = str(self.resource(logical_id).get("Type"))
        hook = self.attribute_hooks.get((kind, attribute))
        if hook is not None:
            return hook(logical_id)
        name = self.physical_name(logical_id)
        arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{self.region}:{self.account_id}:{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account_id}:role/{name}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return name
        if kind == "AWS::SQS::Queue" and attribute == "QueueUrl":
            return self.ref(logical_id)
        if kind == "AWS::Lambda::Url" and attribute == "FunctionUrl":
            url_id = hashlib.sha256(name.encode()).hexdigest()[:32]  # deployed: 32 random characters
            return f"https://{url_id}.lambda-url.{self.region}.on.aws/"
        if kind == "AWS::S3::Bucket" and attribute in ("RegionalDomainName", "DomainName"):
            return f"{name}.s3.{self.region}.amazonaws.com"
        # Attributes nothing local reads (ids of CloudFront/IAM objects): stable placeholders.
        return f"{name}.{attribute}"

    def condition(self, name: str) -> bool:
        """The value of the template condition `name`."""
        if name not in self.conditions:
            raise TemplateError(f"no condition {name!r}")
        return self._truth(self.conditions[name])

    def _truth(self, node: Any) -> bool:
        if isinstance(node, bool):
            return node
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), *_ = node.items()
            if fn == "Fn::Equals":
                left, right = (self.resolve(x) for x in arg)
                return _param_text(left) == _param_text(right)
            if fn == "Fn::Not":
                return not self._truth(arg[0])
            if fn == "Fn::And":
                return all(self._truth(x) for x in arg)
            if fn == "Fn::Or":
                return any(self._truth(x) for x in arg)
            if fn == "Condition":
                return self.condition(str(arg))
        raise TemplateError(f"cannot evaluate condition {node!r}")

    def resolve(self, node: Any) -> Any:
        """`node` with every intrinsic function evaluated and `AWS::NoValue` entries removed."""
        if isinstance(node, list):
            items = [self.resolve(x) for x in node]
            return [x for x in items if x is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), *_ = node.items()
            handler = self._intrinsics().get(key)
            if handler is not None:
                return handler(arg)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _intrinsics(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": lambda arg: self.ref(str(arg)),
            "Fn::GetAtt": self._fn_get_att,
            "Fn::Sub": self._fn_sub,
            "Fn::If": self._fn_if,
            "Fn::Join": lambda arg: str(arg[0]).join(str(x) for x in self.resolve(arg[1])),
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: str(self.resolve(arg[1])).split(str(arg[0])),
            "Fn::Equals": lambda arg: self._truth({"Fn::Equals": arg}),
            "Fn::Not": lambda arg: self._truth({"Fn::Not": arg}),
            "Condition": lambda arg: self.condition(str(arg)),
        }

    def _fn_get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        else:
            logical_id, attribute = str(arg[0]), str(self.resolve(arg[1]))
        return self.get_att(logical_id, attribute)

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and not token.startswith("AWS::"):
                logical_id, _, attribute = token.partition(".")
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def references_type(template: StackTemplate, node: Any, resource_type: str) -> bool:
    """True when `node` (unresolved) refers, through Ref/GetAtt/Sub, to a resource of `resource_type`."""
    ids = set(template.of_type(resource_type))
    if not ids:
        return False
    if isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and arg in ids:
                return True
            if key == "Fn::GetAtt":
                target = arg.partition(".")[0] if isinstance(arg, str) else arg[0]
                if target in ids:
                    return True
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                if any(re.search(r"\$\{" + re.escape(i) + r"[.}]", str(text)) for i in ids):
                    return True
            if references_type(template, arg, resource_type):
                return True
    if isinstance(node, list):
        return any(references_type(template, x, resource_type) for x in node)
    return False


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
