"""The stack's DynamoDB and SQS endpoint on 127.0.0.1, for functions in their own processes.

Each execution environment's boto3 is pointed here (`AWS_ENDPOINT_URL_DYNAMODB`,
`AWS_ENDPOINT_URL_SQS`), as SAM's local tools point functions at DynamoDB Local. A request is
handed to moto exactly as moto's in-process mock receives one (an `AWSPreparedRequest` with the
service's AWS URL), through the same locked, journaled path the stack's own clients use
(`aws.patch_moto_lock`), so every caller sees one store and every write is journaled once.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from tools.local_stack.apigw import HttpRequest, HttpResponse
from tools.local_stack.server import LocalHttpServer

_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request")
SERVICES = ("dynamodb", "sqs")


def _error(status: int, code: str, message: str) -> HttpResponse:
    body = f'{{"__type":"{code}","message":"{message}"}}'.encode()
    return HttpResponse(status, [("Content-Type", "application/x-amz-json-1.0")], body)


def _operation(request: HttpRequest) -> str | None:
    target = request.header("X-Amz-Target")
    if target:
        return target.rpartition(".")[2] or None
    if request.body:  # query protocol: Action=... in a form body
        values = parse_qs(request.body.decode("utf-8", "replace")).get("Action")
        return values[0] if values else None
    return None


class AwsEndpoint:
    """Serves `dynamodb` and `sqs` calls for `region` on an ephemeral port."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._server = LocalHttpServer(0, self.handle, "aws")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def handle(self, request: HttpRequest) -> HttpResponse:
        from botocore.awsrequest import AWSPreparedRequest
        from botocore.compat import HTTPHeaders
        from moto.core.models import botocore_stubber

        scope = _SCOPE.search(request.header("Authorization") or "")
        service = scope.group(2) if scope else None
        if service not in SERVICES:
            return _error(400, "UnknownServiceException", "only dynamodb and sqs are served here")
        operation = _operation(request)
        if operation is None:
            return _error(400, "MissingAction", "no X-Amz-Target or Action")
        headers = HTTPHeaders()
        for name, value in request.headers:
            headers[name] = value
        path = request.raw_path + (f"?{request.raw_query}" if request.raw_query else "")
        prepared = AWSPreparedRequest(
            request.method, f"https://{service}.{self.region}.amazonaws.com{path}", headers, request.body, False
        )
        response = botocore_stubber(f"before-send.{service}.{operation}", prepared)
        if response is None:
            return _error(400, "UnknownOperationException", f"{service} {operation} is not served")
        out_headers = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date")
        ]
        return HttpResponse(response.status_code, out_headers, response.content)
