"""OpenAI's request and response shapes, and the builders for what we send back.

Requests are validated by pydantic models that tolerate unknown fields (clients send many),
reject wrong types, and refuse fields we cannot honour instead of silently ignoring them.
Stream chunks are built from a per-stream JSON prefix so each token costs one `json.dumps`
of its text: the chunk's id, created and model never change within a stream.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "developer", "user", "assistant"]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class Input(BaseModel):
    """The body of `POST /v1/chat/completions`."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = None
    n: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None

    def sampling(self) -> dict[str, Any]:
        """The fields passed to every model call of the run."""
        fields = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }
        return {name: value for name, value in fields.items() if value is not None}

    def unsupported_field(self) -> tuple[str, str] | None:
        """The first field whose meaning we cannot honour, with the reason."""
        if self.n is not None and self.n != 1:
            return "n", "Only one choice (n=1) is supported: a team produces one answer."
        if self.tools or self.functions:
            field = "tools" if self.tools else "functions"
            return field, "Client-side tools are not supported: the team's agents own their tools."
        if self.tool_choice not in (None, "none", "auto"):
            return "tool_choice", "Client-side tools are not supported."
        if self.logprobs or self.top_logprobs:
            return "logprobs", "Log probabilities are not available from an agent team."
        return None


def message_text(message: ChatMessage) -> str:
    """The message's text; raises ValueError naming the first part that is not text."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts: list[str] = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise ValueError(f"content part type {part.type!r}")
        texts.append(part.text)
    return "".join(texts)


class ModelInformation(BaseModel):
    """What `/v1/models` says about a team, beyond OpenAI's four fields."""

    name: str
    description: str = ""
    pricing: dict[str, str] = Field(
        default_factory=lambda: {"prompt": "0", "completion": "0", "request": "0"}
    )
    context_length: int = 128_000
    architecture: dict[str, Any] = Field(
        default_factory=lambda: {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "unknown",
        }
    )
    top_provider: dict[str, Any] = Field(
        default_factory=lambda: {
            "context_length": 128_000,
            "max_completion_tokens": None,
            "is_moderated": False,
        }
    )
    per_request_limits: dict[str, Any] | None = None


def model_card(model_id: str, created: int, owner: str, info: ModelInformation) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owner} | (
        info.model_dump()
    )


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ChunkWriter:
    """Serialises the chunks of one stream; every chunk shares the id, created and model."""

    def __init__(self, completion_id: str, model: str, created: int | None = None) -> None:
        self.id = completion_id
        self.created = int(time.time()) if created is None else created
        self.model = model
        head = _dumps({"id": completion_id, "object": "chat.completion.chunk"})[:-1]
        self._prefix = f'{head},"created":{self.created},"model":{_dumps(model)},"choices":'
        self._delta_open = self._prefix + '[{"index":0,"delta":'
        self._delta_close = ',"logprobs":null,"finish_reason":null}]}'

    def role(self) -> str:
        return self._delta_open + '{"role":"assistant","content":""}' + self._delta_close

    def content(self, text: str) -> str:
        return self._delta_open + '{"content":' + _dumps(text) + "}" + self._delta_close

    def reasoning(self, text: str) -> str:
        return self._delta_open + '{"reasoning_content":' + _dumps(text) + "}" + self._delta_close

    def finish(self, reason: str = "stop") -> str:
        return self._delta_open + '{},"logprobs":null,"finish_reason":' + _dumps(reason) + "}]}"

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        usage = _dumps(usage_body(prompt_tokens, completion_tokens))
        return self._prefix + '[],"usage":' + usage + "}"


def completion_body(
    completion_id: str,
    model: str,
    content: str,
    reasoning: str | None,
    usage: tuple[int, int],
    finish_reason: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": usage_body(*usage),
    }


def error_event(body: dict[str, Any]) -> str:
    return _dumps(body)


def first_invalid_field(errors: Sequence[Any]) -> str | None:
    """The dotted path of pydantic's first error, for the `param` of a 400."""
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        if location:
            return ".".join(location)
    return None
