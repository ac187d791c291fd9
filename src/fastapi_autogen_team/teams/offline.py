"""The offline model: a deterministic stand-in for an LLM, so the service runs with no network.

It is not a language model. It reads who is speaking from the conversation it is given and
answers with a short text that shows the team's flow: the first agent drafts, the next one
reviews that draft and answers. Replies stream word by word with OFFLINE_TOKEN_DELAY between
words, honour `max_tokens` and `stop`, and stop at once when the run's token is cancelled.

So that team files run offline too, it plays two more parts deterministically. An agent with
tools calls each tool once (the first it has not called yet in the conversation, with
arguments made from the task), then answers in text from the results. Asked by a
SelectorGroupChat to pick the next speaker (AutoGen's prompt ends "select the next role from
['a', 'b']"), it names the first candidate. It is a component, so a team file can name it.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal, Self

from autogen_core import CancellationToken, Component, FunctionCall
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel, Field

OFFLINE_MODEL_NAME = "offline"

_TOKEN = re.compile(r"\S+\s*|\s+")
_SELECTION = re.compile(r"select the next role from (\[[^\]]*\])")
_NOT_AN_LLM = (
    "(This reply comes from the built-in offline model, which is not an LLM: "
    "set LLM_MODEL and LLM_BASE_URL to use a real one.)"
)


def split_tokens(text: str) -> list[str]:
    """Word-sized pieces that keep their whitespace, so joining them restores the text."""
    return _TOKEN.findall(text)


def _text(message: LLMMessage) -> str:
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else ""


def _excerpt(text: str, words: int = 24) -> str:
    pieces = text.split()
    return " ".join(pieces[:words]) + (" ..." if len(pieces) > words else "")


def compose_reply(messages: Sequence[LLMMessage]) -> str:
    """The offline model's reply to a conversation, as one agent of a team would see it."""
    if (speaker := _selected_speaker(messages)) is not None:
        return speaker
    if messages and isinstance(messages[-1], FunctionExecutionResultMessage):
        found = "; ".join(f"{r.name} gave {_excerpt(r.content, 16)}" for r in messages[-1].content)
        return f"Checked with my tools: {found}. Handing over with these facts."
    speakers = [m for m in messages if isinstance(m, UserMessage | AssistantMessage)]
    last = speakers[-1] if speakers else None
    task = next((_text(m) for m in reversed(speakers) if getattr(m, "source", "") == "user"), "")
    asked = f"\u201c{_excerpt(task)}\u201d"
    if last is None or last.source == "user":
        return (
            f"Draft for {asked}: first, restate what is asked; second, list the facts that "
            "matter; third, give a short, direct answer. Handing over for review."
        )
    return (
        f"Reviewed the draft by {last.source} ({len(_text(last).split())} words) and "
        f"approved it. Answer to {asked}: the team drafted a plan and checked it before "
        f"answering. {_NOT_AN_LLM}"
    )


def _selected_speaker(messages: Sequence[LLMMessage]) -> str | None:
    """The first candidate, when the conversation is a SelectorGroupChat's speaker request."""
    found = [match for m in messages for match in _SELECTION.findall(_text(m))]
    if not found:
        return None
    try:
        candidates = ast.literal_eval(found[-1])
    except (ValueError, SyntaxError):
        return None
    return str(candidates[0]) if candidates else None


def _task(messages: Sequence[LLMMessage]) -> str:
    users = [m for m in messages if isinstance(m, UserMessage) and m.source == "user"]
    return _text(users[-1]) if users else ""


def _schema(tool: Tool | ToolSchema) -> ToolSchema:
    return tool if isinstance(tool, dict) else tool.schema


def _arguments(schema: ToolSchema, task: str) -> dict[str, Any]:
    """Values for the tool's required parameters, made from the task."""
    parameters: Mapping[str, Any] = schema.get("parameters") or {}
    properties = parameters.get("properties") or {}
    by_type: dict[str, Any] = {
        "string": task,
        "integer": len(task.split()),
        "number": len(task.split()),
        "boolean": True,
        "array": [],
        "object": {},
    }
    return {
        name: by_type.get(str(properties.get(name, {}).get("type")), task)
        for name in parameters.get("required") or []
    }


def plan_tool_call(
    messages: Sequence[LLMMessage], tools: Sequence[Tool | ToolSchema]
) -> FunctionCall | None:
    """The offline model's tool call: each tool once, never right after a tool's result."""
    if not tools or (messages and isinstance(messages[-1], FunctionExecutionResultMessage)):
        return None
    called = [
        call.name
        for m in messages
        if isinstance(m, AssistantMessage) and isinstance(m.content, list)
        for call in m.content
    ]
    schema = next((s for s in map(_schema, tools) if s["name"] not in called), None)
    if schema is None:
        return None
    arguments = json.dumps(_arguments(schema, _task(messages)), ensure_ascii=False)
    call_id = f"offline-call-{len(called) + 1}"
    return FunctionCall(id=call_id, name=schema["name"], arguments=arguments)


def _count_words(messages: Sequence[LLMMessage]) -> int:
    return sum(len(_text(m).split()) for m in messages if not isinstance(m, SystemMessage))


def _apply_limits(
    tokens: list[str], args: Mapping[str, Any]
) -> tuple[list[str], Literal["stop", "length"]]:
    finish: Literal["stop", "length"] = "stop"
    stops = args.get("stop")
    if stops:
        text = "".join(tokens)
        cut = min(
            (
                i
                for i in (text.find(s) for s in ([stops] if isinstance(stops, str) else stops))
                if i >= 0
            ),
            default=-1,
        )
        if cut >= 0:
            tokens = split_tokens(text[:cut])
    limit = args.get("max_tokens")
    if isinstance(limit, int) and len(tokens) > limit:
        tokens, finish = tokens[:limit], "length"
    return tokens, finish


class OfflineConfig(BaseModel):
    token_delay: float = Field(default=0.01, ge=0, description="Seconds between words.")


class OfflineChatCompletionClient(ChatCompletionClient, Component[OfflineConfig]):
    """A ChatCompletionClient that answers from `compose_reply`, with no network."""

    component_type = "model"
    component_config_schema = OfflineConfig

    def __init__(self, token_delay: float = 0.01) -> None:
        self._token_delay = token_delay
        self._usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    def _to_config(self) -> OfflineConfig:
        return OfflineConfig(token_delay=self._token_delay)

    @classmethod
    def _from_config(cls, config: OfflineConfig) -> Self:
        return cls(token_delay=config.token_delay)

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
        result: CreateResult | None = None
        async for item in self.create_stream(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        ):
            if isinstance(item, CreateResult):
                result = item
        assert result is not None
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
        call = None if tool_choice == "none" else plan_tool_call(messages, tools)
        if call is not None:
            await self._pause(cancellation_token)
            spent = len(split_tokens(f"{call.name} {call.arguments}"))
            usage = self._count(messages, spent)
            yield CreateResult(
                finish_reason="function_calls", content=[call], usage=usage, cached=False
            )
            return
        tokens, finish = _apply_limits(split_tokens(compose_reply(messages)), extra_create_args)
        for token in tokens:
            await self._pause(cancellation_token)
            yield token
        usage = self._count(messages, len(tokens))
        yield CreateResult(finish_reason=finish, content="".join(tokens), usage=usage, cached=False)

    def _count(self, messages: Sequence[LLMMessage], completion_tokens: int) -> RequestUsage:
        usage = RequestUsage(
            prompt_tokens=_count_words(messages), completion_tokens=completion_tokens
        )
        self._usage = RequestUsage(
            prompt_tokens=self._usage.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self._usage.completion_tokens + usage.completion_tokens,
        )
        return usage

    async def _pause(self, cancellation_token: CancellationToken | None) -> None:
        if cancellation_token is not None and cancellation_token.is_cancelled():
            raise asyncio.CancelledError("the run was cancelled")
        sleep = asyncio.ensure_future(asyncio.sleep(self._token_delay))
        if cancellation_token is not None:
            cancellation_token.link_future(sleep)
        await sleep

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return self._usage

    def total_usage(self) -> RequestUsage:
        return self._usage

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        return _count_words(messages)

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        return max(0, 128_000 - _count_words(messages))

    @property
    def capabilities(self) -> ModelCapabilities:
        return self.model_info

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(
            vision=False,
            function_calling=True,
            json_output=False,
            family=ModelFamily.UNKNOWN,
            structured_output=False,
        )
