"""LangChain's chat models with `base_url` pointed at a real uvicorn.

`ChatOpenAI` (langchain-openai 1.8) keeps only OpenAI's own fields: it drops
`reasoning_content`, so its users see the answer and none of the inner agents' turns (or the
turns inline, with AGENT_MESSAGES=think). `ChatDeepSeek` (langchain-deepseek), the same client
with DeepSeek's `reasoning_content` added, exposes them in `additional_kwargs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_deepseek import ChatDeepSeek
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from support.clients import QUESTION, TEAM, Target
from support.service import running_service


# LangChain caches one HTTP client per process unless given one; the tests' own are closed.
@pytest.fixture
def http_client() -> Iterator[openai.DefaultHttpxClient]:
    with openai.DefaultHttpxClient() as client:
        yield client


@pytest.fixture
async def http_async_client() -> AsyncIterator[openai.DefaultAsyncHttpxClient]:
    async with openai.DefaultAsyncHttpxClient() as client:
        yield client


def options(base_url: str, http: dict[str, Any]) -> dict[str, Any]:
    """What both chat models get: the team, the test server, no retries, usage on streams."""
    return {
        "model": TEAM,
        "base_url": base_url,
        "api_key": SecretStr("unused"),
        "max_retries": 0,
        "stream_usage": True,
        **http,
    }


def chat_openai(base_url: str, **http: Any) -> ChatOpenAI:
    return ChatOpenAI(**options(base_url, http))


def chat_deepseek(base_url: str, **http: Any) -> ChatDeepSeek:
    return ChatDeepSeek(**options(base_url, http))


def joined(chunks: Iterable[AIMessageChunk]) -> AIMessageChunk:
    pieces = list(chunks)
    assert pieces and all(isinstance(piece, AIMessageChunk) for piece in pieces)
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    return total


def check_usage(message: BaseMessage) -> None:
    usage = getattr(message, "usage_metadata", None)
    assert usage is not None
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_chat_openai_invoke_returns_the_answer_and_usage(
    target: Target, http_client: openai.DefaultHttpxClient
) -> None:
    target.expect_runs(1)
    message = chat_openai(target.base_url, http_client=http_client).invoke(QUESTION)
    assert isinstance(message.content, str)
    target.check_answer(message.content)
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["model_name"] == TEAM
    check_usage(message)
    assert "reasoning_content" not in message.additional_kwargs


def test_chat_openai_stream_joins_to_the_answer(
    target: Target, http_client: openai.DefaultHttpxClient
) -> None:
    target.expect_runs(1)
    message = joined(chat_openai(target.base_url, http_client=http_client).stream(QUESTION))
    assert isinstance(message.content, str)
    target.check_answer(message.content)
    assert message.response_metadata["finish_reason"] == "stop"
    check_usage(message)
    assert "reasoning_content" not in message.additional_kwargs


@pytest.mark.anyio
async def test_chat_openai_astream_joins_to_the_answer(
    target: Target, http_async_client: openai.DefaultAsyncHttpxClient
) -> None:
    target.expect_runs(1)
    message = joined(
        [
            chunk
            async for chunk in chat_openai(
                target.base_url, http_async_client=http_async_client
            ).astream(QUESTION)
        ]
    )
    assert isinstance(message.content, str)
    target.check_answer(message.content)
    check_usage(message)


def test_chat_deepseek_invoke_exposes_inner_turns_as_reasoning(
    target: Target, http_client: openai.DefaultHttpxClient
) -> None:
    target.expect_runs(1)
    message = chat_deepseek(target.base_url, http_client=http_client).invoke(QUESTION)
    assert isinstance(message.content, str)
    target.check_answer(message.content)
    target.check_reasoning(message.additional_kwargs["reasoning_content"])
    kinds = [block["type"] for block in message.content_blocks]
    assert kinds == ["reasoning", "text"]


def test_chat_deepseek_stream_exposes_inner_turns_as_reasoning(
    target: Target, http_client: openai.DefaultHttpxClient
) -> None:
    target.expect_runs(1)
    message = joined(chat_deepseek(target.base_url, http_client=http_client).stream(QUESTION))
    assert isinstance(message.content, str)
    target.check_answer(message.content)
    target.check_reasoning(message.additional_kwargs["reasoning_content"])
    check_usage(message)


@pytest.mark.anyio
async def test_chat_deepseek_astream_exposes_inner_turns_as_reasoning(
    target: Target, http_async_client: openai.DefaultAsyncHttpxClient
) -> None:
    target.expect_runs(1)
    chunks = [
        chunk
        async for chunk in chat_deepseek(
            target.base_url, http_async_client=http_async_client
        ).astream(QUESTION)
    ]
    message = joined(chunks)
    assert isinstance(message.content, str)
    target.check_answer(message.content)
    target.check_reasoning(message.additional_kwargs["reasoning_content"])


def test_chat_openai_sees_think_mode_inner_turns_in_content(
    http_client: openai.DefaultHttpxClient,
) -> None:
    with running_service(AGENT_MESSAGES="think") as service:
        message = chat_openai(service.base_url, http_client=http_client).invoke(QUESTION)
    assert isinstance(message.content, str)
    thinking, closing, answer = message.content.partition("\n</think>\n\n")
    assert closing
    assert thinking.startswith(f"<think>\n**drafter**\nDraft for \u201c{QUESTION}\u201d")
    assert f"Answer to \u201c{QUESTION}\u201d" in answer
