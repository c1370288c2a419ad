"""Signature Version 4 verification, as API Gateway's AWS_IAM authorizer does it.

Rules (each one a way real clients differ from a naive re-signer):

* only the headers the client listed in `SignedHeaders` are canonicalised, with the values the
  client sent (the Host it signed; a proxy that rewrites Host breaks the signature, as on AWS);
* the canonical query string decodes `+` as a space, then RFC 3986-encodes and sorts
  (browsers' URLSearchParams send `+` for spaces);
* the canonical path is the raw path as sent, normalised and encoded once more (what botocore
  and aws4fetch sign for every service but S3);
* `X-Amz-Content-SHA256`, when sent, stands for the payload hash and must match the body;
* the request time must be within 5 minutes of the clock; the credential scope must name the
  request's date, this region, `execute-api` and `aws4_request`;
* a session token, when the credential has one or the request carries one, must be present,
  equal and signed;
* signatures are compared in constant time.

Error messages are API Gateway's wording, so clients see the same text locally and deployed.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_plus

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
MAX_SKEW_S = 300.0
"""API Gateway rejects requests signed more than 5 minutes from its clock, either way."""

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


class SignatureError(Exception):
    """The request is not correctly signed; `message` is what API Gateway answers (HTTP 403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Credential:
    """An access key the verifier accepts, and the IAM identity it stands for."""

    access_key_id: str
    secret_access_key: str
    account_id: str
    user_arn: str
    user_id: str
    session_token: str | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A request exactly as received: raw path and query, headers in arrival order, raw body."""

    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return ",".join(values) if values else None


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def canonical_query(raw_query: str) -> str:
    """Query pairs decoded (`+` is a space), RFC 3986-encoded, sorted by key then value."""
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_rfc3986(unquote_plus(key)), _rfc3986(unquote_plus(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_path(raw_path: str) -> str:
    """The raw (already percent-encoded) path, dot segments removed, encoded once more."""
    path = raw_path or "/"
    normalized = posixpath.normpath(path)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    return quote(normalized, safe="/~")


def _rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


def _parse_authorization(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(f"Unsupported authorization type '{algorithm}'; only {ALGORITHM} is accepted.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key.strip()] = val.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise SignatureError(
                f"Authorization header requires '{required}' parameter. Authorization header requires "
                "'Credential', 'SignedHeaders' and 'Signature' parameters."
            )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise SignatureError(
            f"Credential should be scoped to a valid region. Credential '{fields['Credential']}' is malformed."
        )
    return _Authorization(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        terminator=scope[4],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"].lower(),
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 derived key for one day, region and service."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


class SigV4Verifier:
    """Verifies requests signed for `execute-api` in one region by one of `credentials`.

    `clock` returns epoch seconds (injected for tests). Thread-safe: it holds no mutable state.
    """

    def __init__(
        self,
        credentials: Iterable[Credential],
        region: str,
        *,
        service: str = SERVICE,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = MAX_SKEW_S,
    ) -> None:
        self._credentials: Mapping[str, Credential] = {c.access_key_id: c for c in credentials}
        self._region = region
        self._service = service
        self._clock = clock
        self._max_skew_s = max_skew_s

    def verify(self, request: SignedRequest) -> Credential:
        """The credential that signed `request`; SignatureError (→ 403) when anything is off."""
        header = request.header("authorization")
        if not header:
            raise SignatureError("Forbidden")
        auth = _parse_authorization(header)
        credential = self._credentials.get(auth.access_key_id)
        if credential is None:
            raise SignatureError("The security token included in the request is invalid.")
        amz_date = request.header("x-amz-date")
        if not amz_date:
            raise SignatureError("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        signed_at = _parse_amz_date(amz_date)
        self._check_scope(auth, amz_date)
        self._check_time(signed_at, amz_date)
        self._check_signed_headers(auth, request)
        self._check_session_token(credential, request, auth)
        payload_hash = self._payload_hash(request)
        canonical_request = "\n".join(
            [
                request.method.upper(),
                canonical_path(request.raw_path),
                canonical_query(request.raw_query),
                "".join(f"{name}:{self._header_value(request, name)}\n" for name in auth.signed_headers),
                ";".join(auth.signed_headers),
                payload_hash,
            ]
        )
        scope = f"{auth.date}/{auth.region}/{auth.service}/{auth.terminator}"
        string_to_sign = "\n".join(
            [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
        )
        key = signing_key(credential.secret_access_key, auth.date, auth.region, auth.service)
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, auth.signature):
            raise SignatureError(_SIGNATURE_MISMATCH)
        return credential

    def _check_scope(self, auth: _Authorization, amz_date: str) -> None:
        if auth.date != amz_date[:8]:
            raise SignatureError(
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        if auth.region != self._region:
            raise SignatureError(
                f"Credential should be scoped to a valid region. Credential scope region '{auth.region}' "
                f"is not '{self._region}'."
            )
        if auth.service != self._service:
            raise SignatureError(f"Credential should be scoped to correct service: '{self._service}'. ")
        if auth.terminator != "aws4_request":
            raise SignatureError("Credential should be scoped with a valid terminator: 'aws4_request'. ")

    def _check_time(self, signed_at: float, amz_date: str) -> None:
        now = self._clock()
        stamp = _format_amz_date
        if signed_at < now - self._max_skew_s:
            raise SignatureError(
                f"Signature expired: {amz_date} is now earlier than {stamp(now - self._max_skew_s)} "
                f"({stamp(now)} - 5 min.)"
            )
        if signed_at > now + self._max_skew_s:
            raise SignatureError(
                f"Signature not yet current: {amz_date} is still later than {stamp(now + self._max_skew_s)} "
                f"({stamp(now)} + 5 min.)"
            )

    @staticmethod
    def _check_signed_headers(auth: _Authorization, request: SignedRequest) -> None:
        names = auth.signed_headers
        if list(names) != sorted(names) or any(n != n.lower() or not n for n in names):
            raise SignatureError(_SIGNATURE_MISMATCH)
        if "host" not in names:
            raise SignatureError("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        for name in names:
            if not request.header_values(name):
                raise SignatureError(f"'{name}' is a SignedHeader but is missing from the request.")

    @staticmethod
    def _check_session_token(credential: Credential, request: SignedRequest, auth: _Authorization) -> None:
        token = request.header("x-amz-security-token")
        if credential.session_token is None and token is None:
            return
        if token is None or credential.session_token is None:
            raise SignatureError("The security token included in the request is invalid.")
        if "x-amz-security-token" not in auth.signed_headers:
            raise SignatureError("'x-amz-security-token' must be a 'SignedHeader' when a session token is sent.")
        if not hmac.compare_digest(token, credential.session_token):
            raise SignatureError("The security token included in the request is invalid.")

    @staticmethod
    def _payload_hash(request: SignedRequest) -> str:
        actual = hashlib.sha256(request.body).hexdigest()
        claimed = request.header("x-amz-content-sha256")
        if claimed is None:
            return actual
        if not hmac.compare_digest(claimed.strip().lower(), actual):
            raise SignatureError("The provided 'x-amz-content-sha256' header does not match what was computed.")
        return claimed.strip()

    @staticmethod
    def _header_value(request: SignedRequest, name: str) -> str:
        # Repeated headers join with commas; runs of spaces collapse (SigV4's canonical header rule).
        return ",".join(" ".join(v.split()) for v in request.header_values(name))


def _parse_amz_date(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise SignatureError(f"Invalid X-Amz-Date '{value}': expected YYYYMMDD'T'HHMMSS'Z'.") from None


def _format_amz_date(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m%dT%H%M%SZ")
