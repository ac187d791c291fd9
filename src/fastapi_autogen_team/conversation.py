"""OpenAI chat messages -> what a team run takes: instructions, history and the task.

System and developer messages become instructions appended to every agent's system message.
Earlier user and assistant turns become each agent's preloaded history with their roles kept,
so the model sees a real conversation rather than a transcript pasted into one message.
The last message is the task and must come from the user.
"""

from __future__ import annotations

from dataclasses import dataclass

from autogen_core.models import AssistantMessage, LLMMessage, UserMessage

from .errors import InvalidRequest
from .wire import ChatMessage, message_text


@dataclass(frozen=True, slots=True)
class Conversation:
    instructions: str
    history: list[LLMMessage]
    task: str


def _text(message: ChatMessage, index: int) -> str:
    try:
        text = message_text(message)
    except ValueError as problem:
        raise InvalidRequest(
            f"Message {index} has a {problem} part; this service accepts text content only.",
            param=f"messages.{index}.content",
        ) from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON allows an escaped lone surrogate ("\ud800"); no reply containing it can be sent.
        raise InvalidRequest(
            f"Message {index} contains a lone UTF-16 surrogate, which is not valid text.",
            param=f"messages.{index}.content",
        ) from None
    return text


def split_conversation(messages: list[ChatMessage]) -> Conversation:
    last = len(messages) - 1
    if messages[last].role != "user":
        raise InvalidRequest(
            "The last message must have the role 'user': it is the task given to the team.",
            param=f"messages.{last}.role",
        )
    instructions: list[str] = []
    history: list[LLMMessage] = []
    for index, message in enumerate(messages[:last]):
        text = _text(message, index)
        if message.role in ("system", "developer"):
            instructions.append(text)
        elif message.role == "user":
            history.append(UserMessage(content=text, source=message.name or "user"))
        else:
            history.append(AssistantMessage(content=text, source=message.name or "assistant"))
    task = _text(messages[last], last)
    if not task.strip():
        raise InvalidRequest("The last user message is empty.", param=f"messages.{last}.content")
    return Conversation("\n\n".join(instructions), history, task)
