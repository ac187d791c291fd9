"""The chat API through the official openai SDK against a real uvicorn, on the offline model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from support.schema import validate
from support.service import RunningService, running_service

TEAM = "autogen-team"
QUESTION = [{"role": "user", "content": "What is the boiling point of water?"}]


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    with running_service() as running:
        yield running


@pytest.fixture
def client(service: RunningService) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)


def check_stream(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Validates a whole stream and returns what it said: content, reasoning, usage."""
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    assert choices[0]["delta"]["role"] == "assistant"
    finishes = [i for i, choice in enumerate(choices) if choice["finish_reason"] is not None]
    assert finishes == [len(choices) - 1]
    for choice in choices:
        delta = choice["delta"]
        assert not (delta.get("content") and delta.get("reasoning_content"))
    usage = [c["usage"] for c in chunks if c.get("usage")]
    return {
        "content": "".join(c["delta"].get("content") or "" for c in choices),
        "reasoning": "".join(c["delta"].get("reasoning_content") or "" for c in choices),
        "usage": usage[-1] if usage else None,
        "finish_reason": choices[-1]["finish_reason"],
        "usage_last": bool(usage) and not chunks[-1]["choices"],
    }


def test_models_list_has_openai_shape_and_model_information(
    service: RunningService, client: openai.OpenAI
) -> None:
    body = httpx2.get(f"{service.base_url}/models").json()
    validate(body, "ListModelsResponse")
    listed = [model.to_dict() for model in client.models.list()]
    assert listed == body["data"]
    assert [m["id"] for m in listed] == [TEAM]
    team = listed[0]
    assert isinstance(team["created"], int)
    for field in ("name", "description", "pricing", "context_length", "architecture"):
        assert team[field], field
    assert "top_provider" in team and "per_request_limits" in team
    assert client.models.retrieve(TEAM).id == TEAM


def test_unknown_model_lookup_is_a_404_error_object(service: RunningService) -> None:
    response = httpx2.get(f"{service.base_url}/models/nope")
    assert response.status_code == 404
    validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == "model_not_found"


def test_completion_without_stream_gives_answer_reasoning_and_usage(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.create(model=TEAM, messages=QUESTION)
    body = completion.to_dict()
    validate(body, "CreateChatCompletionResponse")
    message = body["choices"][0]["message"]
    assert "boiling point of water" in message["content"]
    assert message["reasoning_content"].startswith("**drafter**\n")
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    assert body["usage"]["completion_tokens"] > 0


def test_stream_with_usage_is_valid_and_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=TEAM, messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    said = check_stream([chunk.to_dict() for chunk in stream])
    assert said["reasoning"].startswith("**drafter**\nDraft for")
    assert "boiling point of water" in said["content"]
    assert "**" not in said["content"]
    assert said["usage_last"]
    assert (
        said["usage"]["completion_tokens"]
        == len(said["reasoning"].split()) + len(said["content"].split()) - 1
    )  # the reasoning's "**drafter**" header is ours, not the model's


@pytest.mark.anyio
async def test_async_client_streams_the_same_answer(service: RunningService) -> None:
    client = openai.AsyncOpenAI(base_url=service.base_url, api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(model=TEAM, messages=QUESTION, stream=True)
    said = check_stream([chunk.to_dict() async for chunk in stream])
    assert "boiling point of water" in said["content"]
    assert said["usage"] is None
    await client.close()


def test_stream_wire_format_is_sse_with_lf_and_done(service: RunningService) -> None:
    request = {"model": TEAM, "messages": QUESTION, "stream": True}
    with httpx2.stream("POST", f"{service.base_url}/chat/completions", json=request) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes())
    assert b"\r" not in raw
    events = raw.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [event.removeprefix("data: ") for event in events[:-2]]
    assert all(event.startswith("data: ") for event in events[:-2])
    check_stream([json.loads(payload) for payload in payloads])


@pytest.mark.parametrize(
    ("mode", "reasoning_expected", "content_headers"),
    [("content", False, ["**drafter**", "**reviewer**"]), ("final", False, [])],
)
def test_agent_messages_mode_routes_turns(
    mode: str, reasoning_expected: bool, content_headers: list[str]
) -> None:
    with running_service(AGENT_MESSAGES=mode) as service:
        client = openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model=TEAM, messages=QUESTION, stream=True)
        said = check_stream([chunk.to_dict() for chunk in stream])
    assert bool(said["reasoning"]) is reasoning_expected
    for header in content_headers:
        assert header in said["content"]
    assert ("Draft for" in said["content"]) is (mode == "content")
    assert "boiling point of water" in said["content"]


def test_offline_model_honours_max_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=TEAM, messages=QUESTION, max_tokens=3)
    assert len(completion.choices[0].message.content.split()) == 3
    assert completion.usage.completion_tokens == 6  # two model calls, three tokens each


def test_concurrent_streams_each_get_their_own_answer(service: RunningService) -> None:
    import concurrent.futures

    def ask(n: int) -> tuple[int, dict[str, Any]]:
        client = openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)
        question = [{"role": "user", "content": f"Question number {n} about topic-{n}?"}]
        stream = client.chat.completions.create(model=TEAM, messages=question, stream=True)
        return n, check_stream([chunk.to_dict() for chunk in stream])

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(ask, range(32)))
    for n, said in results:
        assert f"topic-{n}?" in said["content"]
        assert f"topic-{n}?" in said["reasoning"]
        others = [f"topic-{m}?" for m in range(32) if m != n]
        assert not any(other in said["content"] + said["reasoning"] for other in others)


def test_quiet_stream_gets_comment_pings_that_clients_ignore() -> None:
    with running_service(PING_INTERVAL=0.2, OFFLINE_TOKEN_DELAY=0.5) as service:
        request = {"model": TEAM, "messages": QUESTION, "stream": True, "max_tokens": 2}
        url = f"{service.base_url}/chat/completions"
        with httpx2.stream("POST", url, json=request) as response:
            lines = [line for line in response.iter_lines() if line]
        client = openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model=TEAM, messages=QUESTION, stream=True, max_tokens=2
        )
        said = check_stream([chunk.to_dict() for chunk in stream])
        client.close()
    assert any(line.startswith(": ping") for line in lines)
    assert all(line.startswith((": ", "data: ")) for line in lines)
    assert len(said["content"].split()) == 2


def test_model_created_is_stable_across_restarts(tmp_path: Any) -> None:
    """UIs cache the model list; `created` must not change each time the service starts."""
    examples = Path(__file__).resolve().parents[1] / "examples" / "teams"
    listings = []
    for _ in range(2):
        with running_service(TEAMS_DIR=str(examples)) as service:
            listings.append(httpx2.get(f"{service.base_url}/models").json()["data"])
        time.sleep(1.1)
    first, second = ({m["id"]: m["created"] for m in data} for data in listings)
    assert first == second
    assert first["writer-critic"] == int((examples / "writer-critic.yaml").stat().st_mtime)
