"""The model clients named in team files: each distinct configuration is built once, shared.

Keys never come from a team file (the loader refuses one). An OpenAI-compatible client gets
LLM_API_KEY when it points at LLM_BASE_URL (both empty meaning api.openai.com), so that key is
never sent to another host; otherwise the OPENAI_API_KEY the SDK reads itself; otherwise, when
the file gives a `base_url` of its own (a local server), a placeholder. Other providers read
their own standard variables (AZURE_OPENAI_API_KEY, ...). Timeouts, retries and usage on
streams default to the LLM_* settings, as for the built-in team.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from autogen_core.models import ChatCompletionClient
from autogen_ext.models.openai import OpenAIChatCompletionClient
from pydantic import SecretStr

from ..settings import Settings
from .components import SERVICE_CLIENT
from .http import tracked_http_client
from .offline import OfflineChatCompletionClient

_OPENAI_URL = "https://api.openai.com/v1"


def _endpoint(base_url: object) -> str:
    return (str(base_url) if base_url else _OPENAI_URL).rstrip("/")


class ClientPool:
    """Every shared model client, by key; the service's own client is `SERVICE_CLIENT`."""

    def __init__(self, settings: Settings, service_client: ChatCompletionClient) -> None:
        self._settings = settings
        self._clients: dict[str, ChatCompletionClient] = {SERVICE_CLIENT: service_client}

    def get(self, key: str) -> ChatCompletionClient:
        return self._clients[key]

    def clients(self) -> list[ChatCompletionClient]:
        return list(self._clients.values())

    def key_for(self, component: dict[str, Any], cls: type[ChatCompletionClient]) -> str:
        """The key of the client `component` describes, building it the first time it is seen."""
        config = self._complete(cls, dict(component["config"]))
        provider = f"{cls.__module__}.{cls.__qualname__}"
        canonical = json.dumps([provider, config], sort_keys=True, default=str)
        key = "client-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
        if key not in self._clients:
            prepared = {**component, "provider": provider, "config": config}
            self._clients[key] = _build(cls, prepared)
        return key

    def _complete(self, cls: type[ChatCompletionClient], config: dict[str, Any]) -> dict[str, Any]:
        settings = self._settings
        if issubclass(cls, OfflineChatCompletionClient):
            config.setdefault("token_delay", settings.OFFLINE_TOKEN_DELAY)
        if not issubclass(cls, OpenAIChatCompletionClient):
            return config
        config.setdefault("timeout", settings.LLM_TIMEOUT)
        config["max_retries"] = 0  # the run's RetryPolicy retries, within its bounds
        config.setdefault("stream_options", {"include_usage": True})
        if (api_key := self._openai_key(config.get("base_url"))) is not None:
            config["api_key"] = api_key
        return config

    def _openai_key(self, base_url: object) -> str | None:
        """None leaves the key to the SDK, which reads OPENAI_API_KEY or refuses to start."""
        own_key = self._settings.LLM_API_KEY.get_secret_value()
        if own_key and _endpoint(base_url) == _endpoint(self._settings.LLM_BASE_URL):
            return own_key
        if os.environ.get("OPENAI_API_KEY") or not base_url:
            return None
        return "not-needed"


def _build(cls: type[ChatCompletionClient], component: dict[str, Any]) -> ChatCompletionClient:
    """Builds the client; an OpenAI one sends through the transport runs can close."""
    if cls is not OpenAIChatCompletionClient:
        return ChatCompletionClient.load_component(component)
    config = OpenAIChatCompletionClient.component_config_schema.model_validate(component["config"])
    options: dict[str, Any] = config.model_dump(exclude_none=True)
    if isinstance(config.api_key, SecretStr):
        options["api_key"] = config.api_key.get_secret_value()
    # `http_client` is not in the client's typed options, though its SDK client takes it.
    options["http_client"] = tracked_http_client()
    return OpenAIChatCompletionClient(**options)
