"""How a team run's AutoGen events become OpenAI deltas (AGENT_MESSAGES).

The answer agent's tokens go to `content`; every other agent's turn goes to
`reasoning_content` (mode `reasoning`), to `content` under a speaker header (mode
`content`), to `content` inside `<think>…</think>` (mode `think`, for clients that fold such
a block but ignore reasoning fields), or nowhere (mode `final`). Each turn on a channel starts
with its speaker's name. With no answer agent, the run's last message is the answer, sent
when the run ends; so is the answer agent's last message when its turn does not end the run
(`answer_streams` false: it may speak again), its turns streaming like the others'.
Tool calls and their results are shown on the inner agents' channel, one line each.

Tokens arrive two ways: as `AgentToken`s straight from the service's model client (agents
built with `model_client_stream=False`), or as AutoGen's ModelClientStreamingChunkEvents
(agents on another client). Either way the agent's whole message follows, and is skipped
when its text was already streamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autogen_agentchat.messages import (
    BaseChatMessage,
    ModelClientStreamingChunkEvent,
    StructuredMessage,
    TextMessage,
    ThoughtEvent,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)

from ..settings import AgentMessages
from ..teams.clients import AgentToken, AgentToolCalls, AgentToolResults

Channel = Literal["content", "reasoning"]
_RESULT_EXCERPT = 300
_THINK_OPEN = "<think>\n"
_THINK_CLOSE = "\n</think>\n\n"


@dataclass(frozen=True, slots=True)
class Delta:
    channel: Channel
    text: str


def _excerpt(text: str, limit: int = _RESULT_EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class DeltaMapper:
    """Turns AutoGen events into deltas, one AGENT_MESSAGES mode and answer agent per run."""

    def __init__(
        self, mode: AgentMessages, answer_agent: str | None, answer_streams: bool = True
    ) -> None:
        self._mode = mode
        self._answer_agent = answer_agent
        self._live_answer = answer_agent if answer_streams else None
        self._speaker: dict[Channel, str | None] = {"content": None, "reasoning": None}
        self._streamed: set[str] = set()
        self._streaming: set[str] = set()
        self._shown_tools: set[tuple[str, str]] = set()
        """Agents whose tokens came as AgentTokens since their last message."""
        self._last_message = ""
        self._thinking = False
        self.answered = False

    def map(self, event: object) -> list[Delta]:
        if isinstance(event, AgentToken):
            self._streaming.add(event.source)
            return self._say(event.source, event.text)
        if isinstance(event, ModelClientStreamingChunkEvent):
            self._streamed.add(event.full_message_id or "")
            return self._say(event.source, event.content)
        if isinstance(event, AgentToolCalls | ToolCallRequestEvent):
            calls = event.calls if isinstance(event, AgentToolCalls) else event.content
            new_calls = [c for c in calls if self._first_time(("call", c.id or repr(c)))]
            lines = "".join(f"\u2192 {c.name}({c.arguments})\n" for c in new_calls)
            return self._note(event.source, lines)
        if isinstance(event, AgentToolResults | ToolCallExecutionEvent):
            results = event.results if isinstance(event, AgentToolResults) else event.content
            new_results = [r for r in results if self._first_time(("result", r.call_id or repr(r)))]
            lines = "".join(f"\u2190 {r.name}: {_excerpt(r.content)}\n" for r in new_results)
            return self._note(event.source, lines)
        if isinstance(event, ThoughtEvent):
            return self._note(event.source, event.content)
        if isinstance(event, BaseChatMessage):
            return self._message(event)
        return []

    def _first_time(self, key: tuple[str, str]) -> bool:
        """Whether a tool call or result is new: it can reach the run twice (see AgentToolCalls)."""
        if key in self._shown_tools:
            return False
        self._shown_tools.add(key)
        return True

    def finish(self) -> list[Delta]:
        """What is still owed when the run ends: the answer, if none was streamed."""
        closing = self._think(opening=False)
        if self.answered or not self._last_message:
            return closing
        if self._mode == "content" and self._live_answer is None:
            return []
        self.answered = True
        return [*closing, Delta("content", self._last_message)]

    def _message(self, message: BaseChatMessage) -> list[Delta]:
        text = message.to_model_text()
        if self._answer_agent in (None, message.source):
            self._last_message = text
        if message.id in self._streamed:
            return []
        if message.source in self._streaming:
            self._streaming.discard(message.source)
            # The kinds AutoGen makes of a streamed reply; a tool-call summary was not streamed.
            if isinstance(message, TextMessage | StructuredMessage):
                return []
        return self._say(message.source, text)

    def _say(self, source: str, text: str) -> list[Delta]:
        if self._live_answer is not None and source == self._live_answer:
            self.answered = True
            header = self._mode == "content"
            return self._think(opening=False) + self._on("content", source, text, header=header)
        return self._note(source, text)

    def _note(self, source: str, text: str) -> list[Delta]:
        if self._mode == "final" or not text:
            return []
        channel: Channel = "reasoning" if self._mode == "reasoning" else "content"
        return self._think(opening=True) + self._on(channel, source, text, header=True)

    def _think(self, *, opening: bool) -> list[Delta]:
        """The tag that opens or closes mode `think`'s block, when one is due."""
        if self._mode != "think" or self._thinking == opening:
            return []
        self._thinking = opening
        self._speaker["content"] = None
        return [Delta("content", _THINK_OPEN if opening else _THINK_CLOSE)]

    def _on(self, channel: Channel, source: str, text: str, *, header: bool) -> list[Delta]:
        previous = self._speaker[channel]
        self._speaker[channel] = source
        if not header or previous == source:
            return [Delta(channel, text)]
        gap = "" if previous is None else "\n\n"
        return [Delta(channel, f"{gap}**{source}**\n"), Delta(channel, text)]
