"""Loading TEAMS_DIR: a bad file stops start-up naming it; good ones build fresh teams cheaply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Team
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import (
    DiGraphBuilder,
    GraphFlow,
    MagenticOneGroupChat,
    RoundRobinGroupChat,
    SelectorGroupChat,
    Swarm,
)
from autogen_core import CancellationToken
from autogen_core.models import UserMessage
from autogen_ext.models.openai import OpenAIChatCompletionClient

from fastapi_autogen_team.teams.blueprint import prepare
from fastapi_autogen_team.teams.clients import RunModelClient
from fastapi_autogen_team.teams.loader import TeamFileError
from fastapi_autogen_team.teams.offline import OfflineChatCompletionClient
from fastapi_autogen_team.teams.pool import ClientPool
from fastapi_autogen_team.teams.registry import TeamRegistry, load_registry
from fastapi_autogen_team.teams.run import RunInputs
from support.service import free_port, quiet_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "teams"
SERVICE_MODEL = {"provider": "fastapi_autogen_team.teams.components.ServiceModel", "config": {}}
# Nothing listens here: the clients below are built, never called.
UNUSED_URL = "http://127.0.0.1:9/v1"
MODEL_INFO = {
    "vision": False,
    "function_calling": True,
    "json_output": False,
    "family": "unknown",
    "structured_output": False,
}


def agent(name: str, **config: Any) -> dict[str, Any]:
    return {
        "provider": "autogen_agentchat.agents.AssistantAgent",
        "component_type": "agent",
        "config": {
            "name": name,
            "description": f"The {name}.",
            "model_client": SERVICE_MODEL,
            "system_message": f"You are the {name}.",
            "model_client_stream": True,
            "reflect_on_tool_use": False,
            "tool_call_summary_format": "{result}",
        }
        | config,
    }


def round_robin(*names: str, **config: Any) -> dict[str, Any]:
    return {
        "provider": "autogen_agentchat.teams.RoundRobinGroupChat",
        "component_type": "team",
        "config": {"participants": [agent(name) for name in names]} | config,
    }


def write(folder: Path, name: str, data: Any) -> Path:
    path = folder / name
    if isinstance(data, str):
        path.write_text(data)
    elif path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return path


def load(folder: Path, **settings: Any) -> TeamRegistry:
    return load_registry(quiet_settings(TEAMS_DIR=str(folder), **settings))


def refused(folder: Path) -> str:
    with pytest.raises(TeamFileError) as caught:
        load(folder)
    return str(caught.value)


def openai_client(api_key: str = "sk-test") -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(
        model="scripted", base_url=UNUSED_URL, model_info=MODEL_INFO, api_key=api_key
    )


def exported(team: Team) -> dict[str, Any]:
    """What the README tells users to do: dump the team and delete the masked keys."""

    def without_keys(node: Any) -> Any:
        if isinstance(node, list):
            return [without_keys(item) for item in node]
        if isinstance(node, dict):
            return {k: without_keys(v) for k, v in node.items() if k != "api_key"}
        return node

    return without_keys(team.dump_component().model_dump(mode="json"))  # type: ignore[no-any-return]


def inputs(instructions: str = "", history: list[Any] | None = None) -> RunInputs:
    client = RunModelClient(OfflineChatCompletionClient(token_delay=0), CancellationToken())
    return RunInputs(client, instructions, history or [], max_turns=8)


@pytest.mark.anyio
async def test_examples_load_with_the_builtin_team_and_their_information() -> None:
    registry = load(EXAMPLES)
    try:
        served = {team.definition.id: team.definition for team in registry}
        assert sorted(served) == ["autogen-team", "plan-write-edit", "text-coach", "writer-critic"]
        assert served["writer-critic"].answer_agent == "writer"
        assert served["writer-critic"].answer_streams is False  # the writer speaks again
        assert served["text-coach"].answer_streams is True  # SourceMatchTermination(coach)
        assert served["plan-write-edit"].information().context_length == 32000
        assert served["text-coach"].information().name == "Text coach"
    finally:
        await registry.close()


BAD_FILES: list[tuple[str, Any, str]] = [
    ("broken.yaml", "component: [unclosed\n", "is not valid YAML"),
    ("broken.json", '{"provider": ', "is not valid JSON"),
    ("list.yaml", "- a\n- b\n", "must hold a mapping"),
    ("typo.yaml", {"answer_agnt": "x", "component": round_robin("a")}, "answer_agnt"),
    (
        "unknown-team.yaml",
        {"provider": "autogen_agentchat.teams.NoSuchTeam", "config": {}},
        "unknown provider 'autogen_agentchat.teams.NoSuchTeam'",
    ),
    (
        "unknown-module.yaml",
        {"provider": "no_such_package.Team", "config": {}},
        "unknown provider 'no_such_package.Team' (No module named 'no_such_package')",
    ),
    (
        "not-a-team.yaml",
        agent("solo"),
        "'autogen_agentchat.agents.AssistantAgent' is not a team",
    ),
    (
        "unknown-client.yaml",
        round_robin("a")
        | {
            "config": {
                "participants": [
                    agent("a", model_client={"provider": "my_llms.Client", "config": {}})
                ]
            }
        },
        "participants[0].model_client: unknown provider 'my_llms.Client'",
    ),
    (
        "not-a-client.yaml",
        round_robin("a")
        | {
            "config": {
                "participants": [
                    agent(
                        "a",
                        model_client={
                            "provider": "autogen_agentchat.conditions.MaxMessageTermination",
                            "config": {"max_messages": 2},
                        },
                    )
                ]
            }
        },
        "participants[0].model_client: 'autogen_agentchat.conditions.MaxMessageTermination' "
        "is not a model client",
    ),
    (
        "invalid.yaml",
        round_robin("a") | {"config": {"participants": [agent("a", description=None)]}},
        "participants[0]: failed validation: description: Input should be a valid string",
    ),
    (
        "no-participants.yaml",
        round_robin() | {"config": {"participants": []}},
        "the team cannot be built: At least one participant is required",
    ),
    (
        "bad-client-config.yaml",
        round_robin("a")
        | {
            "config": {
                "participants": [
                    agent(
                        "a",
                        model_client={
                            "provider": "OpenAIChatCompletionClient",
                            "config": {"model": "not-an-openai-model", "base_url": UNUSED_URL},
                        },
                    )
                ]
            }
        },
        "participants[0].model_client: the model client cannot be built: model_info is required",
    ),
    (
        "bad-tool.yaml",
        round_robin("a")
        | {
            "config": {
                "participants": [
                    agent(
                        "a",
                        tools=[
                            {
                                "provider": "autogen_core.tools.FunctionTool",
                                "config": {
                                    "name": "broken",
                                    "description": "Does not compile.",
                                    "source_code": "def broken(:\n",
                                    "global_imports": [],
                                    "has_cancellation_support": False,
                                },
                            }
                        ],
                    )
                ]
            }
        },
        "participants[0].tools[0]: the tool cannot be built",
    ),
    (
        "wrong-answer-agent.yaml",
        {"answer_agent": "editor", "component": round_robin("writer", "critic")},
        "answer_agent 'editor' is not an agent of the team (writer, critic)",
    ),
    ("bad id.yaml", round_robin("a"), "'bad id' is not a usable model id: set model.id"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_team_file_stops_loading_with_a_message_naming_it(
    tmp_path: Path, name: str, data: Any, message: str
) -> None:
    path = write(tmp_path, name, data)
    problem = refused(tmp_path)
    assert problem.startswith(f"{path}: ")
    assert message in problem


def test_masked_key_from_dump_component_is_refused(tmp_path: Path) -> None:
    team = RoundRobinGroupChat([AssistantAgent("a", model_client=openai_client())])
    dumped = team.dump_component().model_dump(mode="json")
    assert dumped["config"]["participants"][0]["config"]["model_client"]["config"]["api_key"] == (
        "**********"
    )
    path = write(tmp_path, "exported.json", dumped)
    problem = refused(tmp_path)
    assert problem.startswith(f"{path}: the team component at participants[0].model_client")
    assert "has an 'api_key'" in problem and "**********" in problem


@pytest.mark.parametrize("secret", ["sk-live-0123456789", "**********"])
def test_key_in_clear_or_masked_is_refused_without_echoing_it(tmp_path: Path, secret: str) -> None:
    client = {
        "provider": "OpenAIChatCompletionClient",
        "config": {"model": "scripted", "base_url": UNUSED_URL, "api_key": secret},
    }
    keyed = agent("a", model_client=client)
    write(tmp_path, "keyed.yaml", round_robin() | {"config": {"participants": [keyed]}})
    problem = refused(tmp_path)
    assert "participants[0].model_client: has an 'api_key'" in problem
    assert secret not in problem.replace("'**********'", "")  # never echoed


def test_masked_secret_outside_a_model_client_is_refused(tmp_path: Path) -> None:
    team = round_robin("a") | {"config": {"participants": [agent("a", system_message="*" * 10)]}}
    write(tmp_path, "masked.yaml", team)
    assert "participants[0].system_message: holds a masked secret" in refused(tmp_path)


def test_two_files_with_one_model_id_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "first.yaml", round_robin("a"))
    write(tmp_path, "second.json", {"model": {"id": "first"}, "component": round_robin("b")})
    problem = refused(tmp_path)
    assert problem.startswith(f"{tmp_path / 'second.json'}: declares model id 'first'")
    assert str(tmp_path / "first.yaml") in problem


def test_missing_teams_dir_is_an_error(tmp_path: Path) -> None:
    assert refused(tmp_path / "nowhere").endswith("nowhere: TEAMS_DIR is not a directory.")


@pytest.mark.anyio
async def test_team_file_with_the_builtin_id_replaces_the_builtin_team(tmp_path: Path) -> None:
    write(tmp_path, "mine.yaml", {"model": {"id": "autogen-team"}, "component": round_robin("x")})
    registry = load(tmp_path)
    try:
        assert [team.definition.id for team in registry] == ["autogen-team"]
        assert registry.get("autogen-team").definition.answer_agent is None  # type: ignore[union-attr]
    finally:
        await registry.close()


CONSOLE_SCRIPT = ["-c", "from fastapi_autogen_team.main import run; run()"]
PLAIN_UVICORN = ["-m", "uvicorn", "fastapi_autogen_team.main:app", "--host", "127.0.0.1"]
UVICORN_STARTUP_FAILURE = 3  # the exit code that stops uvicorn's worker supervisor


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (CONSOLE_SCRIPT, 1),
        (PLAIN_UVICORN, UVICORN_STARTUP_FAILURE),
        # A worker that dies at start-up any other way is restarted forever; this one makes
        # the supervisor stop (and exit 0, uvicorn's choice) instead of hitting the timeout.
        ([*PLAIN_UVICORN, "--workers", "2"], 0),
    ],
    ids=["script", "uvicorn", "uvicorn-workers"],
)
def test_start_up_prints_the_bad_file_without_a_traceback(
    tmp_path: Path, command: list[str], exit_code: int
) -> None:
    folder = tmp_path / "teams"
    folder.mkdir()
    path = write(folder, "broken.yaml", "component: [unclosed\n")
    port = str(free_port())  # never bound: start-up stops before serving
    env = os.environ | {
        "TEAMS_DIR": str(folder),
        "LOG_FILE": "",
        "TELEMETRY_ENABLED": "false",
        "DEFAULT_PORT": port,
    }
    done = subprocess.run(
        [sys.executable, *command, *(["--port", port] if "uvicorn" in command else [])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    stderr = done.stderr.decode()
    assert done.returncode == exit_code
    assert f"{path}: is not valid YAML" in stderr
    assert "Traceback" not in stderr


def _every_team_kind() -> list[Callable[[], Team]]:
    def agents() -> list[AssistantAgent]:
        client = openai_client()
        return [
            AssistantAgent(n, model_client=client, handoffs=["b" if n == "a" else "a"])
            for n in ("a", "b")
        ]

    def graph() -> GraphFlow:
        first, second = agents()
        builder = DiGraphBuilder()
        builder.add_node(first).add_node(second).add_edge(first, second)
        return GraphFlow([first, second], graph=builder.build())

    return [
        lambda: RoundRobinGroupChat(agents(), termination_condition=MaxMessageTermination(3)),
        lambda: SelectorGroupChat(agents(), model_client=openai_client()),
        lambda: Swarm(agents()),
        lambda: MagenticOneGroupChat(agents(), model_client=openai_client()),
        graph,
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("make", _every_team_kind(), ids=["rr", "selector", "swarm", "m1", "graph"])
async def test_every_autogen_team_kind_loads_and_builds(
    tmp_path: Path, make: Callable[[], Team]
) -> None:
    team = make()
    write(tmp_path, "kind.yaml", exported(team))
    registry = load(tmp_path, MAX_TURNS=5)
    try:
        definition = registry.get("kind").definition  # type: ignore[union-attr]
        built = definition.build(inputs())
        assert type(built) is type(team)
        assert definition.information().name == "kind"
    finally:
        await registry.close()


@pytest.mark.anyio
async def test_each_build_is_a_fresh_team_and_leaves_the_definition_unchanged() -> None:
    """The per-request build copies what it changes and runs no tool source code again (the
    SECURITY WARNING that loading a FunctionTool emits would fail this test)."""
    team = yaml.safe_load((EXAMPLES / "text-coach.yaml").read_text())["component"]
    pool = ClientPool(quiet_settings(), OfflineChatCompletionClient(token_delay=0))
    blueprint = prepare(team, pool, max_turns=8)
    before = json.dumps(blueprint.template, sort_keys=True)
    history = [UserMessage(content="An earlier question.", source="user")]

    first = blueprint.build(inputs("Be brief.", history))
    second = blueprint.build(inputs())

    assert first is not second
    assert json.dumps(blueprint.template, sort_keys=True) == before
    assert blueprint.tools and not (set(blueprint.clients) - {"service"})
    assert "Be brief." in json.dumps(blueprint.for_run("Be brief.", []), default=str)


@pytest.mark.anyio
async def test_team_without_termination_stops_at_max_turns(tmp_path: Path) -> None:
    write(tmp_path, "endless.yaml", round_robin("a", "b"))
    registry = load(tmp_path, MAX_TURNS=3)
    try:
        team = registry.get("endless").definition.build(inputs())  # type: ignore[union-attr]
        result = await team.run(task="Go on.", output_task_messages=False)
        assert [m.source for m in result.messages] == ["a", "b", "a"]
    finally:
        await registry.close()


@pytest.mark.anyio
async def test_files_with_one_client_configuration_share_one_client(tmp_path: Path) -> None:
    for name, model in [("one", "scripted"), ("two", "scripted"), ("three", "other")]:
        client = exported(RoundRobinGroupChat([AssistantAgent("a", openai_client())]))
        client = client["config"]["participants"][0]["config"]["model_client"]
        client["config"]["model"] = model
        participant = agent("a", model_client=client)
        write(tmp_path, f"{name}.yaml", round_robin() | {"config": {"participants": [participant]}})
    registry = load(tmp_path)
    try:
        assert len(registry.clients) == 3  # the service's own, and one per distinct config
    finally:
        await registry.close()


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        previous = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{previous}]")
    team = yaml.safe_dump(round_robin("writer"))
    return "\n".join(lines) + "\n" + team.replace("config:\n", "config:\n  x: *a9\n", 1)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bomb.yaml", _alias_bomb(), "expands to more than"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("deep.yaml", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("wide.json", json.dumps({"x": "y" * 1_100_000}), "larger than"),
    ],
)
def test_hostile_file_is_refused_quickly_naming_it(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    """Bug: an alias bomb hung start-up and deep nesting crashed it with a bare RecursionError
    that named no file. Cause: nothing bounded what a file could expand to or nest."""
    write(tmp_path, name, text)
    message = refused(tmp_path)
    assert message.startswith(str(tmp_path / name)) and problem in message


@pytest.mark.parametrize(
    "where",
    [
        {"default_headers": {"Authorization": "Bearer sk-hidden-1"}},
        {"model_info": MODEL_INFO | {"api_key": "sk-hidden-2"}},
    ],
)
def test_credential_nested_in_a_client_is_refused(tmp_path: Path, where: dict[str, Any]) -> None:
    client = {
        "provider": "autogen_ext.models.openai.OpenAIChatCompletionClient",
        "config": {"model": "scripted", "base_url": UNUSED_URL, "model_info": MODEL_INFO} | where,
    }
    team = round_robin("writer")
    team["config"]["participants"][0]["config"]["model_client"] = client
    write(tmp_path, "hidden.yaml", team)
    message = refused(tmp_path)
    assert "holds a credential" in message and "sk-hidden" not in message


def test_credential_in_agent_metadata_is_refused(tmp_path: Path) -> None:
    team = round_robin("writer")
    team["config"]["participants"][0]["config"]["metadata"] = {"api_key": "sk-hidden-3"}
    write(tmp_path, "meta.yaml", team)
    assert "holds a credential at $." in refused(tmp_path)


def test_file_name_with_a_newline_is_not_a_model_id(tmp_path: Path) -> None:
    """Bug: `re.match` with `$` accepted "abc\\n" as a model id from a file named so."""
    write(tmp_path, "abc\n.yaml", round_robin("writer"))
    assert "is not a usable model id" in refused(tmp_path)
