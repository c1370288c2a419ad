"""Upstream providers: the only modules that talk to models.

`provider_for(name, config)` returns the provider configured under `providers.<name>`, built on
first use and cached per name (a different configuration object for that name rebuilds it).
Providers create their network clients lazily, never at import.
"""

from __future__ import annotations

import threading
from typing import Any

from router_core.config import (
    BedrockProviderConfig,
    GatewayConfig,
    OpenAICompatibleProviderConfig,
    SimulatedProviderConfig,
)
from router_core.providers.base import (
    ChatParams,
    Completion,
    ErrorKind,
    Provider,
    UpstreamError,
    content_text,
    estimate_tokens,
    messages_text,
)
from router_core.providers.simulated import SimulatedProvider, footer, read_footer

__all__ = [
    "BedrockProvider",
    "ChatParams",
    "Completion",
    "ErrorKind",
    "OpenAICompatibleProvider",
    "Provider",
    "SimulatedProvider",
    "UpstreamError",
    "content_text",
    "estimate_tokens",
    "footer",
    "messages_text",
    "provider_for",
    "read_footer",
    "reset_providers",
]

_cache: dict[str, tuple[GatewayConfig, Provider]] = {}
_cache_lock = threading.Lock()


def provider_for(name: str, config: GatewayConfig) -> Provider:
    """The provider named `name` in `config.providers`; KeyError if there is none.

    Cached per name for the life of the execution environment, so HTTP connections stay warm.
    A different `GatewayConfig` object rebuilds that name's provider when its settings differ
    (always for the simulated provider, which reads the model catalogue).
    """
    with _cache_lock:
        cached = _cache.get(name)
        if cached is not None and cached[0] is config:
            return cached[1]
        if (
            cached is not None
            and not isinstance(cached[1], SimulatedProvider)
            and cached[0].providers.get(name) == config.providers.get(name)
        ):
            # Same settings in a reloaded config: keep the warm connections.
            _cache[name] = (config, cached[1])
            return cached[1]
        provider = _build(name, config)
        _cache[name] = (config, provider)
        return provider


def reset_providers() -> None:
    """Forget every cached provider and close their HTTP connections (tests, config reloads)."""
    with _cache_lock:
        cached = list(_cache.values())
        _cache.clear()
    for _, provider in cached:
        close = getattr(provider, "close", None)
        if close is not None:
            close()


def _build(name: str, config: GatewayConfig) -> Provider:
    settings = config.providers[name]
    if isinstance(settings, SimulatedProviderConfig):
        return SimulatedProvider(name, settings, config.models)
    # Imported on first use: httpx and the Bedrock client cost cold-start time to import,
    # and a deployment that never uses a provider type never pays for it.
    if isinstance(settings, OpenAICompatibleProviderConfig):
        from router_core.providers.openai_compatible import OpenAICompatibleProvider

        return OpenAICompatibleProvider(name, settings)
    if isinstance(settings, BedrockProviderConfig):
        from router_core.providers.bedrock import BedrockProvider

        return BedrockProvider(name, settings)
    raise TypeError(f"provider {name!r}: unsupported type {type(settings).__name__}")


def __getattr__(name: str) -> Any:
    # Lazy exports of the provider classes whose modules import heavy clients.
    if name == "OpenAICompatibleProvider":
        from router_core.providers.openai_compatible import OpenAICompatibleProvider

        return OpenAICompatibleProvider
    if name == "BedrockProvider":
        from router_core.providers.bedrock import BedrockProvider

        return BedrockProvider
    raise AttributeError(name)
