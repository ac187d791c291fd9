"""The teams this service serves, each as a model id, with the model client behind it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from autogen_core.models import ChatCompletionClient

from ..settings import Settings
from .builtin import builtin_definition
from .clients import build_default_client
from .offline import OFFLINE_MODEL_NAME
from .run import TeamDefinition

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServedTeam:
    definition: TeamDefinition
    client: ChatCompletionClient
    created: int


@dataclass(slots=True)
class TeamRegistry:
    teams: dict[str, ServedTeam] = field(default_factory=dict)

    def get(self, model_id: str) -> ServedTeam | None:
        return self.teams.get(model_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.teams.values())

    def __len__(self) -> int:
        return len(self.teams)

    async def close(self) -> None:
        closed: set[int] = set()
        for served in self.teams.values():
            if id(served.client) not in closed:
                closed.add(id(served.client))
                await served.client.close()


def load_registry(settings: Settings) -> TeamRegistry:
    """Builds every served team and its shared model client; called once, in the lifespan."""
    client = build_default_client(settings)
    label = OFFLINE_MODEL_NAME if settings.offline else settings.LLM_MODEL
    created = int(time.time())
    definition = builtin_definition(label)
    registry = TeamRegistry({definition.id: ServedTeam(definition, client, created)})
    logger.info("serving %d team(s) on model %s", len(registry), label)
    return registry
