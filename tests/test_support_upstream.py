"""The scripted upstream, driven by the real OpenAI SDK and AutoGen's OpenAI client."""

import http.client
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import anyio
import openai
import pytest
from autogen_core import CancellationToken
from autogen_core.models import CreateResult, ModelInfo, UserMessage
from autogen_ext.models.openai import OpenAIChatCompletionClient
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from support.upstream import (
    Drop,
    Hang,
    HttpError,
    Malformed,
    Reply,
    ScriptedUpstream,
    ToolCall,
    ToolCalls,
    default_reply_text,
)

MODEL_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": False,
    "family": "unknown",
    "structured_output": False,
}
HELLO_TEXT = "Hello there, how are you today friend?"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": HELLO_TEXT}]


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as up:
        yield up
    assert up.errors == []


@pytest.fixture
def client(upstream: ScriptedUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def autogen(upstream: ScriptedUpstream) -> AsyncIterator[OpenAIChatCompletionClient]:
    model_client = OpenAIChatCompletionClient(
        model="scripted",
        base_url=upstream.base_url,
        api_key="x",
        max_retries=0,
        model_info=MODEL_INFO,
        stream_options={"include_usage": True},
    )
    yield model_client
    await model_client.close()


def stream_hello(
    client: openai.OpenAI, *, include_usage: bool = False, timeout: float = 10.0
) -> openai.Stream[ChatCompletionChunk]:
    return client.chat.completions.create(
        model="scripted",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": include_usage},
        timeout=timeout,
    )


def test_upstream_models_lists_the_configured_names() -> None:
    with (
        ScriptedUpstream(models=("alpha", "beta")) as up,
        openai.OpenAI(base_url=up.base_url, api_key="x", max_retries=0) as sdk,
    ):
        names = [model.id for model in sdk.models.list()]

    assert names == ["alpha", "beta"]


def test_upstream_unscripted_request_gets_the_default_reply(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    first = client.chat.completions.create(model="scripted", messages=HELLO)
    second = client.chat.completions.create(model="scripted", messages=HELLO)

    assert first.choices[0].message.content == "Reply 1 to: Hello there, how are you"
    assert second.choices[0].message.content == default_reply_text(HELLO, 2)
    assert first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (7, 8)
    assert [r.last_user_text for r in upstream.requests] == [HELLO_TEXT] * 2
    assert upstream.requests[0].headers["authorization"] == "Bearer x"


def test_upstream_non_streaming_requests_share_one_connection(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    for _ in range(3):
        client.chat.completions.create(model="scripted", messages=HELLO)

    assert [r.connection for r in upstream.requests] == [1, 1, 1]


def test_upstream_streams_scripted_tokens_with_delays_and_usage(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Reply(["Hel", "lo", " world"], delay=0.05, prompt_tokens=11))

    arrivals = []
    for chunk in stream_hello(client, include_usage=True):
        arrivals.append((time.monotonic(), chunk))

    chunks = [chunk for _, chunk in arrivals]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Hel", "lo", " world"]
    assert chunks[4].choices[0].finish_reason == "stop"
    assert chunks[5].choices == []
    assert chunks[5].usage is not None
    assert (chunks[5].usage.prompt_tokens, chunks[5].usage.completion_tokens) == (11, 2)
    assert arrivals[3][0] - arrivals[1][0] >= 0.09
    assert upstream.pending == 0


def test_upstream_stream_is_valid_chunked_sse_ending_in_done(upstream: ScriptedUpstream) -> None:
    upstream.script(Reply(["a", "b"]))
    body = {"model": "m", "messages": HELLO, "stream": True}

    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(upstream.base_url).port)
    connection.request("POST", "/v1/chat/completions", json.dumps(body))
    response = connection.getresponse()
    lines = response.read().decode().split("\n\n")
    connection.close()

    assert response.getheader("transfer-encoding") == "chunked"
    assert lines[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-2]]
    assert {tuple(sorted(c)) for c in chunks} == {("choices", "created", "id", "model", "object")}
    assert {(c["object"], c["model"], c["id"]) for c in chunks} == {
        ("chat.completion.chunk", "m", "chatcmpl-scripted-1")
    }
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
        {"content": "b"},
        {},
    ]


def test_upstream_500_raises_internal_server_error(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(HttpError(500, "Upstream melted."))

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="scripted", messages=HELLO)

    assert caught.value.status_code == 500
    assert caught.value.body == {
        "message": "Upstream melted.",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_upstream_429_raises_rate_limit_error_with_retry_after(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(HttpError(429, "Slow down.", retry_after=2))

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="scripted", messages=HELLO)

    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"


def test_upstream_429_retry_after_is_honoured_by_the_sdk_retry(
    upstream: ScriptedUpstream,
) -> None:
    # Without the header the SDK's first backoff is at most 0.5 s, so a 1 s gap shows it obeyed.
    upstream.script(HttpError(429, retry_after=1), Reply.text("Finally here"))

    with openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=1) as sdk:
        reply = sdk.chat.completions.create(model="scripted", messages=HELLO)

    assert reply.choices[0].message.content == "Finally here"
    first, second = upstream.requests
    assert second.received_at - first.received_at >= 1.0


def test_upstream_hang_times_out_and_records_the_client_leaving(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Hang())
    started = time.monotonic()

    with pytest.raises(openai.APITimeoutError):
        stream_hello(client, timeout=0.3)

    assert 0.3 <= time.monotonic() - started < 2
    assert upstream.wait_for(lambda: upstream.disconnects == [0], timeout=1.0)


def test_upstream_drop_raises_connection_error_after_the_scripted_tokens(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Drop(["Half", " a"]))
    received = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in stream_hello(client):
            received.append(chunk.choices[0].delta.content)

    assert received == ["", "Half", " a"]
    assert upstream.disconnects == []


def test_upstream_drop_of_a_non_streaming_request_raises_connection_error(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Drop())

    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="scripted", messages=HELLO)


def test_upstream_malformed_line_fails_sdk_decoding(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Malformed(["Fine"]))
    received = []

    with pytest.raises(json.JSONDecodeError):
        for chunk in stream_hello(client):
            received.append(chunk.choices[0].delta.content)

    assert received == ["", "Fine"]


def test_upstream_records_a_client_closing_the_stream_early(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Reply(["tick"] * 40, delay=0.05))

    stream = stream_hello(client)
    next(stream), next(stream)
    assert upstream.active == 1
    closed_at = time.monotonic()
    stream.close()

    assert upstream.wait_for(lambda: upstream.disconnects == [0], timeout=1.0)
    assert time.monotonic() - closed_at < 1.0
    assert upstream.wait_for(lambda: upstream.active == 0, timeout=1.0)


def test_upstream_tool_calls_reach_the_sdk_whole(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(ToolCalls([ToolCall("add", {"a": 1, "b": 22}, id="call_add")]))

    reply = client.chat.completions.create(model="scripted", messages=HELLO)

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert (call.id, call.function.name) == ("call_add", "add")
    assert json.loads(call.function.arguments) == {"a": 1, "b": 22}


@pytest.mark.anyio
async def test_upstream_async_streams_reuse_one_connection(upstream: ScriptedUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key="x", max_retries=0) as sdk:
        for _ in range(3):
            stream = await sdk.chat.completions.create(
                model="scripted", messages=HELLO, stream=True
            )
            [chunk async for chunk in stream]

    assert [r.connection for r in upstream.requests] == [1, 1, 1]


@pytest.mark.anyio
async def test_upstream_stops_cleanly_while_a_request_hangs() -> None:
    with ScriptedUpstream() as up:
        up.script(Hang())
        sdk = openai.AsyncOpenAI(base_url=up.base_url, api_key="x", max_retries=0, timeout=5)
        async with sdk, anyio.create_task_group() as tasks:
            tasks.start_soon(expect_connection_error, sdk)
            with anyio.fail_after(1):
                await up.wait_until(lambda: up.requests)
            up.__exit__(None, None, None)

    assert not [t for t in threading.enumerate() if t.name == "scripted-upstream"]


async def expect_connection_error(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await sdk.chat.completions.create(model="scripted", messages=HELLO)


@pytest.mark.anyio
async def test_autogen_client_streams_tokens_and_usage(
    upstream: ScriptedUpstream, autogen: OpenAIChatCompletionClient
) -> None:
    upstream.script(Reply(["Hello", " world"], delay=0.02, completion_tokens=5))

    items = [item async for item in autogen.create_stream([UserMessage(content="hi", source="u")])]

    assert items[:2] == ["Hello", " world"]
    result = items[-1]
    assert isinstance(result, CreateResult)
    assert (result.content, result.finish_reason) == ("Hello world", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1, 5)
    assert upstream.requests[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.anyio
async def test_autogen_client_assembles_streamed_tool_calls(
    upstream: ScriptedUpstream, autogen: OpenAIChatCompletionClient
) -> None:
    calls = [ToolCall("add", {"a": 1, "b": 22}), ToolCall("echo", {"text": "a longer argument"})]
    upstream.script(ToolCalls(calls))

    items = [item async for item in autogen.create_stream([UserMessage(content="hi", source="u")])]

    result = items[-1]
    assert isinstance(result, CreateResult)
    assert result.finish_reason == "function_calls"
    assert isinstance(result.content, list)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in result.content] == [
        ("call_1_0", "add", {"a": 1, "b": 22}),
        ("call_1_1", "echo", {"text": "a longer argument"}),
    ]


@pytest.mark.anyio
async def test_autogen_client_raises_sdk_errors_for_500_and_drop(
    upstream: ScriptedUpstream, autogen: OpenAIChatCompletionClient
) -> None:
    upstream.script(HttpError(500), Drop())
    messages = [UserMessage(content="hi", source="u")]

    with pytest.raises(openai.InternalServerError):
        [item async for item in autogen.create_stream(messages)]
    with pytest.raises(openai.APIConnectionError):
        [item async for item in autogen.create_stream(messages)]


@pytest.mark.anyio
async def test_autogen_client_cancelled_by_token_holds_the_stream_until_closed(
    upstream: ScriptedUpstream, autogen: OpenAIChatCompletionClient
) -> None:
    """AutoGen 0.7.5 cancels the pending chunk read but never closes the SDK stream.

    The upstream keeps sending until the model client itself is closed, so a service that must
    stop upstream work promptly has to close the stream or the client, not only cancel the token.
    """
    upstream.script(Reply(["tick"] * 40, delay=0.05))
    messages = [UserMessage(content="hi", source="u")]
    token = CancellationToken()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        async for item in autogen.create_stream(messages, cancellation_token=token):
            if item == "tick":
                token.cancel()
    await anyio.sleep(0.2)
    assert (upstream.active, upstream.disconnects) == (1, [])

    await autogen.close()
    with anyio.fail_after(1):
        await upstream.wait_until(lambda: upstream.disconnects == [0])
