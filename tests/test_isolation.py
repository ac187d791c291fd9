"""Concurrent conversations stay apart: no history, instruction or reply leaks between runs.

Twenty clients ask the same team at once, all with the same `user`, each with its own history
carrying a marker no other conversation has. The scripted upstream's default reply echoes the
first words of the last user message, so a reply shows which conversation the model saw: the
drafter's reply starts with the marker, and the reviewer's reply quotes the drafter's.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator

import anyio
import httpx2
import pytest

from support.service import RunningService, behind, running_service
from support.streams import parse_sse, summarise_stream
from support.upstream import ScriptedUpstream

TEAM = "autogen-team"
CONVERSATIONS = 20
SHARED_USER = "one-user-for-everyone"
MARKER = re.compile(r"marker\d\dx[0-9a-f]{8}")


@pytest.fixture
def service(upstream: ScriptedUpstream) -> Iterator[RunningService]:
    with running_service(**behind(upstream.base_url)) as running:
        yield running


def conversation(marker: str) -> list[dict[str, str]]:
    """Instructions, an earlier exchange and the task, every one carrying `marker`."""
    return [
        {"role": "system", "content": f"Always sign as {marker}."},
        {"role": "user", "content": f"{marker} asks: what is a closure?"},
        {"role": "assistant", "content": f"For {marker}: a function with its environment."},
        {"role": "user", "content": f"{marker} asks again: and a generator, {marker}?"},
    ]


async def ask(
    client: httpx2.AsyncClient, marker: str, stream: bool, answers: dict[str, tuple[str, str]]
) -> None:
    body = {"model": TEAM, "messages": conversation(marker), "user": SHARED_USER, "stream": stream}
    if stream:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            text = "".join([piece async for piece in response.aiter_text()])
        assert response.status_code == 200, text
        said = summarise_stream(parse_sse(text))
        answers[marker] = (said.content, said.reasoning)
    else:
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        message = response.json()["choices"][0]["message"]
        answers[marker] = (message["content"], message.get("reasoning_content") or "")


@pytest.mark.anyio
async def test_concurrent_conversations_of_one_user_never_see_each_other(
    service: RunningService, upstream: ScriptedUpstream
) -> None:
    markers = [f"marker{i:02d}x{uuid.uuid4().hex[:8]}" for i in range(CONVERSATIONS)]
    answers: dict[str, tuple[str, str]] = {}
    async with httpx2.AsyncClient(base_url=service.url, timeout=60) as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for i, marker in enumerate(markers):
                    group.start_soon(ask, client, marker, i % 2 == 0, answers)

    # What the model was sent: each call carries one conversation, each conversation two calls.
    seen_by_call = [set(MARKER.findall(json.dumps(r.body["messages"]))) for r in upstream.requests]
    assert all(len(seen) == 1 for seen in seen_by_call), seen_by_call
    calls = Counter(next(iter(seen)) for seen in seen_by_call)
    assert calls == dict.fromkeys(markers, 2)

    # What each client was told: its own marker in the answer and the reasoning, no other.
    for marker, (content, reasoning) in answers.items():
        assert set(MARKER.findall(content)) == {marker}, (marker, content)
        assert set(MARKER.findall(reasoning)) == {marker}, (marker, reasoning)
    assert sorted(answers) == sorted(markers)

    # The runs overlapped: had they run one after another, each conversation's two calls would
    # sit next to each other in the upstream's log.
    order = [next(iter(seen)) for seen in seen_by_call]
    assert any(a != b for a, b in zip(order[::2], order[1::2], strict=True)), order
