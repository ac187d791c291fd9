"""Agents on the service's client stream their tokens to the run, not through AutoGen's runtime.

Through the runtime each chunk cost ~110 µs (envelopes, queues, a task per recipient), about a
fifth of the service's CPU per streamed chunk; handed over by the client it costs a few.
"""

from __future__ import annotations

from typing import Any

import pytest
from autogen_agentchat.base import TaskResult, Team
from autogen_agentchat.messages import (
    ModelClientStreamingChunkEvent,
    TextMessage,
    ToolCallSummaryMessage,
)
from autogen_core import CancellationToken

from fastapi_autogen_team.streaming import DeltaMapper
from fastapi_autogen_team.teams.blueprint import prepare
from fastapi_autogen_team.teams.builtin import build_team
from fastapi_autogen_team.teams.clients import AgentToken, RunModelClient
from fastapi_autogen_team.teams.offline import OfflineChatCompletionClient
from fastapi_autogen_team.teams.pool import ClientPool
from fastapi_autogen_team.teams.run import RunInputs
from support.service import quiet_settings

SERVICE_MODEL = {"provider": "fastapi_autogen_team.teams.components.ServiceModel", "config": {}}


def streaming_inputs(sink: list[object]) -> RunInputs:
    client = RunModelClient(
        OfflineChatCompletionClient(token_delay=0), CancellationToken(), sink=sink.append
    )
    return RunInputs(client, "", [], max_turns=4)


def team_file(*names: str) -> dict[str, Any]:
    agents = [
        {
            "provider": "autogen_agentchat.agents.AssistantAgent",
            "config": {
                "name": name,
                "description": f"The {name}.",
                "model_client": SERVICE_MODEL,
                "system_message": f"You are the {name}.",
                "model_client_stream": True,
                "reflect_on_tool_use": False,
                "tool_call_summary_format": "{result}",
            },
        }
        for name in names
    ]
    return {
        "provider": "autogen_agentchat.teams.RoundRobinGroupChat",
        "config": {
            "participants": agents,
            "termination_condition": {
                "provider": "autogen_agentchat.conditions.MaxMessageTermination",
                "config": {"max_messages": len(names) + 1},
            },
        },
    }


async def run_recording(team: Team, tokens: list[object]) -> list[tuple[str, object]]:
    """The run's events in arrival order, each marked with the way it came."""
    events: list[tuple[str, object]] = []
    seen = 0
    async for event in team.run_stream(task="Say something.", output_task_messages=False):
        events += [("client", token) for token in tokens[seen:]]
        seen = len(tokens)
        if not isinstance(event, TaskResult):
            events.append(("runtime", event))
    return events + [("client", token) for token in tokens[seen:]]


def check_streamed_directly(events: list[tuple[str, object]], agents: list[str]) -> None:
    through_runtime = [event for way, event in events if way == "runtime"]
    assert not any(isinstance(e, ModelClientStreamingChunkEvent) for e in through_runtime)
    messages = [e for e in through_runtime if isinstance(e, TextMessage)]
    assert [message.source for message in messages] == agents
    for message in messages:
        position = events.index(("runtime", message))
        streamed = [
            e.text for way, e in events[:position] if isinstance(e, AgentToken) and way == "client"
        ]
        own = [
            e.text
            for e in (event for _, event in events[:position])
            if isinstance(e, AgentToken) and e.source == message.source
        ]
        assert streamed, f"{message.source}'s tokens did not arrive before its message"
        assert "".join(own) == message.content


@pytest.mark.anyio
async def test_builtin_team_tokens_bypass_runtime_and_precede_each_message() -> None:
    tokens: list[object] = []
    events = await run_recording(build_team(streaming_inputs(tokens)), tokens)
    check_streamed_directly(events, ["drafter", "reviewer"])


@pytest.mark.anyio
async def test_team_file_streaming_agents_bypass_runtime_and_precede_each_message() -> None:
    pool = ClientPool(quiet_settings(), OfflineChatCompletionClient(token_delay=0))
    blueprint = prepare(team_file("first", "second"), pool, max_turns=8)
    tokens: list[object] = []
    events = await run_recording(blueprint.build(streaming_inputs(tokens)), tokens)
    check_streamed_directly(events, ["first", "second"])


def test_mapper_skips_a_streamed_text_message_but_not_a_tool_summary() -> None:
    mapper = DeltaMapper("reasoning", answer_agent="answer")
    events: list[object] = [
        AgentToken("helper", "Looked "),
        AgentToken("helper", "it up."),
        TextMessage(source="helper", content="Looked it up."),
        ToolCallSummaryMessage(source="helper", content="42", tool_calls=[], results=[]),
        AgentToken("answer", "It is 42."),
        TextMessage(source="answer", content="It is 42."),
    ]
    deltas = [delta for event in events for delta in mapper.map(event)] + mapper.finish()
    reasoning = "".join(d.text for d in deltas if d.channel == "reasoning")
    content = "".join(d.text for d in deltas if d.channel == "content")
    assert reasoning == "**helper**\nLooked it up.42"
    assert content == "It is 42."


def test_tool_lines_come_before_the_reply_that_uses_them_and_only_once() -> None:
    """Bug: a tool's result reached the run through AutoGen's runtime after the first tokens
    of the reply that read it (tokens take the faster path), so the reasoning channel showed
    "Checked ← word_count: 7 words". Cause: tool events only travelled through the runtime."""
    from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent
    from autogen_core import FunctionCall
    from autogen_core.models import FunctionExecutionResult

    from fastapi_autogen_team.streaming import DeltaMapper
    from fastapi_autogen_team.teams.clients import AgentToken, AgentToolCalls, AgentToolResults

    call = FunctionCall(id="call_1", name="word_count", arguments='{"text": "a b"}')
    result = FunctionExecutionResult(content="2 words", name="word_count", call_id="call_1")
    mapper = DeltaMapper("reasoning", answer_agent=None)
    events = [
        AgentToolCalls("counter", [call]),
        AgentToolResults("counter", [result]),
        AgentToken("counter", "Checked."),
        ToolCallRequestEvent(source="counter", content=[call]),  # the runtime's late copies
        ToolCallExecutionEvent(source="counter", content=[result]),
    ]
    text = "".join(delta.text for event in events for delta in mapper.map(event))
    assert text == ('**counter**\n→ word_count({"text": "a b"})\n← word_count: 2 words\nChecked.')
