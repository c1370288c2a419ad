"""The local IAM authorizer accepts exactly what API Gateway accepts (requests signed by botocore)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tools.local_stack.sigv4 import (
    Credential,
    SignatureError,
    SignedRequest,
    SigV4Verifier,
    canonical_path,
    canonical_query,
)

pytestmark = pytest.mark.unit

REGION = "us-east-1"
HOST = "127.0.0.1:3000"
USER = Credential(
    access_key_id="AKIAEXAMPLELOCAL0001",
    secret_access_key="local-secret-0123456789abcdefghijklmnopq",
    account_id="123456789012",
    user_arn="arn:aws:iam::123456789012:user/local-dashboard",
    user_id="AIDAEXAMPLELOCAL00001",
)
TEMPORARY = Credential(
    access_key_id="ASIAEXAMPLELOCAL0002",
    secret_access_key="temp-secret-0123456789abcdefghijklmnopqr",
    account_id="123456789012",
    user_arn="arn:aws:sts::123456789012:assumed-role/dashboard/session",
    user_id="AROAEXAMPLE:session",
    session_token="FwoGZXIvYXdzEXAMPLETOKEN//+==",
)


def sign(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    credential: Credential = USER,
    secret: str | None = None,
    region: str = REGION,
    service: str = "execute-api",
    token: str | None = None,
) -> SignedRequest:
    """A request signed by botocore exactly as a Python client would send it."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(credential.access_key_id, secret or credential.secret_access_key, token)
    SigV4Auth(creds, service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = tuple((k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items())
    if not any(k.lower() == "host" for k, _ in headers):
        headers = (("Host", parts.netloc), *headers)  # what http.client adds on the wire
    return SignedRequest(method=method, raw_path=parts.path, raw_query=parts.query, headers=headers, body=body)


def verifier(clock: Callable[[], float] = time.time) -> SigV4Verifier:
    return SigV4Verifier([USER, TEMPORARY], REGION, clock=clock)


def replace_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    headers = tuple((k, v) for k, v in request.headers if k.lower() != name.lower())
    if value is not None:
        headers += ((name, value),)
    return SignedRequest(request.method, request.raw_path, request.raw_query, headers, request.body)


def with_query(request: SignedRequest, raw_query: str) -> SignedRequest:
    return SignedRequest(request.method, request.raw_path, raw_query, request.headers, request.body)


def with_body(request: SignedRequest, body: bytes) -> SignedRequest:
    return SignedRequest(request.method, request.raw_path, request.raw_query, request.headers, body)


def test_a_request_signed_by_botocore_is_accepted_and_names_the_caller() -> None:
    caller = verifier().verify(sign("GET", f"http://{HOST}/v1/state"))
    assert caller.access_key_id == USER.access_key_id
    assert caller.user_arn == USER.user_arn


def test_headers_the_client_did_not_sign_do_not_matter() -> None:
    request = sign("GET", f"http://{HOST}/v1/state", headers={"x-router-session-id": "s1"})
    extra = (*request.headers, ("User-Agent", "proxy-added/1.0"), ("X-Forwarded-For", "10.0.0.1"))
    assert verifier().verify(SignedRequest("GET", "/v1/state", "", extra, b"")).user_id == USER.user_id


def test_a_signed_header_changed_after_signing_is_rejected() -> None:
    request = sign("GET", f"http://{HOST}/v1/state", headers={"x-router-session-id": "s1"})
    with pytest.raises(SignatureError, match="signature we calculated does not match"):
        verifier().verify(replace_header(request, "x-router-session-id", "s2"))


def test_the_host_the_client_signed_is_the_one_verified() -> None:
    request = sign("GET", f"http://{HOST}/v1/state")
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify(replace_header(request, "Host", "localhost:3000"))


def test_a_space_sent_as_plus_matches_a_signature_over_percent_20() -> None:
    # botocore signs %20; browsers' URLSearchParams send +; API Gateway accepts both.
    request = sign("GET", f"http://{HOST}/v1/state?router=smart%20cheap")
    assert request.raw_query == "router=smart%20cheap"
    assert verifier().verify(with_query(request, "router=smart+cheap")).access_key_id == USER.access_key_id


def test_query_parameters_are_verified_in_canonical_order() -> None:
    request = sign("GET", f"http://{HOST}/v1/state?router=b&a=x%2Fy&empty=")
    assert verifier().verify(with_query(request, "empty=&a=x%2Fy&router=b")).user_id == USER.user_id


def test_a_tampered_query_is_rejected() -> None:
    request = sign("GET", f"http://{HOST}/v1/state?router=smart-cheap-router")
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify(with_query(request, "router=other-router"))


def test_a_tampered_body_is_rejected() -> None:
    request = sign("POST", f"http://{HOST}/v1/state", body=b'{"a":1}')
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify(with_body(request, b'{"a":2}'))


def test_x_amz_content_sha256_stands_for_the_body_and_must_match_it() -> None:
    body = b'{"turn_id":"t1"}'
    digest = hashlib.sha256(body).hexdigest()
    request = sign("POST", f"http://{HOST}/v1/state", body=body, headers={"X-Amz-Content-SHA256": digest})
    assert verifier().verify(request).user_id == USER.user_id
    with pytest.raises(SignatureError, match="x-amz-content-sha256"):
        verifier().verify(with_body(request, b'{"turn_id":"t2"}'))


def test_a_wrong_secret_is_rejected() -> None:
    request = sign("GET", f"http://{HOST}/v1/state", secret="not-the-secret-at-all-0000000000000000000")
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify(request)


def test_an_unknown_access_key_is_rejected() -> None:
    stranger = Credential("AKIASTRANGER00000000", "x" * 40, "123456789012", "arn:aws:iam::1:user/x", "AIDAX")
    with pytest.raises(SignatureError, match="security token included in the request is invalid"):
        verifier().verify(sign("GET", f"http://{HOST}/v1/state", credential=stranger))


def test_an_unsigned_request_is_forbidden() -> None:
    unsigned = SignedRequest("GET", "/v1/state", "", (("Host", HOST),), b"")
    with pytest.raises(SignatureError, match=r"^Forbidden$"):
        verifier().verify(unsigned)


@pytest.mark.parametrize(
    ("offset_s", "message"),
    [(301.0, "Signature expired"), (-301.0, "Signature not yet current")],
)
def test_a_signature_outside_the_five_minute_window_is_rejected(offset_s: float, message: str) -> None:
    request = sign("GET", f"http://{HOST}/v1/state")
    with pytest.raises(SignatureError, match=message):
        verifier(clock=lambda: time.time() + offset_s).verify(request)


def test_a_signature_within_the_five_minute_window_is_accepted() -> None:
    request = sign("GET", f"http://{HOST}/v1/state")
    assert verifier(clock=lambda: time.time() + 290.0).verify(request).user_id == USER.user_id
    assert verifier(clock=lambda: time.time() - 290.0).verify(request).user_id == USER.user_id


def test_a_signature_for_another_region_is_rejected() -> None:
    with pytest.raises(SignatureError, match="valid region"):
        verifier().verify(sign("GET", f"http://{HOST}/v1/state", region="eu-west-1"))


def test_a_signature_for_another_service_is_rejected() -> None:
    with pytest.raises(SignatureError, match="correct service: 'execute-api'"):
        verifier().verify(sign("GET", f"http://{HOST}/v1/state", service="lambda"))


def test_a_scope_date_that_differs_from_x_amz_date_is_rejected() -> None:
    request = sign("GET", f"http://{HOST}/v1/state")
    stamp = request.header("x-amz-date") or ""
    other_day = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 86_400))
    assert other_day[:8] != stamp[:8]
    with pytest.raises(SignatureError, match="Date in Credential scope does not match"):
        verifier().verify(replace_header(request, "X-Amz-Date", other_day))


def test_a_session_token_must_be_sent_and_signed_when_the_credential_has_one() -> None:
    token = TEMPORARY.session_token
    signed = sign("GET", f"http://{HOST}/v1/state", credential=TEMPORARY, token=token)
    assert verifier().verify(signed).access_key_id == TEMPORARY.access_key_id
    with pytest.raises(SignatureError, match=r"security[ -]token"):
        verifier().verify(replace_header(signed, "X-Amz-Security-Token", None))
    # Added after signing: present but not in SignedHeaders.
    unsigned_token = replace_header(
        sign("GET", f"http://{HOST}/v1/state", credential=TEMPORARY), "X-Amz-Security-Token", token
    )
    with pytest.raises(SignatureError, match="must be a 'SignedHeader'"):
        verifier().verify(unsigned_token)
    wrong = sign("GET", f"http://{HOST}/v1/state", credential=TEMPORARY, token="another-token")
    with pytest.raises(SignatureError, match="security token"):
        verifier().verify(wrong)


def test_a_session_token_on_a_long_term_key_is_rejected() -> None:
    request = sign("GET", f"http://{HOST}/v1/state", token="made-up-token")
    with pytest.raises(SignatureError, match="security token"):
        verifier().verify(request)


def test_host_must_be_among_the_signed_headers() -> None:
    request = sign("GET", f"http://{HOST}/v1/state")
    auth = request.header("authorization") or ""
    without_host = auth.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date")
    assert without_host != auth
    with pytest.raises(SignatureError, match="'Host' or ':authority' must be a 'SignedHeader'"):
        verifier().verify(replace_header(request, "Authorization", without_host))


def test_canonical_query_decodes_plus_encodes_rfc3986_and_sorts() -> None:
    assert canonical_query("b=2&a=hello+world&a=x%2Fy&c=%7E~") == "a=hello%20world&a=x%2Fy&b=2&c=~~"
    assert canonical_query("") == ""
    assert canonical_query("flag") == "flag="


def test_canonical_path_encodes_the_raw_path_once_more() -> None:
    assert canonical_path("/v1/state") == "/v1/state"
    assert canonical_path("/v1/a%20b") == "/v1/a%2520b"
    assert canonical_path("/v1/./x/../state") == "/v1/state"
    assert canonical_path("") == "/"


def test_a_percent_encoded_path_signed_by_botocore_verifies() -> None:
    request = sign("GET", f"http://{HOST}/v1/state%20x")
    assert request.raw_path == "/v1/state%20x"
    assert verifier().verify(request).user_id == USER.user_id


def test_verification_takes_well_under_a_millisecond() -> None:
    request = sign("GET", f"http://{HOST}/v1/state?router=smart-cheap-router")
    check = verifier()
    started = time.perf_counter()
    for _ in range(500):
        check.verify(request)
    per_request_ms = (time.perf_counter() - started) / 500 * 1000
    assert per_request_ms < 1.0
