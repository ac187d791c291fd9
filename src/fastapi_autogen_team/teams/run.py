"""What a team definition is, and what building one team run needs.

A `TeamDefinition` is loaded once; `build` makes fresh agents and a fresh team for every run,
because AutoGen's agents and teams keep state and must never be shared between requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from autogen_agentchat.base import Team
from autogen_core.models import ChatCompletionClient, LLMMessage

from ..wire import ModelInformation
from .clients import RunModelClient


@dataclass(frozen=True, slots=True)
class RunInputs:
    """One request's view of a team run."""

    model_client: RunModelClient
    instructions: str
    history: Sequence[LLMMessage]
    max_turns: int

    def client_for(self, shared: ChatCompletionClient) -> RunModelClient:
        """This run's view of another shared client, counted with the run's other calls."""
        return self.model_client.sibling(shared)


@dataclass(frozen=True, slots=True)
class TeamDefinition:
    id: str
    name: str
    description: str
    build: Callable[[RunInputs], Team]
    answer_agent: str | None = None
    """Whose last message is the answer; None means the run's last message."""
    answer_streams: bool = True
    """Whether the run ends when the answer agent speaks, so its reply can stream as the answer.
    When False, its turns stream as reasoning and its last message is sent when the run ends."""
    owned_by: str = "fastapi-autogen-team"
    info: ModelInformation | None = field(default=None)
    created: int | None = None
    """Unix time the model list reports; stable across restarts so UIs' caches stay valid."""

    def information(self) -> ModelInformation:
        return self.info or ModelInformation(name=self.name, description=self.description)
