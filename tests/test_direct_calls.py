"""The direct model-call path (teams/direct.py) against the openai SDK's, call for call.

Each case plays the same scripted upstream step to both paths and compares what the upstream
received (the body, and the headers that carry meaning) and what the caller got (the text
pieces, then the CreateResult). Then the cases only the direct path has: failures raised as
the SDK's exception types, cancellation through the run's token, the connection reused after
[DONE], and the calls it leaves to the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
import pytest
from autogen_core import CancellationToken
from autogen_core.models import AssistantMessage, CreateResult, SystemMessage, UserMessage
from autogen_core.tools import FunctionTool
from autogen_ext.models.openai import AzureOpenAIChatCompletionClient, OpenAIChatCompletionClient
from pydantic import BaseModel

from fastapi_autogen_team.teams.chunks import SSEReader
from fastapi_autogen_team.teams.clients import build_default_client
from fastapi_autogen_team.teams.direct import direct_chat
from fastapi_autogen_team.teams.http import tracked_http_client
from fastapi_autogen_team.teams.offline import OfflineChatCompletionClient
from fastapi_autogen_team.teams.pool import ClientPool
from support.service import behind, quiet_settings
from support.upstream import (
    Drop,
    Hang,
    HttpError,
    Malformed,
    RawStream,
    Reply,
    ScriptedUpstream,
    ToolCall,
    ToolCalls,
)

pytestmark = pytest.mark.anyio

MODEL_INFO: Any = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": "unknown",
    "structured_output": True,
}
MESSAGES = [
    SystemMessage(content="Be brief."),
    UserMessage(content="Earlier question", source="user"),
    AssistantMessage(content="Earlier answer", source="writer"),
    UserMessage(content="What is a haiku? Answer in ünïcode ✓", source="user"),
]
# Headers whose value means something to an upstream; the SDK's retry bookkeeping is not one.
MEANINGFUL_HEADERS = (
    "authorization",
    "content-type",
    "accept",
    "user-agent",
    "openai-organization",
    "x-team",
    "x-stainless-lang",
)


def word_count(text: str) -> int:
    """Counts the words of `text`."""
    return len(text.split())


def client_for(upstream: ScriptedUpstream, **config: Any) -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(
        model="scripted",
        base_url=upstream.base_url,
        api_key="sk-direct-test",
        organization="org-test",
        default_headers={"X-Team": "direct"},
        model_info=MODEL_INFO,
        max_retries=0,
        stream_options={"include_usage": True},
        http_client=tracked_http_client(),
        **{"timeout": 30.0, **config},  # the service always sets one (LLM_TIMEOUT)
    )


@contextlib.asynccontextmanager
async def opened(
    upstream: ScriptedUpstream, **config: Any
) -> AsyncIterator[OpenAIChatCompletionClient]:
    """A client for `upstream`, closed when the block ends."""
    client = client_for(upstream, **config)
    try:
        yield client
    finally:
        await client.close()


def comparable(items: list[str | CreateResult]) -> list[object]:
    return [item if isinstance(item, str) else item.model_dump() for item in items]


async def via_sdk(client: OpenAIChatCompletionClient, **options: Any) -> list[str | CreateResult]:
    return [item async for item in client.create_stream(MESSAGES, **options)]


async def via_direct(
    client: OpenAIChatCompletionClient,
    token: CancellationToken | None = None,
    **options: Any,
) -> list[str | CreateResult]:
    direct = direct_chat(client)
    assert direct is not None
    call = direct.prepare(
        MESSAGES,
        options.get("tools", []),
        options.get("tool_choice", "auto"),
        options.get("json_output"),
        options.get("extra_create_args", {}),
    )
    assert call is not None
    return [item async for item in call.stream(token or CancellationToken())]


def sse(*chunks: object, end: bytes = b"\n\n") -> list[bytes]:
    return [b"data: " + json.dumps(chunk).encode() + end for chunk in chunks]


HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up-1"}
USAGE = {**HEAD, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}}
TOP = {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}
LOGPROBS = {"content": [{**TOP, "top_logprobs": [TOP]}]}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


REASONING_THEN_TEXT = RawStream(
    [
        b": a comment the reader skips\r\n\r\n",
        *sse(chunk({"role": "assistant", "reasoning_content": "Think"}), end=b"\r\n\r\n"),
        *sse(chunk({"reasoning_content": "ing it over"})),
        # one event split across two reads, with CR line ends
        b'data: {"id": "c1", "object": "chat.completion.chunk", "created": 1, "mod',
        b'el": "up-1", "choices": [{"index": 0, "delta": {"content": "Hi"}, '
        + b'"finish_reason": null, "logprobs": '
        + json.dumps(LOGPROBS).encode()
        + b"}]}\r\r",
        *sse(chunk({"content": " there"}), chunk({}, "length"), USAGE),
        b"data: [DONE]\n\n",
    ]
)

CASES = {
    "text with sampling fields": (
        Reply.text("A short poem of three lines."),
        {"extra_create_args": {"temperature": 0.2, "max_tokens": 50, "seed": 7}},
    ),
    "tool calls": (
        ToolCalls(
            [
                ToolCall("word_count", {"text": "one two three"}, id="call_a"),
                ToolCall("word_count", id="call_b"),
            ]
        ),
        {"tools": [FunctionTool(word_count, description="Counts words.")]},
    ),
    "tool choice required": (
        ToolCalls([ToolCall("word_count", {"text": "x"}, id="call_c")]),
        {
            "tools": [FunctionTool(word_count, description="Counts words.")],
            "tool_choice": "required",
        },
    ),
    "json mode": (Reply.text('{"answer": 42}'), {"json_output": True}),
    "reasoning, CR and CRLF line ends, split events, logprobs": (REASONING_THEN_TEXT, {}),
}


@pytest.mark.parametrize("case", CASES)
async def test_direct_path_sends_and_reads_what_the_sdk_does(
    upstream: ScriptedUpstream, case: str
) -> None:
    step, options = CASES[case]
    upstream.script(step, step)
    async with opened(upstream) as client:
        expected = await via_sdk(client, **options)
        got = await via_direct(client, **options)

    assert comparable(got) == comparable(expected)
    assert isinstance(got[-1], CreateResult)
    sdk_request, direct_request = upstream.requests
    assert direct_request.body == sdk_request.body
    for name in MEANINGFUL_HEADERS:
        assert direct_request.headers.get(name) == sdk_request.headers.get(name), name


async def test_reasoning_split_events_and_usage_are_read(upstream: ScriptedUpstream) -> None:
    """The byte-level case read right, not merely read alike by both paths."""
    upstream.script(REASONING_THEN_TEXT)
    async with opened(upstream) as client:
        *texts, result = await via_direct(client)
    assert texts == ["<think>Think", "ing it over", "</think>", "Hi", " there"]
    assert isinstance(result, CreateResult)
    assert (result.content, result.thought) == ("Hi there", "Thinking it over")
    assert result.finish_reason == "length"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 7)


@pytest.mark.parametrize(
    ("step", "error_type"),
    [
        (HttpError(429, retry_after=3), openai.RateLimitError),
        (HttpError(500), openai.InternalServerError),
        (HttpError(400, "bad field"), openai.BadRequestError),
        (HttpError(401), openai.AuthenticationError),
    ],
)
async def test_http_failures_raise_the_sdks_exception_types(
    upstream: ScriptedUpstream, step: HttpError, error_type: type[openai.APIStatusError]
) -> None:
    upstream.script(step, step)
    async with opened(upstream) as client:
        with pytest.raises(error_type) as from_sdk:
            await via_sdk(client)
        with pytest.raises(error_type) as direct:
            await via_direct(client)
    assert direct.value.status_code == from_sdk.value.status_code == step.status
    assert direct.value.body == from_sdk.value.body
    assert direct.value.response.headers.get("retry-after") == (
        None if step.retry_after is None else f"{step.retry_after:g}"
    )


async def test_error_event_mid_stream_raises_api_error(upstream: ScriptedUpstream) -> None:
    error = {"error": {"message": "The model is overloaded.", "type": "server_error"}}
    step = RawStream([*sse(chunk({"content": "Par"}), error), b"data: [DONE]\n\n"])
    upstream.script(step, step)
    async with opened(upstream) as client:
        with pytest.raises(openai.APIError) as from_sdk:
            await via_sdk(client)
        with pytest.raises(openai.APIError) as direct:
            await via_direct(client)
    assert direct.value.message == from_sdk.value.message == "The model is overloaded."


async def test_unreadable_chunk_raises_a_json_error(upstream: ScriptedUpstream) -> None:
    upstream.script(Malformed(("Partial",)))
    async with opened(upstream) as client:
        with pytest.raises(json.JSONDecodeError):
            await via_direct(client)


async def test_dropped_connection_is_a_connection_error(upstream: ScriptedUpstream) -> None:
    upstream.script(Drop(("Partial", " answer")))
    client = client_for(upstream)
    seen: list[object] = []
    direct = direct_chat(client)
    assert direct is not None
    call = direct.prepare(MESSAGES, [], "auto", None, {})
    assert call is not None
    try:
        with pytest.raises(openai.APIConnectionError):
            async for item in call.stream(CancellationToken()):
                seen.append(item)
    finally:
        await client.close()
    assert seen == ["Partial", " answer"]


async def test_refused_connection_is_a_connection_error() -> None:
    with ScriptedUpstream() as gone:
        client = client_for(gone)
    try:  # the upstream has stopped: nothing listens on its port any more
        with pytest.raises(openai.APIConnectionError):
            await via_direct(client)
    finally:
        await client.close()


async def test_the_clients_timeout_bounds_each_read(upstream: ScriptedUpstream) -> None:
    upstream.script(Hang(), Hang())
    async with opened(upstream, timeout=0.3) as client:
        with anyio.fail_after(5):
            with pytest.raises(openai.APITimeoutError):
                await via_sdk(client)
            with pytest.raises(openai.APITimeoutError):
                await via_direct(client)
    assert "timeout" not in upstream.requests[1].body
    assert upstream.requests[1].body == upstream.requests[0].body


async def test_cancelling_the_token_stops_the_call_and_closes_the_stream(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script(Reply(["one", " two", " three", " four"], delay=0.5))
    client = client_for(upstream)
    token = CancellationToken()
    seen: list[object] = []

    async def consume() -> None:
        direct = direct_chat(client)
        assert direct is not None
        call = direct.prepare(MESSAGES, [], "auto", None, {})
        assert call is not None
        try:
            async for item in call.stream(token):
                seen.append(item)
        except asyncio.CancelledError:
            seen.append("cancelled")
            # as when a future linked to the token is cancelled: the task itself is not
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
            await asyncio.sleep(0)  # and it can go on awaiting
            seen.append("went on")

    try:
        with anyio.fail_after(5):
            task = asyncio.ensure_future(consume())
            await upstream.wait_until(lambda: upstream.active == 1)
            token.cancel()
            await task
            await upstream.wait_until(lambda: upstream.disconnects == [0])
    finally:
        await client.close()
    assert seen[-2:] == ["cancelled", "went on"]
    assert "four" not in seen


async def test_a_token_cancelled_after_the_call_leaves_its_task_alone(
    upstream: ScriptedUpstream,
) -> None:
    client = client_for(upstream)
    token = CancellationToken()
    try:
        items = await via_direct(client, token)
        token.cancel()
        await asyncio.sleep(0.01)  # a stray cancel() of this task would raise here
    finally:
        await client.close()
    assert isinstance(items[-1], CreateResult)


async def test_calls_reuse_one_connection(upstream: ScriptedUpstream) -> None:
    """What follows [DONE] is read, so the HTTP/1.1 connection goes back to the pool."""
    async with opened(upstream) as client:
        for _ in range(3):
            await via_direct(client)
    assert len({request.connection for request in upstream.requests}) == 1


class Verdict(BaseModel):
    ok: bool


async def test_calls_only_the_sdk_can_make_are_left_to_it(upstream: ScriptedUpstream) -> None:
    client = client_for(upstream)
    direct = direct_chat(client)
    assert direct is not None
    try:
        assert direct.prepare(MESSAGES, [], "auto", Verdict, {}) is None
        assert direct.prepare(MESSAGES, [], "auto", None, {"extra_body": {"x": 1}}) is None
        assert direct.prepare(MESSAGES, [], "auto", None, {"temperature": 0.1}) is not None
    finally:
        await client.close()

    azure = AzureOpenAIChatCompletionClient(
        model="gpt-4o",
        azure_deployment="d",
        azure_endpoint="http://127.0.0.1:9",
        api_version="2024-06-01",
        api_key="k",
    )
    assert direct_chat(azure) is None
    assert direct_chat(OfflineChatCompletionClient()) is None
    await azure.close()


async def test_the_clients_the_service_builds_take_the_direct_path(
    upstream: ScriptedUpstream,
) -> None:
    """Both the built-in team's client and a team file's client, with the service's options
    (LLM_TIMEOUT, usage on streams, no SDK retries), are served by the direct path."""
    settings = quiet_settings(**behind(upstream.base_url))
    builtin = build_default_client(settings)
    pool = ClientPool(settings, builtin)
    component = {
        "provider": "autogen_ext.models.openai.OpenAIChatCompletionClient",
        "config": {"model": "scripted", "base_url": upstream.base_url, "model_info": MODEL_INFO},
    }
    from_file = pool.get(pool.key_for(component, OpenAIChatCompletionClient))
    sampling = {"temperature": 0.5, "max_tokens": 20}
    try:
        for client in (builtin, from_file):
            direct = direct_chat(client)
            assert direct is not None
            call = direct.prepare(MESSAGES, [], "auto", None, sampling)
            assert call is not None
            assert call.timeout == settings.LLM_TIMEOUT
            items = [item async for item in call.stream(CancellationToken())]
            assert isinstance(items[-1], CreateResult) and items[-1].usage.completion_tokens > 0
    finally:
        for client in pool.clients():
            await client.close()
    assert [request.body["temperature"] for request in upstream.requests] == [0.5, 0.5]


TEXT = sse(chunk({"role": "assistant", "content": "Whole"}), chunk({"content": " reply"}))
ENDING = [*sse(chunk({}, "stop"), USAGE), b"data: [DONE]\n\n"]


@pytest.mark.parametrize(
    "after",
    [
        RawStream([*TEXT, *ENDING], then="hang"),  # the body never ends
        RawStream([*TEXT, *ENDING, b": ping\n\n", b": ping\n\n"], then="hang"),
        RawStream([*TEXT, *ENDING], then="reset"),
    ],
    ids=["silent", "pinging", "dropped"],
)
async def test_a_finished_reply_survives_whatever_follows_done(
    upstream: ScriptedUpstream, after: RawStream
) -> None:
    upstream.script(after)
    async with opened(upstream) as client:
        with anyio.fail_after(5):  # the client's read timeout is 30 s
            *texts, result = await via_direct(client)
    assert texts == ["Whole", " reply"]
    assert isinstance(result, CreateResult) and result.content == "Whole reply"
    assert result.usage.completion_tokens == 7


def test_sse_reader_ends_lines_at_cr_without_waiting_and_splits_long_events_linearly() -> None:
    reader = SSEReader()
    assert reader.feed(b"data: one\r\r") == [b"one"]  # not held back for a possible LF
    assert reader.feed(b"data: two\r") == []
    assert reader.feed(b"\n\r\n") == [b"two"]  # that LF paired with the CR before it
    assert reader.feed(b"data: three\r") == []
    assert reader.feed(b"\n") == []  # the CR's own LF, alone in its read
    assert reader.feed(b"\n") == [b"three"]  # a blank line, not another CR's LF
    big = b"x" * 2_000_000
    body = b"data: " + big + b"\ndata: more\n\n"
    events = [
        e for start in range(0, len(body), 4096) for e in reader.feed(body[start : start + 4096])
    ]
    assert events == [big + b"\nmore"]


async def test_a_tool_call_without_an_index_is_read_as_autogen_reads_it(
    upstream: ScriptedUpstream,
) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "word_count", "arguments": "{}"},
    }
    step = RawStream(
        [*sse(chunk({"tool_calls": [call]}), chunk({}, "tool_calls")), b"data: [DONE]\n\n"]
    )
    upstream.script(step, step)
    async with opened(upstream) as client:
        expected = await via_sdk(client)
        got = await via_direct(client)
    assert comparable(got) == comparable(expected)
    assert isinstance(got[-1], CreateResult) and got[-1].content[0].name == "word_count"  # type: ignore[union-attr]


async def test_only_a_2xx_is_an_answer(upstream: ScriptedUpstream) -> None:
    upstream.script(HttpError(300, "Pick one."))
    async with opened(upstream) as client:
        with pytest.raises(openai.APIStatusError) as failure:
            await via_direct(client)
    assert failure.value.status_code == 300


async def test_an_error_message_leaves_the_upstreams_body_out(upstream: ScriptedUpstream) -> None:
    """AutoGen logs a failed call's message at ERROR; an upstream's error may quote the prompt."""
    upstream.script(HttpError(400, "Bad content: What is a haiku?"))
    async with opened(upstream) as client:
        with pytest.raises(openai.BadRequestError) as failure:
            await via_direct(client)
    assert "haiku" not in str(failure.value)
    assert "haiku" in json.dumps(failure.value.body)


async def test_a_body_that_cannot_be_decoded_is_a_connection_error(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script(RawStream([b"not gzip at all"], headers={"content-encoding": "gzip"}))
    async with opened(upstream) as client:
        with pytest.raises(openai.APIConnectionError):
            await via_direct(client)


async def test_a_thought_keeps_its_letters(upstream: ScriptedUpstream) -> None:
    """AutoGen's lstrip("<think>") would turn the thought "hint think" into " "."""
    reasoning = [chunk({"reasoning_content": "hint"}), chunk({"reasoning_content": " think"})]
    upstream.script(RawStream([*sse(*reasoning, chunk({"content": "Answer"})), *ENDING]))
    async with opened(upstream) as client:
        *_, result = await via_direct(client)
    assert isinstance(result, CreateResult)
    assert (result.thought, result.content) == ("hint think", "Answer")


def test_the_cache_keeps_no_client_alive(upstream: ScriptedUpstream) -> None:
    client = client_for(upstream)
    assert direct_chat(client) is not None
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None
