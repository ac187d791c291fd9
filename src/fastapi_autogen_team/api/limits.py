"""Request size limits: the body's bytes, the number of messages, each message's length.

The byte limit is enforced while the body is received, before it is parsed, so a client
cannot make the service buffer more than MAX_REQUEST_BYTES whatever Content-Length says.
"""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidRequest, PayloadTooLarge
from ..settings import Settings
from ..wire import Input
from .errors import error_response


def check_limits(body: Input, settings: Settings) -> None:
    if len(body.messages) > settings.MAX_MESSAGES:
        raise InvalidRequest(
            f"Too many messages: {len(body.messages)}; at most {settings.MAX_MESSAGES}.",
            param="messages",
        )
    for index, message in enumerate(body.messages):
        content = message.content
        size = (
            len(content)
            if isinstance(content, str)
            else sum(len(part.text or "") for part in content or ())
        )
        if size > settings.MAX_MESSAGE_CHARS:
            raise InvalidRequest(
                f"Message {index} has {size} characters; at most {settings.MAX_MESSAGE_CHARS}.",
                param=f"messages.{index}.content",
            )


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware answering 413 to any request body over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                too_large = True
                raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework turns a failed body read into its own 400; we answer 413 instead.
            if not too_large:
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if too_large:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"The request body is larger than {self.limit} bytes.")
        await error_response(error)(scope, receive, send)
