"""Prompt and reply text as GenAI span attributes, for `CAPTURE_CONTENT=true` only.

The shapes follow the GenAI semantic conventions' `gen_ai.input.messages` and
`gen_ai.output.messages`: a JSON list of `{role, parts}` messages whose parts are text,
reasoning, tool calls and tool call responses. Images are recorded as a part of type `image`
without their bytes. Nothing here decides whether to capture; the model client asks only
when the setting is on. `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` bounds the attributes' size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
)

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"

Part = dict[str, Any]

# AutoGen's finish reasons where the conventions name them differently.
_FINISH_REASONS = {"function_calls": "tool_call"}


def input_messages(messages: Sequence[LLMMessage]) -> str:
    return json.dumps([_message(message) for message in messages], ensure_ascii=False)


def output_messages(result: CreateResult) -> str:
    reason = str(result.finish_reason)
    message = {
        "role": "assistant",
        "parts": _assistant_parts(result.content, result.thought),
        "finish_reason": _FINISH_REASONS.get(reason, reason),
    }
    return json.dumps([message], ensure_ascii=False)


def _message(message: LLMMessage) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "parts": [_text(message.content)]}
    if isinstance(message, AssistantMessage):
        parts = _assistant_parts(message.content, message.thought)
        return {"role": "assistant", "name": message.source, "parts": parts}
    if isinstance(message, FunctionExecutionResultMessage):
        parts = [
            {"type": "tool_call_response", "id": result.call_id, "response": result.content}
            for result in message.content
        ]
        return {"role": "tool", "parts": parts}
    content = [message.content] if isinstance(message.content, str) else message.content
    parts = [_text(item) if isinstance(item, str) else {"type": "image"} for item in content]
    return {"role": "user", "name": message.source, "parts": parts}


def _assistant_parts(content: str | Sequence[FunctionCall], thought: str | None) -> list[Part]:
    parts: list[Part] = [{"type": "reasoning", "content": thought}] if thought else []
    if isinstance(content, str):
        return [*parts, _text(content)]
    calls = [
        {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        for call in content
    ]
    return [*parts, *calls]


def _text(content: str) -> Part:
    return {"type": "text", "content": content}
