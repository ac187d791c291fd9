"""The teams this service serves, each as a model id, with the model clients behind them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from autogen_core.models import ChatCompletionClient

from ..settings import Settings
from .builtin import builtin_definition
from .clients import build_default_client
from .loader import load_team_files
from .offline import OFFLINE_MODEL_NAME
from .pool import ClientPool
from .run import TeamDefinition

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServedTeam:
    definition: TeamDefinition
    client: ChatCompletionClient
    """The service's own client; team files' other clients are in their definition."""
    created: int


@dataclass(slots=True)
class TeamRegistry:
    teams: dict[str, ServedTeam] = field(default_factory=dict)
    clients: list[ChatCompletionClient] = field(default_factory=list)
    """Every shared client, each closed once on the way out."""

    def get(self, model_id: str) -> ServedTeam | None:
        return self.teams.get(model_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.teams.values())

    def __len__(self) -> int:
        return len(self.teams)

    async def close(self) -> None:
        closed: set[int] = set()
        for client in [*self.clients, *(served.client for served in self.teams.values())]:
            if id(client) not in closed:
                closed.add(id(client))
                await client.close()


def load_registry(settings: Settings) -> TeamRegistry:
    """Builds every served team and its shared model clients; called once, in the lifespan.

    The built-in team is served unless a team file declares its model id. Raises TeamFileError
    naming the file when a team in TEAMS_DIR cannot be served.
    """
    client = build_default_client(settings)
    label = OFFLINE_MODEL_NAME if settings.offline else settings.LLM_MODEL
    started = int(time.time())
    pool = ClientPool(settings, client)
    definitions = [builtin_definition(label), *load_team_files(settings, pool)]
    teams = {
        definition.id: ServedTeam(definition, client, definition.created or started)
        for definition in definitions
    }
    registry = TeamRegistry(teams, pool.clients())
    logger.info("serving %d team(s); the service's model is %s", len(registry), label)
    return registry
