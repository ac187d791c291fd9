"""Many model calls at once reach the upstream at once: no hidden connection pool cap."""

from __future__ import annotations

import functools

import anyio
import httpx2
import pytest

from support.service import running_service
from support.upstream import Hang, ScriptedUpstream

STREAMS = 150


@pytest.mark.anyio
async def test_more_than_a_hundred_model_calls_are_in_flight_together() -> None:
    """Bug: giving the OpenAI client our own transport dropped the SDK's pool limits (1,000
    connections) for httpx2's (100), so calls past the 100th queued for a free connection."""
    with (
        ScriptedUpstream() as upstream,
        running_service(
            LLM_MODEL="scripted", LLM_BASE_URL=upstream.base_url, LLM_API_KEY="k"
        ) as service,
    ):
        upstream.script(*[Hang() for _ in range(STREAMS)])
        limits = httpx2.Limits(max_connections=STREAMS + 10)
        body = {"model": "autogen-team", "messages": [{"role": "user", "content": "hi"}]}
        async with (
            httpx2.AsyncClient(limits=limits, timeout=30) as client,
            anyio.create_task_group() as tasks,
        ):
            url = f"{service.base_url}/chat/completions"
            for _ in range(STREAMS):
                tasks.start_soon(functools.partial(client.post, url, json=body))
            with anyio.fail_after(15):
                await upstream.wait_until(lambda: len(upstream.requests) >= STREAMS)
            tasks.cancel_scope.cancel()
        assert len(upstream.requests) == STREAMS
        with anyio.fail_after(10):
            await upstream.wait_until(lambda: upstream.active == 0)
