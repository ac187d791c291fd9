"""AutoGen components that stand for objects the service shares between runs.

A team file names `ServiceModel` to mean "the model the service is configured with" (LLM_*,
or the offline model when LLM_MODEL is empty). When the loader reads a file it replaces every
model client by a `SharedModelClient` and every function tool by a `SharedTool`, each naming
a key. Loading such a component returns the object bound to that key for the team being
built, so `Team.load_component` makes fresh agents and a fresh team per request but never a
new model client (~18 ms each) nor re-runs a tool's source code. The binding is a context
variable set only while one team is built, which is synchronous, so concurrent builds on the
event loop cannot see each other's clients. A reference that names an agent loads as that
agent's view of the client, which streams the agent's tokens to the run itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autogen_core import Component, ComponentBase
from autogen_core.models import ChatCompletionClient
from autogen_core.tools import BaseTool
from pydantic import BaseModel

if TYPE_CHECKING:
    from .clients import RunModelClient

SERVICE_CLIENT = "service"
"""The key of the service's own model client, shared with the built-in team."""


@dataclass(frozen=True, slots=True)
class _Binding:
    clients: Mapping[str, RunModelClient]
    tools: Mapping[str, BaseTool[Any, Any]]


_binding: ContextVar[_Binding | None] = ContextVar("team_binding", default=None)


@contextmanager
def bound(
    clients: Mapping[str, RunModelClient], tools: Mapping[str, BaseTool[Any, Any]]
) -> Iterator[None]:
    """Makes `clients` and `tools` what shared references load as, for the block's duration."""
    token = _binding.set(_Binding(clients, tools))
    try:
        yield
    finally:
        _binding.reset(token)


def _current() -> _Binding:
    binding = _binding.get()
    if binding is None:
        raise RuntimeError(
            "A shared component was loaded outside the service's team builder; "
            "load the original team file instead."
        )
    return binding


class ServiceModelConfig(BaseModel):
    pass


class ServiceModel(ComponentBase[ServiceModelConfig], Component[ServiceModelConfig]):
    """The service's configured model client (LLM_*, or the offline model), for team files.

    Inside the service the loader replaces it by the one shared client; loaded anywhere else
    (plain AutoGen code) it builds that client from the environment and `.env`.
    """

    component_type = "model"
    component_config_schema = ServiceModelConfig

    @classmethod
    def _from_config(cls, config: ServiceModelConfig) -> ChatCompletionClient:  # type: ignore[override]
        from ..settings import Settings
        from .clients import build_default_client

        return build_default_client(Settings())


class SharedReference(BaseModel):
    key: str


class SharedClientReference(SharedReference):
    agent: str | None = None
    """The agent using the client, when the client streams that agent's tokens to the run."""


class SharedModelClient(ComponentBase[SharedReference], Component[SharedReference]):
    """Loads as the current run's view of the shared model client named by `key`."""

    component_type = "model"
    component_config_schema = SharedClientReference

    @classmethod
    def _from_config(cls, config: SharedClientReference) -> ChatCompletionClient:  # type: ignore[override]
        client = _current().clients[config.key]
        return client if config.agent is None else client.for_agent(config.agent)


class SharedTool(ComponentBase[SharedReference], Component[SharedReference]):
    """Loads as the tool named by `key`, built once when the team file was read."""

    component_type = "tool"
    component_config_schema = SharedReference

    @classmethod
    def _from_config(cls, config: SharedReference) -> BaseTool[Any, Any]:  # type: ignore[override]
        return _current().tools[config.key]


def reference(kind: type[SharedModelClient] | type[SharedTool], key: str) -> dict[str, Any]:
    """The component dict that loads as the shared object `key`."""
    return {
        "provider": f"{kind.__module__}.{kind.__qualname__}",
        "component_type": kind.component_type,
        "config": {"key": key},
    }
