"""A team file's component, prepared once so that each request builds its team in ~0.1 ms.

Preparing walks the component tree once: every provider is resolved to its class (an unknown
one fails at start-up with its place in the file), secrets are refused, each model client is
replaced by a reference to a shared client and each function tool by a reference to a tool
built once, and every team's `max_turns` is capped at MAX_TURNS. An AssistantAgent that
streams through a shared client is switched to `model_client_stream: false` and its reference
names it, so its tokens go from the client to the run without passing AutoGen's runtime. Per
request, the agents that take a system message and a model context get the client's
instructions and history in copies of only the dicts on the way to them, and
`Team.load_component` builds fresh agents and a fresh team from the result; the prepared
tree itself is never changed.
"""

from __future__ import annotations

import copy
import importlib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, OrTerminationCondition, Team
from autogen_agentchat.conditions import SourceMatchTermination
from autogen_core import is_component_class

# The aliases AutoGen accepts for well-known model clients; not exported publicly.
from autogen_core._component_config import WELL_KNOWN_PROVIDERS
from autogen_core.models import ChatCompletionClient, LLMMessage
from autogen_core.tools import BaseTool, FunctionTool
from pydantic import ValidationError

from . import prompts
from .components import SERVICE_CLIENT, ServiceModel, SharedModelClient, SharedTool, bound
from .components import reference as shared
from .pool import ClientPool
from .run import RunInputs

Where = tuple[str | int, ...]

_SECRET_FIELDS = ("api_key", "azure_ad_token")
_MASKED = re.compile(r"\*{4,}")
_CONTEXT = "autogen_core.model_context.UnboundedChatCompletionContext"
_SHARED_CLIENT = shared(SharedModelClient, SERVICE_CLIENT)["provider"]


class InvalidComponent(ValueError):
    """A problem at one place in a team file's component tree."""

    def __init__(self, where: Where, problem: str) -> None:
        super().__init__(f"{describe(where)}: {problem}")


def describe(where: Where) -> str:
    """A place in the tree as a reader of the file sees it: `participants[0].model_client`."""
    text = ""
    for part in where:
        if part == "config":
            continue
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return "the team component" + (f" at {text.lstrip('.')}" if text else "")


def resolve(provider: str, where: Where) -> type:
    """The component class a provider string names, or InvalidComponent saying why not."""
    target = WELL_KNOWN_PROVIDERS.get(provider, provider)
    module_name, _, name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name, None) if module_name else None
    except Exception as error:  # a module that fails to import is as unknown as a missing one
        raise InvalidComponent(where, f"unknown provider {provider!r} ({error}).") from None
    if not (isinstance(found, type) and is_component_class(found)):
        raise InvalidComponent(where, f"unknown provider {provider!r}: no such AutoGen component.")
    return found


def explain(error: ValidationError) -> str:
    """Pydantic's errors as one readable clause per problem."""
    problems = []
    for problem in error.errors():
        place = ".".join(str(part) for part in problem["loc"]) or "the file"
        problems.append(f"{place}: {problem['msg']}")
    return "failed validation: " + "; ".join(problems) + "."


def _validate(cls: type, component: dict[str, Any], where: Where) -> None:
    """Checks the config where its place in the file is known; AutoGen checks it again later.

    A config written for an older version of the component is left to AutoGen's migration.
    """
    current = cls.component_version  # type: ignore[attr-defined]
    if (component.get("component_version") or current) < current:
        return
    try:
        cls.component_config_schema.model_validate(component["config"])  # type: ignore[attr-defined]
    except ValidationError as error:
        raise InvalidComponent(where, explain(error)) from None


def _is_component(node: Mapping[str, Any]) -> bool:
    return isinstance(node.get("provider"), str) and isinstance(node.get("config"), dict)


@dataclass(frozen=True, slots=True)
class _Agent:
    where: Where
    name: str
    takes_instructions: bool
    takes_history: bool


@dataclass(slots=True)
class _Preparation:
    pool: ClientPool
    max_turns: int
    tools: dict[str, BaseTool[Any, Any]] = field(default_factory=dict)
    tool_keys: dict[str, str] = field(default_factory=dict)
    client_keys: set[str] = field(default_factory=set)
    agents: list[_Agent] = field(default_factory=list)

    def visit(self, node: Any, where: Where) -> Any:
        if isinstance(node, list):
            return [self.visit(item, (*where, i)) for i, item in enumerate(node)]
        if isinstance(node, str) and _MASKED.fullmatch(node):
            raise InvalidComponent(
                where,
                f"holds a masked secret ({node!r}, as dump_component() writes secrets). "
                "Secrets never live in team files: remove the field and set the key in the "
                "environment (see the README, 'Where keys go').",
            )
        if not isinstance(node, dict):
            return node
        if _is_component(node):
            return self.component(node, where)
        return {key: self.visit(value, (*where, key)) for key, value in node.items()}

    def component(self, node: dict[str, Any], where: Where) -> dict[str, Any]:
        cls = resolve(node["provider"], where)
        model_client = cls is ServiceModel or issubclass(cls, ChatCompletionClient)
        if where and where[-1] == "model_client" and not model_client:
            raise InvalidComponent(where, f"{node['provider']!r} is not a model client.")
        if model_client:
            key = SERVICE_CLIENT if cls is ServiceModel else self.client(node, cls, where)
            self.client_keys.add(key)
            return shared(SharedModelClient, key)
        if issubclass(cls, FunctionTool):
            return shared(SharedTool, self.tool(node, where))
        prepared = {**node, "config": self.visit(node["config"], (*where, "config"))}
        _validate(cls, prepared, where)
        self.note(cls, prepared, where)
        if issubclass(cls, AssistantAgent):
            _stream_past_runtime(prepared["config"])
        return prepared

    def client(self, node: dict[str, Any], cls: type[ChatCompletionClient], where: Where) -> str:
        for secret in _SECRET_FIELDS:
            if node["config"].get(secret):
                raise InvalidComponent(
                    where,
                    f"has an {secret!r}. Keys never live in team files (dump_component() "
                    "writes them as '**********', which would be sent as the key): remove it and "
                    "set LLM_API_KEY or the provider's own variable, such as OPENAI_API_KEY.",
                )
        self.visit(node["config"], (*where, "config"))
        try:
            return self.pool.key_for(node, cls)
        except Exception as error:
            raise InvalidComponent(where, f"the model client cannot be built: {error}") from None

    def tool(self, node: dict[str, Any], where: Where) -> str:
        source = repr(sorted(node["config"].items()))
        if source not in self.tool_keys:
            key = self.tool_keys[source] = f"tool-{len(self.tool_keys) + 1}"
            with warnings.catch_warnings():
                # Team files are trusted input (README); the warning would repeat it per tool.
                warnings.filterwarnings("ignore", r"\s*\S+\s+SECURITY WARNING", UserWarning)
                try:
                    self.tools[key] = FunctionTool.load_component(node)
                except Exception as error:
                    raise InvalidComponent(where, f"the tool cannot be built: {error}") from None
        return self.tool_keys[source]

    def note(self, cls: type, component: dict[str, Any], where: Where) -> None:
        fields = cls.component_config_schema.model_fields  # type: ignore[attr-defined]
        config = component["config"]
        if issubclass(cls, Team) and "max_turns" in fields:
            config["max_turns"] = min(config.get("max_turns") or self.max_turns, self.max_turns)
        if issubclass(cls, ChatAgent) and isinstance(config.get("name"), str):
            takes = ("system_message" in fields, "model_context" in fields)
            self.agents.append(_Agent(where, config["name"], *takes))


@dataclass(frozen=True, slots=True)
class Blueprint:
    """A team component with its shared parts taken out, ready to build one team per run."""

    template: Mapping[str, Any]
    clients: Mapping[str, ChatCompletionClient]
    tools: Mapping[str, BaseTool[Any, Any]]
    agents: tuple[_Agent, ...]

    @property
    def agent_names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    def build(self, inputs: RunInputs) -> Team:
        clients = {key: inputs.client_for(client) for key, client in self.clients.items()}
        with bound(clients, self.tools):
            return Team.load_component(self.for_run(inputs.instructions, inputs.history))

    def for_run(self, instructions: str, history: Sequence[LLMMessage]) -> dict[str, Any]:
        """The component with this run's instructions and history given to every agent."""
        root = dict(self.template)
        if not instructions and not history:
            return root
        copied = {id(root)}
        for agent in self.agents:
            config = _writable(root, (*agent.where, "config"), copied)
            if instructions and agent.takes_instructions:
                own = config.get("system_message") or ""
                config["system_message"] = own + prompts.CLIENT_INSTRUCTIONS + instructions
            if history and agent.takes_history:
                config["model_context"] = _with_history(config.get("model_context"), history)
        return root

    def stops_after(self, agent: str) -> bool:
        """Whether the team's termination condition ends the run once `agent` has spoken."""
        return _stops_after(self.template["config"].get("termination_condition"), agent)


def _stream_past_runtime(config: dict[str, Any]) -> None:
    """Lets a streaming agent's shared client hand its tokens to the run (see `clients.py`)."""
    client = config.get("model_client")
    if not (isinstance(client, dict) and client["provider"] == _SHARED_CLIENT):
        return
    if config.get("model_client_stream") and isinstance(config.get("name"), str):
        client["config"] = {**client["config"], "agent": config["name"]}
        config["model_client_stream"] = False


def _writable(root: dict[str, Any], where: Where, copied: set[int]) -> dict[str, Any]:
    """The node at `where`, after copying every container on the way that is still shared."""
    node: Any = root
    for part in where:
        child = node[part]
        if id(child) not in copied:
            child = copy.copy(child)
            node[part] = child
            copied.add(id(child))
        node = child
    return node  # type: ignore[no-any-return]


def _with_history(context: dict[str, Any] | None, history: Sequence[LLMMessage]) -> dict[str, Any]:
    if context is None:
        return {"provider": _CONTEXT, "config": {"initial_messages": list(history)}}
    config = context["config"]
    initial = [*(config.get("initial_messages") or []), *history]
    return {**context, "config": {**config, "initial_messages": initial}}


def _stops_after(condition: Any, agent: str) -> bool:
    if not isinstance(condition, dict) or not _is_component(condition):
        return False
    cls = resolve(condition["provider"], ())
    config = condition["config"]
    if issubclass(cls, SourceMatchTermination):
        return agent in (config.get("sources") or [])
    if issubclass(cls, OrTerminationCondition):
        return any(_stops_after(member, agent) for member in config.get("conditions") or [])
    return False


def prepare(component: dict[str, Any], pool: ClientPool, max_turns: int) -> Blueprint:
    """Resolves, checks and rewrites a team component; raises InvalidComponent."""
    if not _is_component(component):
        raise InvalidComponent((), "needs a 'provider' and a 'config' mapping.")
    if not issubclass(team := resolve(component["provider"], ()), Team):
        raise InvalidComponent((), f"{component['provider']!r} is not a team ({team.__name__}).")
    preparation = _Preparation(pool, max_turns)
    template = preparation.visit(component, ())
    clients = {key: pool.get(key) for key in sorted(preparation.client_keys)}
    return Blueprint(template, clients, preparation.tools, tuple(preparation.agents))
