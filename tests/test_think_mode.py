"""AGENT_MESSAGES=think: inner turns in one `<think>…</think>` block in content, then the answer."""

from __future__ import annotations

from collections.abc import Sequence

import httpx2
import pytest
from autogen_agentchat.messages import ModelClientStreamingChunkEvent, TextMessage
from pydantic import ValidationError

from fastapi_autogen_team.streaming import DeltaMapper
from support.service import quiet_settings, running_service
from support.streams import parse_sse, summarise_stream


def streamed(source: str, *tokens: str) -> list[object]:
    """What a streaming agent's turn looks like to the mapper: its chunks, then its message."""
    message = TextMessage(source=source, content="".join(tokens))
    chunks = [
        ModelClientStreamingChunkEvent(source=source, content=token, full_message_id=message.id)
        for token in tokens
    ]
    return [*chunks, message]


def said(mapper: DeltaMapper, events: Sequence[object]) -> str:
    deltas = [delta for event in events for delta in mapper.map(event)]
    deltas += mapper.finish()
    assert {delta.channel for delta in deltas} == {"content"}
    return "".join(delta.text for delta in deltas)


def test_think_mode_wraps_inner_turns_then_streams_the_answer() -> None:
    events = [*streamed("drafter", "Draft ", "one."), *streamed("reviewer", "Fine ", "answer.")]
    text = said(DeltaMapper("think", answer_agent="reviewer"), events)
    assert text == "<think>\n**drafter**\nDraft one.\n</think>\n\nFine answer."


def test_think_mode_heads_each_speaker_inside_one_block() -> None:
    events = [*streamed("a", "First."), *streamed("b", "Second."), *streamed("c", "Answer.")]
    text = said(DeltaMapper("think", answer_agent="c"), events)
    assert text == "<think>\n**a**\nFirst.\n\n**b**\nSecond.\n</think>\n\nAnswer."


def test_think_mode_without_answer_agent_closes_block_before_last_message() -> None:
    events = [*streamed("a", "First."), *streamed("b", "Last.")]
    text = said(DeltaMapper("think", answer_agent=None), events)
    assert text == "<think>\n**a**\nFirst.\n\n**b**\nLast.\n</think>\n\nLast."


def test_think_mode_reopens_a_block_for_a_turn_after_the_answer_and_closes_it() -> None:
    events = [*streamed("r", "Answer."), *streamed("d", "Afterthought.")]
    text = said(DeltaMapper("think", answer_agent="r"), events)
    assert text == "Answer.<think>\n**d**\nAfterthought.\n</think>\n\n"


def test_think_mode_is_a_valid_agent_messages_setting() -> None:
    assert quiet_settings(AGENT_MESSAGES="think").AGENT_MESSAGES == "think"
    with pytest.raises(ValidationError, match="AGENT_MESSAGES"):
        quiet_settings(AGENT_MESSAGES="thinking")


def test_think_mode_stream_has_no_reasoning_field_and_one_think_block() -> None:
    request = {
        "model": "autogen-team",
        "stream": True,
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
    }
    with running_service(AGENT_MESSAGES="think") as service:
        url = f"{service.base_url}/chat/completions"
        body = httpx2.post(url, json=request, timeout=30).text
        whole = httpx2.post(url, json=request | {"stream": False}, timeout=30).json()
    stream = summarise_stream(parse_sse(body))
    assert stream.reasoning == ""
    assert stream.content.startswith("<think>\n**drafter**\nDraft for")
    assert stream.content.count("<think>") == stream.content.count("</think>") == 1
    message = whole["choices"][0]["message"]
    assert message["content"] == stream.content
    assert "reasoning_content" not in message
