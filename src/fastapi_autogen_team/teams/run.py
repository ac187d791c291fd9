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


@dataclass(frozen=True, slots=True)
class RunInputs:
    """One request's view of a team run."""

    model_client: ChatCompletionClient
    instructions: str
    history: Sequence[LLMMessage]
    max_turns: int


@dataclass(frozen=True, slots=True)
class TeamDefinition:
    id: str
    name: str
    description: str
    build: Callable[[RunInputs], Team]
    answer_agent: str | None = None
    """Whose last message is the answer; None means the run's last message."""
    owned_by: str = "fastapi-autogen-team"
    info: ModelInformation | None = field(default=None)

    def information(self) -> ModelInformation:
        return self.info or ModelInformation(name=self.name, description=self.description)
