"""Failed model calls are retried only while nothing was produced, and only within bounds."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import pytest

from fastapi_autogen_team.teams.retry import RetryPolicy, retry_after_header, retry_after_seconds
from support.service import running_service
from support.upstream import Drop, Hang, HttpError, Reply, ScriptedUpstream

TEAM = "autogen-team"
QUESTION = [{"role": "user", "content": "Name a planet."}]


@pytest.fixture
def client(upstream: ScriptedUpstream) -> Iterator[openai.OpenAI]:
    with (
        running_service(
            LLM_MODEL="scripted",
            LLM_BASE_URL=upstream.base_url,
            LLM_API_KEY="k",
            LLM_TIMEOUT=1.0,
            LLM_MAX_RETRIES=2,
            LLM_RETRY_AFTER_MAX=3,
        ) as service,
        openai.OpenAI(base_url=service.base_url, api_key="x", max_retries=0) as sdk,
    ):
        yield sdk


def test_server_errors_are_retried_then_answered(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script(HttpError(500), HttpError(502), Reply.text("draft"), Reply.text("Mars."))
    answer = client.chat.completions.create(model=TEAM, messages=QUESTION)
    assert answer.choices[0].message.content == "Mars."
    assert len(upstream.requests) == 4


def test_retries_are_bounded(client: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    upstream.script(HttpError(500), HttpError(500), HttpError(500), Reply.text("never"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=TEAM, messages=QUESTION, stream=True)
    assert caught.value.response.status_code == 502
    assert len(upstream.requests) == 3


def test_retry_after_within_bound_is_waited_for(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script(HttpError(429, retry_after=1), Reply.text("draft"), Reply.text("Venus."))
    answer = client.chat.completions.create(model=TEAM, messages=QUESTION)
    assert answer.choices[0].message.content == "Venus."
    first, second = upstream.requests[:2]
    assert second.received_at - first.received_at >= 0.9


def test_retry_after_beyond_bound_goes_to_the_client(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script(HttpError(429, retry_after=60))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=TEAM, messages=QUESTION)
    assert caught.value.response.headers["retry-after"] == "60"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("step", [Drop(tokens=["Half", " a draft"]), HttpError(400), Hang()])
def test_output_client_errors_and_timeouts_are_not_retried(
    client: openai.OpenAI, upstream: ScriptedUpstream, step: object
) -> None:
    upstream.script(step)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=TEAM, messages=QUESTION)
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


def test_policy_stops_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=1)
    error = openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1/v1"))
    assert policy.delay(error, 0) == policy.base_delay
    assert policy.delay(error, 1) is None


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "1e400", "garbage"])
def test_meaningless_retry_after_is_ignored(value: str) -> None:
    """Bug: "-5" or "nan" counted as a wait of 0 (retries in a burst) and was passed to
    clients verbatim. Cause: the header was parsed with float() and not checked."""
    assert retry_after_seconds({"retry-after": value}) is None
    assert retry_after_header({"retry-after": value}) == {}


def test_retry_after_header_for_clients_is_whole_seconds() -> None:
    assert retry_after_header({"retry-after-ms": "1500"}) == {"Retry-After": "2"}


def test_retry_is_never_sooner_than_the_backoff() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1")
    response = httpx2.Response(429, headers={"retry-after": "0"}, request=request)
    error = openai.RateLimitError("slow down", response=response, body=None)
    policy = RetryPolicy(max_retries=2)
    assert policy.delay(error, 1) == 2 * policy.base_delay
