"""Per-execution-environment singletons, built lazily on first use (never at import time)."""

from __future__ import annotations

import os
from functools import lru_cache

from router_core.config import GatewayConfig, current_config
from router_core.store import RouterStore
from router_core.turns import TurnRouter


def config() -> GatewayConfig:
    return current_config()


@lru_cache(maxsize=1)
def store() -> RouterStore:
    return RouterStore()


SEED_ENV = "ROUTER_SEED"
"""An integer here seeds the router's decisions and the simulated provider (local stack, tests and
benchmarks only; a deployed router leaves it unset and draws from the OS's entropy)."""


@lru_cache(maxsize=1)
def turn_router() -> TurnRouter:
    raw = os.environ.get(SEED_ENV, "").strip()
    return TurnRouter(current_config(), store(), seed=int(raw) if raw else None)


def reset() -> None:
    """Forget every singleton (tests that change environment or config call this)."""
    from router_core.store import reset_clients

    current_config.cache_clear()
    store.cache_clear()
    turn_router.cache_clear()
    reset_clients()
