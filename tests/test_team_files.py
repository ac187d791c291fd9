"""Team files served as models, through the openai SDK against a real uvicorn."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import yaml
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.tools import FunctionTool
from autogen_ext.models.openai import OpenAIChatCompletionClient

from fastapi_autogen_team.teams.offline import OfflineChatCompletionClient
from support.schema import validate
from support.service import RunningService, running_service
from support.streams import Said, summarise_stream
from support.upstream import HttpError, ScriptedUpstream

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "teams"
EXAMPLE_IDS = ["plan-write-edit", "text-coach", "writer-critic"]
QUESTION = "Is water wet? I think it is."


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    with running_service(TEAMS_DIR=str(EXAMPLES)) as running:
        yield running


def sdk(service: RunningService) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)


def ask(service: RunningService, model: str, messages: list[dict[str, str]]) -> Said:
    stream = sdk(service).chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )  # type: ignore[call-overload]
    return summarise_stream([chunk.to_dict() for chunk in stream])


def turns(reasoning: str) -> list[tuple[str, str]]:
    """The reasoning channel as (speaker, text) turns, split on the `**speaker**` headers."""
    pieces = reasoning.split("**")[1:]
    return [(pieces[i], pieces[i + 1].strip()) for i in range(0, len(pieces), 2)]


def test_example_teams_are_listed_with_their_information(service: RunningService) -> None:
    body = httpx2.get(f"{service.base_url}/models").json()
    validate(body, "ListModelsResponse")
    listed = {model["id"]: model for model in body["data"]}
    assert sorted(listed) == ["autogen-team", *EXAMPLE_IDS]
    assert listed["text-coach"]["name"] == "Text coach"
    assert "text_stats tool" in listed["text-coach"]["description"]
    assert listed["plan-write-edit"]["context_length"] == 32000
    ready = httpx2.get(f"{service.url}/readyz").json()
    assert sorted(ready["teams"]) == ["autogen-team", *EXAMPLE_IDS]


@pytest.mark.parametrize("model", EXAMPLE_IDS)
def test_example_team_streams_a_complete_answer(service: RunningService, model: str) -> None:
    said = ask(service, model, [{"role": "user", "content": QUESTION}])
    assert said.finish_reason == "stop"
    assert QUESTION in said.content  # the offline model quotes the task it answers
    assert "**" not in said.content
    assert said.reasoning.startswith("**")
    assert said.usage is not None and said.usage["completion_tokens"] > 0


def test_plan_write_edit_streams_each_step_then_the_editor_answer(service: RunningService) -> None:
    said = ask(service, "plan-write-edit", [{"role": "user", "content": QUESTION}])
    assert [speaker for speaker, _ in turns(said.reasoning)] == ["planner", "writer"]
    assert said.content.startswith("Reviewed the draft by writer")


def test_tool_calls_and_results_stream_as_reasoning(service: RunningService) -> None:
    said = ask(service, "text-coach", [{"role": "user", "content": QUESTION}])
    [(speaker, text)] = turns(said.reasoning)
    assert speaker == "analyst"
    assert f"\u2192 text_stats({json.dumps({'text': QUESTION})})\n" in text
    assert "\u2190 text_stats: 7 words, 2 sentences, 28 characters;" in text
    assert said.content.startswith("Reviewed the draft by analyst")


def test_answer_agent_that_speaks_again_answers_with_its_last_turn(
    service: RunningService,
) -> None:
    said = ask(service, "writer-critic", [{"role": "user", "content": QUESTION}])
    spoken = turns(said.reasoning)
    assert [speaker for speaker, _ in spoken] == ["writer", "critic"] * 2 + ["writer"]
    assert said.content == spoken[-1][1]
    assert said.content != spoken[0][1]


def test_answer_is_the_answer_agent_last_turn_even_when_another_agent_ends_the_run(
    tmp_path: Path,
) -> None:
    team = yaml.safe_load((EXAMPLES / "writer-critic.yaml").read_text())
    limit = team["component"]["config"]["termination_condition"]["config"]["conditions"][1]
    limit["config"]["max_messages"] = 5  # task, writer, critic, writer, critic
    (tmp_path / "critic-last.yaml").write_text(yaml.safe_dump(team))
    with running_service(TEAMS_DIR=str(tmp_path)) as served:
        said = ask(served, "critic-last", [{"role": "user", "content": QUESTION}])
    spoken = turns(said.reasoning)
    assert [speaker for speaker, _ in spoken] == ["writer", "critic"] * 2
    assert said.content == spoken[2][1]


def test_final_mode_sends_only_the_answer_agent_last_turn() -> None:
    with running_service(TEAMS_DIR=str(EXAMPLES), AGENT_MESSAGES="final") as served:
        said = ask(served, "writer-critic", [{"role": "user", "content": QUESTION}])
    assert said.reasoning == ""
    assert said.content.startswith("Reviewed the draft by critic")
    assert said.content.count(QUESTION) == 1


def test_concurrent_requests_to_two_teams_and_one_team_stay_isolated(
    service: RunningService,
) -> None:
    def one(n: int) -> tuple[int, Said]:
        model = ("text-coach", "writer-critic")[n % 2]
        return n, ask(service, model, [{"role": "user", "content": f"About topic-{n}?"}])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(16)))
    for n, said in results:
        assert f"topic-{n}?" in said.content and f"topic-{n}?" in said.reasoning
        others = [f"topic-{m}?" for m in range(16) if m != n]
        assert not any(other in said.content + said.reasoning for other in others)
        speakers = {speaker for speaker, _ in turns(said.reasoning)}
        assert speakers == ({"analyst"} if n % 2 == 0 else {"writer", "critic"})


def word_count(text: str) -> str:
    """Counts the words of a text."""
    return f"{len(text.split())} words"


def built_team() -> RoundRobinGroupChat:
    model = OfflineChatCompletionClient(token_delay=0.001)
    tool = FunctionTool(word_count, description="Counts the words of a text.")
    counter = AssistantAgent(
        "counter",
        model_client=model,
        tools=[tool],
        system_message="Count the words of the request.",
        model_client_stream=True,
        reflect_on_tool_use=True,
    )
    answerer = AssistantAgent(
        "answerer", model_client=model, system_message="Answer.", model_client_stream=True
    )
    return RoundRobinGroupChat([counter, answerer], termination_condition=MaxMessageTermination(3))


def test_exported_team_serves_as_it_runs_in_code_from_json_and_yaml(tmp_path: Path) -> None:
    dumped = built_team().dump_component().model_dump(mode="json")
    (tmp_path / "from-json.json").write_text(json.dumps(dumped))
    (tmp_path / "from-yaml.yaml").write_text(yaml.safe_dump(dumped))
    in_code = asyncio.run(built_team().run(task=QUESTION, output_task_messages=False))

    with running_service(TEAMS_DIR=str(tmp_path)) as served:
        said = [
            ask(served, m, [{"role": "user", "content": QUESTION}])
            for m in ("from-json", "from-yaml")
        ]

    assert said[0] == said[1]
    assert said[0].content == in_code.messages[-1].to_model_text()
    assert "\u2190 word_count: 7 words" in said[0].reasoning
    assert [speaker for speaker, _ in turns(said[0].reasoning)] == ["counter", "answerer"]


def scripted_team(base_url: str) -> dict[str, Any]:
    client = OpenAIChatCompletionClient(
        model="scripted",
        base_url=base_url,
        api_key="sk-will-be-masked",
        model_info={
            "vision": False,
            "function_calling": True,
            "json_output": False,
            "family": "unknown",
            "structured_output": False,
        },
    )
    solo = AssistantAgent("solo", model_client=client, system_message="You answer.")
    dumped = RoundRobinGroupChat([solo], max_turns=1).dump_component().model_dump(mode="json")
    del dumped["config"]["participants"][0]["config"]["model_client"]["config"]["api_key"]
    return dumped


def test_keys_come_from_settings_only_for_their_own_endpoint(tmp_path: Path) -> None:
    history = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Earlier question."},
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": QUESTION},
    ]
    with ScriptedUpstream() as configured, ScriptedUpstream() as other:
        (tmp_path / "configured.json").write_text(json.dumps(scripted_team(configured.base_url)))
        (tmp_path / "other.yaml").write_text(yaml.safe_dump(scripted_team(other.base_url)))
        settings = {"LLM_BASE_URL": configured.base_url, "LLM_API_KEY": "sk-from-settings"}
        with running_service(TEAMS_DIR=str(tmp_path), **settings) as served:
            said = ask(served, "configured", history)
            ask(served, "other", history)

    assert said.content == "Reply 1 to: Is water wet? I think"  # its first five words
    [request] = configured.requests
    assert request.headers["authorization"] == "Bearer sk-from-settings"
    assert other.requests[0].headers["authorization"] == "Bearer not-needed"
    messages = [(m["role"], m["content"]) for m in request.body["messages"]]
    assert messages[0][0] == "system" and messages[0][1].endswith("Answer in French.")
    assert messages[1:] == [
        ("user", "Earlier question."),
        ("assistant", "Earlier answer."),
        ("user", QUESTION),
    ]


def test_upstream_failure_in_a_team_file_client_is_classified(tmp_path: Path) -> None:
    with ScriptedUpstream() as upstream:
        (tmp_path / "failing.json").write_text(json.dumps(scripted_team(upstream.base_url)))
        upstream.script(HttpError(status=503))
        with running_service(TEAMS_DIR=str(tmp_path)) as served:
            client = sdk(served)
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(
                    model="failing", messages=[{"role": "user", "content": "Hi"}]
                )
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_error"  # type: ignore[index]
