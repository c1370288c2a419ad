"""The static site as CloudFront would serve it, plus `/config.json` and a favicon.

* `/` serves the distribution's DefaultRootObject (read from the template);
* files come from `static_site/` only (no path escapes it), with the headers of CloudFront's
  managed SecurityHeadersPolicy (minus HSTS, which means nothing on http://localhost);
* `/config.json` tells the pages where the API is, its region, the router names and the local
  stack's own credentials (local-only: generated here, accepted only by this stack), so both
  pages connect with one click;
* `/favicon.ico` is the site's own if it has one, else a generated 16×16 icon (a missing
  favicon is a console error in browser tests).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tools.deploy_site import content_type
from tools.local_stack.apigw import HttpRequest, HttpResponse

_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-XSS-Protection", "1; mode=block"),
)


def site_config(
    api_url: str, region: str, routers: Sequence[str], local_credentials: dict[str, str] | None = None
) -> dict[str, Any]:
    """What `/config.json` holds: the API base URL (ends with /), the region, the router names,
    and locally the stack's own credentials (`accessKeyId`, `secretAccessKey`, `clientKey`).
    A deployed site's config.json (tools.deploy_site) never holds credentials."""
    return {"apiUrl": api_url, "region": region, "routers": list(routers), **(local_credentials or {})}


@lru_cache(maxsize=1)
def generated_favicon() -> bytes:
    """A 16×16 ICO (PNG inside): a teal disc with a white centre, drawn here."""
    size = 16
    rows = []
    for y in range(size):
        row = bytearray([0])  # PNG filter type: none
        for x in range(size):
            d2 = (x - 7.5) ** 2 + (y - 7.5) ** 2
            if d2 <= 2.5**2:
                row += bytes((255, 255, 255, 255))
            elif d2 <= 7.5**2:
                row += bytes((13, 148, 136, 255))
            else:
                row += bytes((0, 0, 0, 0))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png


class SitePages:
    """Answers GET/HEAD for the site; `respond` returns None for paths it does not serve."""

    def __init__(self, root: Path, default_object: str, config: Callable[[], dict[str, Any]]) -> None:
        self._root = root.resolve()
        self._default = default_object
        self._config = config

    def respond(self, request: HttpRequest) -> HttpResponse | None:
        if request.method not in ("GET", "HEAD"):
            return None
        path = unquote(request.raw_path)
        if path == "/":
            path = "/" + self._default
        if path == "/config.json":
            body = json.dumps(self._config(), indent=2).encode("utf-8")
            return self._ok(request, body, "application/json", cache="no-store")
        file = self._file(path)
        if file is not None:
            # The same Content-Type the deploy tool gives the object in S3: local and deployed pages match.
            return self._ok(request, file.read_bytes(), content_type(file.name), cache="no-cache")
        if path == "/favicon.ico":
            return self._ok(request, generated_favicon(), "image/x-icon", cache="max-age=86400")
        return None

    def serve(self, request: HttpRequest) -> HttpResponse:
        """The site server's answer: a page, 413 for an oversized body, else 404."""
        if request.oversize:
            return HttpResponse(413, [("Content-Type", "text/plain; charset=utf-8")], b"Request Entity Too Large\n")
        return self.respond(request) or self.not_found(request)

    def not_found(self, request: HttpRequest) -> HttpResponse:
        body = b"" if request.method == "HEAD" else b"Not Found\n"
        response = HttpResponse(404, [("Content-Type", "text/plain; charset=utf-8"), *_SECURITY_HEADERS], body)
        return response

    def _file(self, path: str) -> Path | None:
        if "\x00" in path:
            return None
        candidate = (self._root / path.lstrip("/")).resolve()
        if candidate != self._root and self._root not in candidate.parents:
            return None  # ../ escapes are not served
        return candidate if candidate.is_file() else None

    @staticmethod
    def _ok(request: HttpRequest, body: bytes, content_type: str, *, cache: str) -> HttpResponse:
        headers = [("Content-Type", content_type), ("Cache-Control", cache), *_SECURITY_HEADERS]
        response = HttpResponse(200, headers, b"" if request.method == "HEAD" else body)
        if request.method == "HEAD":
            response.headers.append(("Content-Length", str(len(body))))
        return response
