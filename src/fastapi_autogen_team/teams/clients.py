"""Model clients: the shared upstream client, and the thin per-run view the agents use.

Building an `OpenAIChatCompletionClient` costs ~18 ms and blocks the loop, so one is built at
start-up and shared by every run. Each run wraps it in a `RunModelClient`, which is where
per-run concerns live: the request's sampling fields reach every call, usage is summed for
this run only, no call starts after the run was cancelled, and an upstream failure is
classified here, because inside a team AutoGen re-raises it as a bare RuntimeError. A team
whose agents use several shared clients gets one view of each (`sibling`), all counting into
one `RunMeter`, so the run's usage and first failure stay in one place.

Streamed tokens skip AutoGen's runtime: each agent gets its own view (`for_agent`), AutoGen
is told not to stream (`model_client_stream=False`), so it calls `create()` and carries only
whole messages, and `create()` streams from the shared client itself, handing each text chunk
to the run's `sink` as an `AgentToken`. Through the runtime a chunk cost ~110 µs (envelopes,
queues, a task per recipient); handed over directly it costs a few.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai
from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
)
from autogen_core.tools import Tool, ToolSchema
from autogen_ext.models.openai import OpenAIChatCompletionClient
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from pydantic import BaseModel

from ..errors import RateLimited, ServiceError, UpstreamFailed, UpstreamTimeout
from ..settings import Settings
from ..telemetry import content
from .direct import direct_chat
from .http import tracked_http_client
from .offline import OFFLINE_MODEL_NAME, OfflineChatCompletionClient
from .retry import RetryPolicy, retry_after_header

logger = logging.getLogger(__name__)

_UNKNOWN_MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=True,
    family=ModelFamily.UNKNOWN,
    structured_output=True,
)


def build_default_client(settings: Settings) -> ChatCompletionClient:
    """The client behind the built-in team: the upstream from LLM_*, or the offline model."""
    if settings.offline:
        return OfflineChatCompletionClient(token_delay=settings.OFFLINE_TOKEN_DELAY)
    options: dict[str, Any] = {
        "model": settings.LLM_MODEL,
        "api_key": settings.LLM_API_KEY.get_secret_value() or "not-needed",
        "timeout": settings.LLM_TIMEOUT,
        "max_retries": 0,  # RunModelClient retries, within RetryPolicy's bounds
        "stream_options": {"include_usage": True},
        "http_client": tracked_http_client(),
    }
    if settings.LLM_BASE_URL:
        options["base_url"] = settings.LLM_BASE_URL
        options["model_info"] = _UNKNOWN_MODEL_INFO
    return OpenAIChatCompletionClient(**options)


def classify_upstream_error(error: BaseException) -> ServiceError:
    """The client-facing error for a failed model call; never carries the upstream's text."""
    if isinstance(error, openai.RateLimitError):
        headers = retry_after_header(error.response.headers)
        return RateLimited("The model upstream is rate limiting requests.", headers=headers)
    if isinstance(error, openai.APITimeoutError):
        return UpstreamTimeout("The model upstream did not answer in time.")
    if isinstance(error, openai.APIStatusError):
        return UpstreamFailed(f"The model upstream failed with HTTP {error.status_code}.")
    if isinstance(error, openai.APIConnectionError):
        return UpstreamFailed("The connection to the model upstream failed.")
    return UpstreamFailed("The model upstream sent a response the service could not read.")


@dataclass(slots=True)
class AgentToken:
    """A piece of an agent's reply, handed to the run as the model streams it."""

    source: str
    text: str


@dataclass(slots=True)
class AgentToolCalls:
    """The tool calls an agent's model asked for, handed over with its tokens.

    AutoGen reports tool calls and their results through its runtime, which is slower than
    the sink: sent only that way, a call's result could show after the tokens of the reply
    that uses it. The run shows each call once, whichever way reaches it first."""

    source: str
    calls: list[FunctionCall]


@dataclass(slots=True)
class AgentToolResults:
    """The tool results an agent's model is about to read, ahead of its reply's tokens."""

    source: str
    results: list[FunctionExecutionResult]


AgentEvent = AgentToken | AgentToolCalls | AgentToolResults
TokenSink = Callable[[AgentEvent], None]


@dataclass(slots=True)
class RunMeter:
    """What one run's model calls add up to, over every shared client the run uses."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    failure: ServiceError | None = None


def model_name(client: ChatCompletionClient) -> str:
    """The upstream model a shared client calls, for telemetry."""
    if isinstance(client, OfflineChatCompletionClient):
        return OFFLINE_MODEL_NAME
    create_args = getattr(client, "_create_args", None)  # OpenAI clients keep it there
    return str(create_args.get("model", "unknown")) if isinstance(create_args, dict) else "unknown"


class RunModelClient(ChatCompletionClient):
    """One run's view of a shared model client."""

    component_type = "model"

    def __init__(
        self,
        inner: ChatCompletionClient,
        cancellation_token: CancellationToken,
        sampling: Mapping[str, Any] | None = None,
        meter: RunMeter | None = None,
        retry: RetryPolicy | None = None,
        capture_content: bool = False,
        sink: TokenSink | None = None,
        agent: str | None = None,
    ) -> None:
        self._inner = inner
        self._token = cancellation_token
        self._sampling = dict(sampling or {})
        self.meter = meter or RunMeter()
        self._retry = retry or RetryPolicy()
        self._capture_content = capture_content
        self._sink = sink
        self.agent = agent

    def sibling(self, inner: ChatCompletionClient) -> RunModelClient:
        """This run's view of another shared client: same token, sampling, meter and options."""
        return self._view(inner, self.agent)

    def for_agent(self, name: str) -> RunModelClient:
        """The view agent `name` uses: `create()` streams its reply's text to the run's sink.

        Give it to an agent built with `model_client_stream=False`; with no sink (a trial
        build, say) it behaves like this view.
        """
        return self._view(self._inner, name)

    def _view(self, inner: ChatCompletionClient, agent: str | None) -> RunModelClient:
        return RunModelClient(
            inner,
            self._token,
            self._sampling,
            self.meter,
            self._retry,
            self._capture_content,
            self._sink,
            agent,
        )

    @property
    def prompt_tokens(self) -> int:
        return self.meter.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.meter.completion_tokens

    @property
    def calls(self) -> int:
        return self.meter.calls

    @property
    def failure(self) -> ServiceError | None:
        return self.meter.failure

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},  # noqa: B006 - the base class's signature
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        if self._sink is not None and self.agent is not None:
            return await self._create_streaming(
                messages,
                self._sink,
                self.agent,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
        attempt = 0
        while True:
            span = self._begin(messages)
            try:
                result = await self._inner.create(
                    messages,
                    **self._call_options(
                        tools, tool_choice, json_output, extra_create_args, cancellation_token
                    ),
                )
                self._add_usage(result, span)
                return result
            except Exception as error:
                delay = self._retry_or_fail(error, attempt, span)
            finally:
                span.end()
            attempt += 1
            await self._pause(delay)

    async def _create_streaming(
        self,
        messages: Sequence[LLMMessage],
        sink: TokenSink,
        agent: str,
        **options: Any,
    ) -> CreateResult:
        """`create()` for an agent's view: the reply's text goes to the sink as it arrives."""
        if messages and isinstance(messages[-1], FunctionExecutionResultMessage):
            sink(AgentToolResults(agent, list(messages[-1].content)))
        result: CreateResult | None = None
        async for item in self.create_stream(messages, **options):
            if isinstance(item, str):
                sink(AgentToken(agent, item))
            else:
                result = item
        if result is None:
            raise RuntimeError("The model's stream ended without a final result.")
        if isinstance(result.content, list):
            sink(AgentToolCalls(agent, list(result.content)))
        return result

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},  # noqa: B006 - the base class's signature
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        attempt = 0
        while True:
            span = self._begin(messages)
            options = self._call_options(
                tools, tool_choice, json_output, extra_create_args, cancellation_token
            )
            stream: AsyncGenerator[str | CreateResult, None] | None = None
            produced = False
            try:
                stream = self._open_stream(messages, options)
                async for item in stream:
                    produced = True
                    if isinstance(item, CreateResult):
                        self._add_usage(item, span)
                    yield item
                return
            except Exception as error:
                if produced:  # the agents saw part of this reply; a retry would repeat it
                    self._record_failure(error, span)
                    raise
                delay = self._retry_or_fail(error, attempt, span)
            finally:
                # Closing the inner generator closes the upstream HTTP stream now, not at GC.
                if stream is not None:
                    await stream.aclose()
                span.end()
            attempt += 1
            await self._pause(delay)

    def _open_stream(
        self, messages: Sequence[LLMMessage], options: dict[str, Any]
    ) -> AsyncGenerator[str | CreateResult, None]:
        """The call's stream: straight over HTTP where that is exact (`direct.py`), else the
        shared client's own."""
        if (direct := direct_chat(self._inner)) is not None:
            call = direct.prepare(
                messages,
                options["tools"],
                options["tool_choice"],
                options["json_output"],
                options["extra_create_args"],
            )
            if call is not None:
                return call.stream(options["cancellation_token"])
        return self._inner.create_stream(messages, **options)

    def _call_options(
        self,
        tools: Sequence[Tool | ToolSchema],
        tool_choice: Tool | Literal["auto", "required", "none"],
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
        cancellation_token: CancellationToken | None,
    ) -> dict[str, Any]:
        """What the shared client is called with: the run's sampling fields and token added."""
        return {
            "tools": tools,
            "tool_choice": tool_choice,
            "json_output": json_output,
            "extra_create_args": {**self._sampling, **extra_create_args},
            "cancellation_token": cancellation_token or self._token,
        }

    def _retry_or_fail(self, error: Exception, attempt: int, span: Span) -> float:
        """The wait before trying again; re-raises `error` when the call is not retried."""
        delay = None if self._token.is_cancelled() else self._retry.delay(error, attempt)
        if delay is None:
            self._record_failure(error, span)
            raise error
        span.set_attribute("error.type", type(error).__name__)
        logger.info(
            "model call failed (%s); retry %d of %d in %.2f s",
            type(error).__name__,
            attempt + 1,
            self._retry.max_retries,
            delay,
        )
        return delay

    async def _pause(self, delay: float) -> None:
        sleep = asyncio.ensure_future(asyncio.sleep(delay))
        self._token.link_future(sleep)
        await sleep

    def _begin(self, messages: Sequence[LLMMessage]) -> Span:
        """Counts the call and opens its GenAI client span, unless the run was cancelled."""
        if self._token.is_cancelled():
            raise asyncio.CancelledError("the run was cancelled; no further model calls")
        self.meter.calls += 1
        model = model_name(self._inner)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "offline" if model == OFFLINE_MODEL_NAME else "openai",
            "gen_ai.request.model": model,
        }
        for field in ("temperature", "top_p", "max_tokens", "seed"):
            if field in self._sampling:
                attributes[f"gen_ai.request.{field}"] = self._sampling[field]
        if self._capture_content:
            attributes[content.INPUT_MESSAGES] = content.input_messages(messages)
        tracer = trace.get_tracer(__name__)
        return tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)

    def _add_usage(self, result: CreateResult, span: Span) -> None:
        usage = result.usage
        self.meter.prompt_tokens += usage.prompt_tokens
        self.meter.completion_tokens += usage.completion_tokens
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
                "gen_ai.response.finish_reasons": [str(result.finish_reason)],
            }
        )
        if self._capture_content:
            span.set_attribute(content.OUTPUT_MESSAGES, content.output_messages(result))

    def _record_failure(self, error: Exception, span: Span) -> None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(StatusCode.ERROR)
        if self.meter.failure is None and not self._token.is_cancelled():
            failure = self.meter.failure = classify_upstream_error(error)
            with trace.use_span(span):  # the record carries the failed call's span id
                logger.warning("model call failed: %s (%s)", type(error).__name__, failure.code)

    async def close(self) -> None:
        """The shared client outlives the run; the lifespan closes it."""

    def actual_usage(self) -> RequestUsage:
        return RequestUsage(
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens
        )

    def total_usage(self) -> RequestUsage:
        return self.actual_usage()

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        return self._inner.count_tokens(messages, tools=tools)

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        return self._inner.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        return self._inner.model_info

    @property
    def model_info(self) -> ModelInfo:
        return self._inner.model_info
