"""The HTTP client under the OpenAI-compatible model clients, and per-run response tracking.

Cancelling a run does not always close its upstream stream: when the cancellation lands
while an agent sits between two chunks (a client that stopped reading, say), AutoGen abandons
its OpenAI stream without closing it, and the upstream keeps generating, and billing, until
the garbage collector notices. So every shared OpenAI client sends through a transport that
records each response in the current run's set (a context variable the run's task sets, which
AutoGen's runtime tasks inherit), and the run closes whatever is still open when it ends.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

import httpx2
from openai import DEFAULT_CONNECTION_LIMITS, DefaultAsyncHttpxClient

_open_responses: ContextVar[set[httpx2.Response] | None] = ContextVar(
    "open_upstream_responses", default=None
)


class _RunTrackingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        responses = _open_responses.get()
        if responses is not None:
            responses.add(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def tracked_http_client() -> httpx2.AsyncClient:
    """An HTTP client with the OpenAI SDK's defaults whose responses runs can close."""
    # A transport passed in keeps httpx2's own pool limits (100 connections), not the SDK's
    # (1,000): without these, every model call past the 100th at once would wait for a slot.
    transport = httpx2.AsyncHTTPTransport(limits=DEFAULT_CONNECTION_LIMITS)
    return DefaultAsyncHttpxClient(transport=_RunTrackingTransport(transport))


def track_upstream_responses() -> set[httpx2.Response]:
    """Starts recording the current task's (and its children's) upstream responses."""
    responses: set[httpx2.Response] = set()
    _open_responses.set(responses)
    return responses


async def close_responses(responses: set[httpx2.Response]) -> None:
    """Closes every recorded response; a finished one closes again harmlessly."""
    while responses:
        with contextlib.suppress(Exception):
            await responses.pop().aclose()
