"""The service in front of a scripted OpenAI-compatible upstream: forwarding, usage, faults."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from support.schema import validate
from support.service import RunningService, running_service
from support.upstream import Drop, Hang, HttpError, Malformed, Reply, ScriptedUpstream

TEAM = "autogen-team"
QUESTION = [{"role": "user", "content": "Name three primary colours."}]


@pytest.fixture
def service(upstream: ScriptedUpstream) -> Iterator[RunningService]:
    with running_service(
        LLM_MODEL="scripted",
        LLM_BASE_URL=upstream.base_url,
        LLM_API_KEY="upstream-key",
        LLM_TIMEOUT=1.0,
    ) as running:
        yield running


@pytest.fixture
def client(service: RunningService) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def raw_events(service: RunningService, **fields: Any) -> tuple[int, list[str]]:
    body = {"model": TEAM, "messages": QUESTION, "stream": True} | fields
    with httpx2.stream("POST", f"{service.base_url}/chat/completions", json=body) as response:
        text = "".join(response.iter_text())
    return response.status_code, [e.removeprefix("data: ") for e in text.split("\n\n") if e]


def test_tokens_are_forwarded_as_they_arrive(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    draft = Reply.text("A short draft.")
    answer = Reply.text("Red, yellow and blue are the primary colours.", delay=0.15)
    upstream.script(draft, answer)
    arrivals: list[tuple[float, str]] = []
    stream = client.chat.completions.create(model=TEAM, messages=QUESTION, stream=True)
    for chunk in stream:
        validate(chunk.to_dict(), "CreateChatCompletionStreamResponse")
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    assert "".join(text for _, text in arrivals) == "".join(answer.tokens)
    assert len(arrivals) == len(answer.tokens)
    # Eight tokens 0.15 s apart: if they were buffered to the end they'd arrive together.
    assert arrivals[-1][0] - arrivals[0][0] > 0.5 * 0.15 * (len(answer.tokens) - 1)


def test_usage_is_summed_over_every_model_call(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script(
        Reply(["draft"], prompt_tokens=11, completion_tokens=3),
        Reply(["answer"], prompt_tokens=17, completion_tokens=5),
    )
    stream = client.chat.completions.create(
        model=TEAM, messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    usage = [chunk.usage for chunk in stream if chunk.usage][-1]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (28, 8, 36)
    assert all(r.body["stream_options"] == {"include_usage": True} for r in upstream.requests)


def test_sampling_fields_history_and_instructions_reach_every_call(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Name three primary colours."},
    ]
    client.chat.completions.create(
        model=TEAM,
        messages=messages,
        temperature=0.3,
        top_p=0.9,
        seed=7,
        max_tokens=50,
        stop=["END"],
    )
    assert len(upstream.requests) == 2
    for request in upstream.requests:
        body = request.body
        assert (body["temperature"], body["top_p"], body["seed"]) == (0.3, 0.9, 7)
        assert body["max_tokens"] == 50 and body["stop"] == ["END"]
        sent = body["messages"]
        assert sent[0]["role"] == "system" and "Answer in French." in sent[0]["content"]
        assert [m["role"] for m in sent[1:3]] == ["user", "assistant"]
        assert sent[2]["content"] == "Bonjour"
        assert request.headers["authorization"] == "Bearer upstream-key"


@pytest.mark.parametrize(
    ("step", "status", "sdk_error"),
    [
        (HttpError(500), 502, openai.InternalServerError),
        (HttpError(429, retry_after=7), 429, openai.RateLimitError),
        (Hang(), 504, openai.APIStatusError),
        (Drop(tokens=()), 502, openai.InternalServerError),
    ],
)
def test_upstream_fault_before_output_maps_to_status(
    client: openai.OpenAI, upstream: ScriptedUpstream, step: Any, status: int, sdk_error: Any
) -> None:
    upstream.script(step)
    with pytest.raises(sdk_error) as caught:
        client.chat.completions.create(model=TEAM, messages=QUESTION, stream=True)
    response = caught.value.response
    assert response.status_code == status
    validate(response.json(), "ErrorResponse")
    assert "Traceback" not in response.text and "scripted upstream" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"
    assert len(upstream.requests) == 1  # the second agent never called the model
    upstream.script(Reply.text("fine draft"), Reply.text("fine answer"))
    healthy = client.chat.completions.create(model=TEAM, messages=QUESTION)
    assert healthy.choices[0].message.content == "fine answer"


@pytest.mark.parametrize(
    "step", [Drop(tokens=["Half", " a", " draft"]), Malformed(tokens=["Half"], close=True)]
)
def test_upstream_fault_mid_stream_ends_with_error_event_and_done(
    service: RunningService, upstream: ScriptedUpstream, step: Any
) -> None:
    upstream.script(step)
    status, events = raw_events(service)
    assert status == 200
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    validate(error, "ErrorResponse")
    assert error["error"]["code"] == "upstream_error"
    chunks = [json.loads(e) for e in events[:-2]]
    assert any(c["choices"][0]["delta"].get("reasoning_content") == "Half" for c in chunks)
    assert len(upstream.requests) == 1


def test_non_streaming_fault_maps_to_status(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply.text("draft"), HttpError(503))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=TEAM, messages=QUESTION)
    assert caught.value.response.status_code == 502


def test_client_disconnect_closes_upstream_and_stops_the_run(
    service: RunningService, upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.script(Reply.text("word " * 200, delay=0.05), Reply.text("never asked"))
    body = {"model": TEAM, "messages": QUESTION, "stream": True}
    with httpx2.stream("POST", f"{service.base_url}/chat/completions", json=body) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(8)]
    closed_at = time.monotonic()
    assert any("reasoning_content" in line for line in received)
    assert upstream.wait_for(lambda: upstream.disconnects, timeout=2.0)
    assert upstream.wait_for(lambda: upstream.active == 0, timeout=2.0)
    time.sleep(0.5)
    assert len(upstream.requests) == 1
    assert upstream.pending == 1
    # Regression: AutoGen logged every cancelled agent as an ERROR with a traceback.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    print(f"upstream saw the close {time.monotonic() - closed_at:.3f} s after the client")


def test_client_disconnect_before_first_token_stops_the_run(
    service: RunningService, upstream: ScriptedUpstream
) -> None:
    upstream.script(Hang())
    body = {"model": TEAM, "messages": QUESTION, "stream": True}
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(f"{service.base_url}/chat/completions", json=body, timeout=0.3)
    assert upstream.wait_for(lambda: upstream.disconnects, timeout=2.0)
    assert len(upstream.requests) == 1
