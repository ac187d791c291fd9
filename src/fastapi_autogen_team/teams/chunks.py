"""Reading an OpenAI chat-completion stream: its SSE events, and the reply they add up to.

`SSEReader` splits the body into the data of each event (lines may end in LF, CRLF or CR;
an event may arrive split over several reads). `Reply` puts the chunks together the way
AutoGen's `OpenAIChatCompletionClient.create_stream` does, so the direct path (`direct.py`)
hands AutoGen the same text pieces and the same `CreateResult`: reasoning wrapped in
`<think>`, text, tool calls assembled by index, usage from the last chunk, the first finish
reason, log-probabilities of chunks without text (as AutoGen does), R1-style thoughts.

One deliberate difference: AutoGen takes the `<think>` tags off the thought with
`lstrip("<think>")`/`rstrip("</think>")`, which strip any of those characters, so a thought
"hint think" becomes " "; here only the tags themselves are removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import (
    ChatCompletionTokenLogprob,
    CreateResult,
    FinishReasons,
    ModelFamily,
    RequestUsage,
    TopLogprob,
)

_FINISH_REASONS: dict[str, FinishReasons] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "function_calls": "function_calls",
    "end_turn": "stop",
    "tool_calls": "function_calls",
}
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


@dataclass(slots=True)
class SSEReader:
    """Splits an SSE body into the data of its events, read by read, in linear time."""

    _partial: list[bytes] = field(default_factory=list)
    """The start of a line that has not ended yet, as it arrived."""
    _after_cr: bool = False
    """The last read ended in CR: an LF opening the next one belongs to it."""
    _data: list[bytes] = field(default_factory=list)

    def feed(self, piece: bytes) -> list[bytes]:
        """Takes one read; returns the data of every event it completed."""
        if self._after_cr and piece.startswith(b"\n"):
            piece = piece[1:]
        self._after_cr = False
        if b"\n" not in piece and b"\r" not in piece:
            if piece:
                self._partial.append(piece)
            return []
        self._after_cr = piece.endswith(b"\r")
        lines = piece.splitlines(keepends=True)
        if self._partial:
            lines[0] = b"".join(self._partial) + lines[0]
            self._partial.clear()
        if not lines[-1].endswith((b"\n", b"\r")):
            self._partial.append(lines.pop())
        events: list[bytes] = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # Other fields (event, id, retry) and comments carry nothing a chat stream needs.
        return events


class Reply:
    """One streamed reply being put together, chunk by chunk, as AutoGen's client does it."""

    def __init__(self, family: str) -> None:
        self._family = family
        self._stop_reason: str | None = None
        self._content: list[str] = []
        self._thought: list[str] = []
        self._thinking = False
        self._calls: dict[int | None, FunctionCall] = {}
        self._logprobs: list[ChatCompletionTokenLogprob] | None = None
        self._last_usage: Mapping[str, Any] | None = None

    def add(self, chunk: Mapping[str, Any]) -> list[str]:
        """Takes one chunk; returns the text to hand on (reasoning, then content)."""
        usage = chunk.get("usage")
        self._last_usage = usage
        choices = chunk.get("choices")
        if not choices:
            return []
        choice = choices[0]
        if usage is None and self._stop_reason is None:
            self._stop_reason = choice.get("finish_reason")
        delta = choice.get("delta") or {}
        out: list[str] = []
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            if not self._thinking:
                reasoning = _THINK_OPEN + reasoning
                self._thinking = True
            self._thought.append(reasoning)
            out.append(reasoning)
        elif reasoning is None and self._thinking:
            self._thought.append(_THINK_CLOSE)
            self._thinking = False
            out.append(_THINK_CLOSE)
        if text := delta.get("content"):
            self._content.append(text)
            out.append(text)
            return out
        for piece in delta.get("tool_calls") or ():
            # AutoGen keys a call without an index by None, so one such call still works.
            index = piece.get("index")
            call = self._calls.setdefault(index, FunctionCall(id="", arguments="", name=""))
            if piece.get("id") is not None:
                call.id += piece["id"]
            if (function := piece.get("function")) is not None:
                if function.get("name") is not None:
                    call.name += function["name"]
                if function.get("arguments") is not None:
                    call.arguments += function["arguments"]
        logprobs = choice.get("logprobs")
        if logprobs and logprobs.get("content"):
            self._logprobs = [_logprob(item) for item in logprobs["content"]]
        return out

    def result(self) -> CreateResult:
        if self._stop_reason == "function_call":
            raise ValueError("Function calls are not supported in this context")
        usage = self._last_usage or {}
        content: str | list[FunctionCall]
        thought: str | None = None
        if self._calls:
            content = list(self._calls.values())
            thought = "".join(self._content) if self._content else None
        else:
            content = "".join(self._content)
            if self._thought:
                thought = (
                    "".join(self._thought).removeprefix(_THINK_OPEN).removesuffix(_THINK_CLOSE)
                )
            if self._family == ModelFamily.R1 and thought is None:
                thought, content = _split_r1(content)
        return CreateResult(
            finish_reason=_finish_reason(self._stop_reason),
            content=content,
            usage=RequestUsage(
                prompt_tokens=usage.get("prompt_tokens") or 0,
                completion_tokens=usage.get("completion_tokens") or 0,
            ),
            cached=False,
            logprobs=self._logprobs,
            thought=thought,
        )


def _finish_reason(reason: str | None) -> FinishReasons:
    return "unknown" if reason is None else _FINISH_REASONS.get(reason.lower(), "unknown")


def _logprob(item: Mapping[str, Any]) -> ChatCompletionTokenLogprob:
    return ChatCompletionTokenLogprob(
        token=item["token"],
        logprob=item["logprob"],
        top_logprobs=[
            TopLogprob(logprob=top["logprob"], bytes=top.get("bytes"))
            for top in item.get("top_logprobs") or ()
        ],
        bytes=item.get("bytes"),
    )


def _split_r1(content: str) -> tuple[str | None, str]:
    """R1-style models put their reasoning inside the content, between <think> tags."""
    start, end = content.find(_THINK_OPEN), content.find(_THINK_CLOSE)
    if start == -1 or end == -1 or end < start:
        return None, content
    thought = content[start + len(_THINK_OPEN) : end]
    return thought.strip(), content[end + len(_THINK_CLOSE) :].strip()
