"""Client keys: random bearer tokens, stored only as SHA-256 hashes.

The keys carry 256 random bits, so a fast hash is enough (no password stretching needed):
nobody can guess a pre-image, and a leaked table reveals no usable key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from router_core.errors import AuthenticationFailed
from router_core.store import ClientKey, RouterStore

KEY_PREFIX = "rk-"
CACHE_SECONDS = 60.0
"""A revoked key keeps working in a warm function for at most this long."""


def generate_key() -> str:
    """A new random client key (shown once; never stored in clear)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key: what the table stores and what turns are owned by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The key from an `Authorization: Bearer <key>` header; 401 when absent or malformed."""
    if not authorization:
        raise AuthenticationFailed("missing Authorization header; send 'Authorization: Bearer <client key>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Authorization header must be 'Bearer <client key>'")
    if not token.startswith(KEY_PREFIX) or len(token) > 200:
        raise AuthenticationFailed("invalid client key")
    return token


def create_client_key(store: RouterStore, name: str) -> str:
    """Create and store (hashed) a new key named `name`; returns the plaintext key once."""
    key = generate_key()
    store.put_client_key(hash_key(key), name)
    return key


class KeyCache:
    """Positive lookups cached per execution environment, to keep chats at three round trips."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[str, tuple[ClientKey, float]] = {}

    def get(self, key_hash: str) -> ClientKey | None:
        hit = self._known.get(key_hash)
        if hit is None or self._clock() - hit[1] > CACHE_SECONDS:
            return None
        return hit[0]

    def put(self, key: ClientKey) -> None:
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key.key_hash] = (key, self._clock())


def require_active(key: ClientKey | None) -> ClientKey:
    """The key if it exists and is enabled; 401 otherwise (same message: no oracle for guessing)."""
    if key is None or key.disabled:
        raise AuthenticationFailed("invalid client key")
    return key
