"""Streamed model calls sent straight over HTTP, past the openai SDK, for the shared clients.

Profiles of the service under load (BENCHMARKS.md) put most of its CPU per relayed chunk in
the openai SDK, which builds a tree of pydantic models for every chunk, and much of its CPU per
request in the SDK's walk over every message to transform it; AutoGen's client then wraps each
chunk's read in a task linked to the cancellation token. For a plain OpenAI-compatible shared
client this module makes the same call with less:

- the request is what the SDK would send: AutoGen's own `_process_create_args` builds the
  messages, tools and arguments, and the SDK client supplies the URL and headers;
- it goes through the shared client's HTTP pool (so runs can still close it: `http.py`);
- a small SSE reader and `json.loads` read the reply, which is assembled into a `CreateResult`
  the way AutoGen's `create_stream` does it (`chunks.py`);
- failures are raised as the SDK's exception types, so retries and error classification
  treat both paths alike;
- the run's cancellation token cancels the call through one callback per call, not one task
  per chunk.

It is used only where it is exact: a plain `OpenAIChatCompletionClient` (not Azure) with a
static API key and no default query, for calls without a structured-output class or
`extra_body`. Anything else goes through the SDK (`DirectChat.prepare` returns None).
AutoGen's private `_process_create_args` and `_client` are used on purpose: the versions are
locked, and tests/test_direct_calls.py compares both paths request for request.

Where it knowingly differs from the SDK: a failure's message leaves the upstream's body out
(it stays on the exception), and what follows [DONE] is read for at most 0.1 s, as the SDK
does, but the reply is kept whatever happens to the connection then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import openai
from autogen_core import EVENT_LOGGER_NAME, CancellationToken
from autogen_core.logging import LLMStreamEndEvent, LLMStreamStartEvent
from autogen_core.models import CreateResult, LLMMessage
from autogen_core.tools import Tool, ToolSchema
from autogen_ext.models.openai import OpenAIChatCompletionClient
from pydantic import BaseModel

from .chunks import Reply, SSEReader

_events = logging.getLogger(EVENT_LOGGER_NAME)
_DRAIN_SECONDS = 0.1


_direct: weakref.WeakKeyDictionary[object, DirectChat | None] = weakref.WeakKeyDictionary()


def direct_chat(client: object) -> DirectChat | None:
    """The direct path for a shared client, or None when only the SDK can make its calls."""
    try:
        return _direct[client]
    except KeyError:
        direct = _direct[client] = DirectChat.of(client)
        return direct
    except TypeError:  # not weak-referenceable: nothing to cache, and nothing we can serve
        return None


@dataclass(frozen=True, slots=True)
class DirectChat:
    # Weak: this object is the cache's value for that client, and a value that held its key
    # would keep every client ever served (one per lifespan, in tests) alive.
    client_ref: weakref.ref[OpenAIChatCompletionClient]
    family: str
    sdk: openai.AsyncOpenAI
    http: httpx2.AsyncClient
    url: str
    headers: Mapping[str, str]
    timeout: float | httpx2.Timeout | None

    @classmethod
    def of(cls, client: object) -> DirectChat | None:
        if type(client) is not OpenAIChatCompletionClient:
            return None
        sdk = client._client  # noqa: SLF001 - see the module's docstring
        if type(sdk) is not openai.AsyncOpenAI or not isinstance(sdk.api_key, str):
            return None
        if sdk.default_query or sdk.workload_identity is not None:
            return None
        http = sdk._client  # noqa: SLF001 - the shared pool the SDK itself sends through
        if not isinstance(http, httpx2.AsyncClient):
            return None
        headers = {k: v for k, v in sdk.default_headers.items() if isinstance(v, str)}
        headers.update(sdk.auth_headers)
        timeout = sdk.timeout if isinstance(sdk.timeout, float | int | httpx2.Timeout) else None
        url = str(sdk.base_url) + "chat/completions"  # the SDK ends base_url with "/"
        family = client.model_info["family"]
        return cls(weakref.ref(client), family, sdk, http, url, headers, timeout)

    def prepare(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: Tool | Literal["auto", "required", "none"],
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
    ) -> DirectCall | None:
        """The call the SDK would make, ready to send; None when it must go through the SDK."""
        client = self.client_ref()
        if client is None:  # closed and gone; the SDK path reports that its own way
            return None
        params = client._process_create_args(  # noqa: SLF001
            messages, tools, tool_choice, json_output, extra_create_args
        )
        create_args = dict(params.create_args)
        # The client's `timeout` option lands among the call's arguments, as the SDK's
        # per-request timeout: it is the request's, not the body's.
        timeout = create_args.pop("timeout", self.timeout)
        if params.response_format is not None or "extra_body" in create_args:
            return None
        if timeout is not None and not isinstance(timeout, float | int | httpx2.Timeout):
            return None
        body: dict[str, Any] = {"messages": params.messages, "stream": True}
        body.update(create_args)
        if params.tools:
            body["tools"] = params.tools
        try:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError):  # something only the SDK knows how to send
            return None
        return DirectCall(self, payload, params.messages, timeout)


@dataclass(slots=True)
class DirectCall:
    """One prepared model call; `stream()` sends it and yields text, then the CreateResult."""

    chat: DirectChat
    payload: bytes
    messages: list[Any]
    timeout: float | httpx2.Timeout | None

    async def stream(
        self, cancellation_token: CancellationToken
    ) -> AsyncGenerator[str | CreateResult, None]:
        task = asyncio.current_task()
        state = _CallState()

        def cancel() -> None:  # the token's callbacks outlive the call: act only during it
            if state.live and task is not None:
                state.cancelled = True
                task.cancel()

        cancellation_token.add_callback(cancel)
        response: httpx2.Response | None = None
        try:
            response = await self._send()
            if _events.isEnabledFor(logging.INFO):
                _events.info(LLMStreamStartEvent(messages=self.messages))
            reply = Reply(self.chat.family)
            reader = SSEReader()
            pieces = response.aiter_bytes()
            done = False
            async with _as_sdk_errors(response.request):
                async for piece in pieces:
                    for data in reader.feed(piece):
                        if done := data.startswith(b"[DONE]"):
                            break
                        chunk = json.loads(data)
                        if isinstance(chunk, dict) and chunk.get("error"):
                            raise _stream_error(chunk["error"], response.request)
                        for text in reply.add(chunk):
                            yield text
                    if done:
                        break
            if done:
                await _drain(pieces)
            result = reply.result()
            if _events.isEnabledFor(logging.INFO):
                _events.info(
                    LLMStreamEndEvent(
                        response=result.model_dump(),
                        prompt_tokens=result.usage.prompt_tokens,
                        completion_tokens=result.usage.completion_tokens,
                    )
                )
            state.live = False
            yield result
        except asyncio.CancelledError:
            if state.cancelled and task is not None:
                task.uncancel()  # as if a future linked to the token had been cancelled
            raise
        finally:
            state.live = False
            if response is not None:
                await response.aclose()

    async def _send(self) -> httpx2.Response:
        chat = self.chat
        request = chat.http.build_request(
            "POST", chat.url, content=self.payload, headers=chat.headers, timeout=self.timeout
        )
        async with _as_sdk_errors(request):
            response = await chat.http.send(request, stream=True)
        if not response.is_success:  # the SDK, too, takes only a 2xx for an answer
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise _status_error(chat.sdk, response)
        return response


@dataclass(slots=True)
class _CallState:
    live: bool = True
    cancelled: bool = False


def _status_error(sdk: openai.AsyncOpenAI, response: httpx2.Response) -> openai.APIStatusError:
    try:
        body: object = response.json()
    except ValueError:
        body = response.text or None
    # Unlike the SDK's, the message leaves the body out: AutoGen logs failed calls at ERROR,
    # and an upstream's error may quote the prompt. The body stays on the exception.
    message = f"Error code: {response.status_code}"
    return sdk._make_status_error(message, body=body, response=response)  # noqa: SLF001


def _stream_error(error: object, request: httpx2.Request) -> openai.APIError:
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return openai.APIError(message, request, body=error)


@contextlib.asynccontextmanager
async def _as_sdk_errors(request: httpx2.Request) -> AsyncIterator[None]:
    """httpx2's failures as the SDK raises them: a timeout, or a failed connection."""
    try:
        yield
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=request) from error
    except httpx2.RequestError as error:  # transport, decoding: what the SDK calls connection
        raise openai.APIConnectionError(request=request) from error


async def _drain(pieces: AsyncIterator[bytes]) -> None:
    """Reads what follows [DONE] for a moment, so an HTTP/1.1 connection can go back to the
    pool; an upstream that keeps it open, or drops it, costs nothing of the finished reply."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in pieces:
                pass
