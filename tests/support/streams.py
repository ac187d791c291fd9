"""What a stream of chat.completion.chunk objects said, checked the way strict clients check it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from support.schema import validate


@dataclass(frozen=True)
class Said:
    content: str
    reasoning: str
    reasoning_pieces: list[str]
    finish_reason: str
    usage: dict[str, int] | None


def summarise_stream(chunks: Sequence[dict[str, Any]]) -> Said:
    """Validates every chunk and the stream's shape, and returns what the stream said.

    The shape is what the OpenAI Node SDK's stream helper and the chat UIs rely on: one id,
    `created` and model for the whole stream, the role on the first choice chunk, index 0 on
    every choice, a single finish_reason on the last choice chunk, usage (when sent) last with
    no choices, and never content and reasoning in the same delta.
    """
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    assert all(len(c["choices"]) <= 1 for c in chunks)
    assert {choice["index"] for choice in choices} == {0}
    assert choices[0]["delta"]["role"] == "assistant"
    finishes = [i for i, choice in enumerate(choices) if choice["finish_reason"] is not None]
    assert finishes == [len(choices) - 1]
    assert all(
        not (c["delta"].get("content") and c["delta"].get("reasoning_content")) for c in choices
    )
    usages = [c["usage"] for c in chunks if c.get("usage")]
    assert len(usages) <= 1
    if usages:
        assert chunks[-1].get("usage") and not chunks[-1]["choices"]
    pieces = [
        c["delta"]["reasoning_content"] for c in choices if c["delta"].get("reasoning_content")
    ]
    return Said(
        content="".join(c["delta"].get("content") or "" for c in choices),
        reasoning="".join(pieces),
        reasoning_pieces=pieces,
        finish_reason=choices[-1]["finish_reason"],
        usage=usages[0] if usages else None,
    )


def parse_sse(body: str) -> list[dict[str, Any]]:
    """The chunks of a raw SSE body as OpenAI sends it: `data: …` events, `data: [DONE]` last."""
    assert "\r" not in body
    events = [event for event in body.split("\n\n") if event and not event.startswith(":")]
    assert events[-1] == "data: [DONE]", events[-3:]
    assert all(event.startswith("data: ") and "\n" not in event for event in events)
    return [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
