"""Team files: every *.json, *.yaml and *.yml in TEAMS_DIR, each served as a model.

A file holds either what `team.dump_component()` writes (the bare component), or that
component under `component:` beside two optional keys: `model:` (what /v1/models says: id,
name, description, pricing, ...) and `answer_agent:` (whose last message is the answer).
Every check runs at start-up, including one trial build of each team with its real shared
clients, so a bad file stops the service with a `TeamFileError` naming the file rather than
failing its first request.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from autogen_core import CancellationToken
from autogen_core.models import UserMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..settings import Settings
from ..wire import ModelInformation
from . import reading
from .blueprint import Blueprint, InvalidComponent, explain, prepare
from .clients import RunModelClient
from .offline import OfflineChatCompletionClient
from .pool import ClientPool
from .run import RunInputs, TeamDefinition

logger = logging.getLogger(__name__)

SUFFIXES = (".json", ".yaml", ".yml")
_MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class TeamFileError(ValueError):
    """A team file (or TEAMS_DIR itself) the service cannot serve; the message names it."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


class ModelSection(BaseModel):
    """What /v1/models says about the team; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=_MODEL_ID)
    name: str | None = None
    description: str | None = None
    owned_by: str | None = None
    pricing: dict[str, str] | None = None
    context_length: int | None = Field(default=None, ge=1)
    architecture: dict[str, Any] | None = None
    top_provider: dict[str, Any] | None = None
    per_request_limits: dict[str, Any] | None = None


class TeamFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelSection = Field(default_factory=ModelSection)
    answer_agent: str | None = None
    component: dict[str, Any]


def team_paths(directory: str) -> list[Path]:
    folder = Path(directory)
    if not folder.is_dir():
        raise TeamFileError(folder, "TEAMS_DIR is not a directory.")
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def read_team_file(path: Path) -> TeamFile:
    """Parses a file in either shape; raises TeamFileError saying what is wrong."""
    try:
        if path.stat().st_size > reading.MAX_FILE_BYTES:
            raise reading.UnreadableTeamFile(f"is larger than {reading.MAX_FILE_BYTES} bytes.")
        data = reading.parse(path.read_text(encoding="utf-8"), is_json=path.suffix == ".json")
    except reading.UnreadableTeamFile as error:
        raise TeamFileError(path, str(error)) from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise TeamFileError(path, f"is not valid {kind}: {_parse_problem(error)}.") from None
    if not isinstance(data, dict):
        raise TeamFileError(path, "must hold a mapping: a team component, or {component: ...}.")
    if "provider" in data:
        data = {"component": data}
    try:
        return TeamFile.model_validate(data)
    except ValidationError as error:
        raise TeamFileError(path, explain(error)) from None


def _parse_problem(error: Exception) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(error)


def _information(team: TeamFile, model_id: str, blueprint: Blueprint) -> ModelInformation:
    component = team.component
    section = team.model.model_dump(exclude_none=True, exclude={"id", "owned_by"})
    label = component.get("label")
    kind = component["provider"].rpartition(".")[2]
    section.setdefault("name", label if label and label != kind else model_id)
    agents = ", ".join(blueprint.agent_names) or "no agents"
    default = f"An AutoGen {kind} team of {agents}."
    section.setdefault("description", component.get("description") or default)
    return ModelInformation(**section)


def _trial_inputs() -> RunInputs:
    client = RunModelClient(OfflineChatCompletionClient(token_delay=0), CancellationToken())
    history = [UserMessage(content="An earlier question.", source="user")]
    return RunInputs(client, "Instructions from a client.", history, max_turns=1)


def load_team(path: Path, settings: Settings, pool: ClientPool) -> TeamDefinition:
    team = read_team_file(path)
    model_id = team.model.id or path.stem
    if not re.fullmatch(_MODEL_ID, model_id):
        raise TeamFileError(path, f"{model_id!r} is not a usable model id: set model.id.")
    try:
        blueprint = prepare(team.component, pool, settings.MAX_TURNS)
        blueprint.build(_trial_inputs())
    except InvalidComponent as error:
        raise TeamFileError(path, str(error)) from None
    except ValidationError as error:
        raise TeamFileError(path, explain(error)) from None
    except Exception as error:  # AutoGen's own checks raise ValueError, TypeError and others
        raise TeamFileError(path, f"the team cannot be built: {error}") from None
    try:
        # After `prepare`, whose messages for a model client's own api_key are more precise.
        reading.check_secrets(team.component)
    except reading.UnreadableTeamFile as error:
        raise TeamFileError(path, str(error)) from None
    answer = team.answer_agent
    if answer is not None and answer not in blueprint.agent_names:
        agents = ", ".join(blueprint.agent_names)
        problem = f"answer_agent {answer!r} is not an agent of the team ({agents})."
        raise TeamFileError(path, problem)
    return TeamDefinition(
        id=model_id,
        name=(info := _information(team, model_id, blueprint)).name,
        description=info.description,
        build=blueprint.build,
        answer_agent=answer,
        answer_streams=answer is not None and blueprint.stops_after(answer),
        owned_by=team.model.owned_by or "fastapi-autogen-team",
        info=info,
        created=int(path.stat().st_mtime),
    )


def load_team_files(settings: Settings, pool: ClientPool) -> list[TeamDefinition]:
    """Every team in TEAMS_DIR; raises TeamFileError for the first file that cannot be served."""
    if not settings.TEAMS_DIR:
        return []
    definitions: dict[str, tuple[Path, TeamDefinition]] = {}
    for path in team_paths(settings.TEAMS_DIR):
        definition = load_team(path, settings, pool)
        if (seen := definitions.get(definition.id)) is not None:
            raise TeamFileError(
                path, f"declares model id {definition.id!r}, which {seen[0]} declares too."
            )
        definitions[definition.id] = (path, definition)
        logger.info("team file %s serves model %s", path, definition.id)
    if not definitions:
        logger.warning("TEAMS_DIR %s holds no .json, .yaml or .yml file", settings.TEAMS_DIR)
    return [definition for _, definition in definitions.values()]
