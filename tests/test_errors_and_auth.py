"""Every client error is an OpenAI error object with the right status; auth guards /v1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from support.schema import validate
from support.service import RunningService, running_service

TEAM = "autogen-team"
KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    with running_service() as running:
        yield running


def post(service: RunningService, body: Any, **kwargs: Any) -> httpx2.Response:
    return httpx2.post(f"{service.base_url}/chat/completions", json=body, **kwargs)


def error_of(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    validate(response.json(), "ErrorResponse")
    error: dict[str, Any] = response.json()["error"]
    return error


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": TEAM, "messages": [{"role": "user", "content": "hi"}]} | fields


def test_malformed_json_is_a_400(service: RunningService) -> None:
    response = httpx2.post(
        f"{service.base_url}/chat/completions",
        content=b'{"model": "autogen-team", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert "not valid JSON" in error_of(response, 400)["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(messages=[{"role": "wizard", "content": "hi"}]), "messages.0.role"),
        (chat(messages=[]), "messages"),
        (chat(temperature="hot"), "temperature"),
        (chat(stream="yes please"), "stream"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        (chat(n=2), "n"),
        (chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
        (chat(logprobs=True), "logprobs"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            "messages.0.content",
        ),
        (
            chat(
                messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
            ),
            "messages.1.role",
        ),
    ],
)
def test_bad_field_is_a_400_naming_it(service: RunningService, body: Any, param: str) -> None:
    assert error_of(post(service, body), 400)["param"] == param


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogate_in_content_is_a_400_before_any_run(
    service: RunningService, stream: bool
) -> None:
    """Bug: an escaped lone surrogate ran the whole team, then failed to encode the reply
    (a 500, or a stream cut off with no [DONE]). Cause: text was never checked to be UTF-8."""
    raw = (
        b'{"model": "autogen-team", "stream": %s,'
        b' "messages": [{"role": "user", "content": "a\\ud800"}]}'
    )
    response = httpx2.post(
        f"{service.base_url}/chat/completions",
        content=raw % (b"true" if stream else b"false"),
        headers={"content-type": "application/json"},
    )
    assert error_of(response, 400)["param"] == "messages.0.content"


def test_probes_answer_head(service: RunningService) -> None:
    assert httpx2.head(f"{service.url}/healthz").status_code == 200
    assert httpx2.head(f"{service.url}/readyz").status_code == 200


def test_unknown_fields_are_tolerated(service: RunningService) -> None:
    response = post(service, chat(metadata={"x": "y"}, parallel_tool_calls=False, foo=1))
    assert response.status_code == 200


def test_text_parts_are_accepted(service: RunningService) -> None:
    parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "topic-parts?"}]
    response = post(service, chat(messages=[{"role": "user", "content": parts}]))
    assert "topic-parts?" in response.json()["choices"][0]["message"]["content"]


def test_unknown_model_is_a_404_through_the_sdk(service: RunningService) -> None:
    client = openai.OpenAI(base_url=service.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    validate(caught.value.response.json(), "ErrorResponse")


def test_unknown_route_and_wrong_method_are_error_objects(service: RunningService) -> None:
    error_of(httpx2.get(f"{service.base_url}/nothing-here"), 404)
    error_of(httpx2.get(f"{service.base_url}/chat/completions"), 405)


def test_root_redirects_to_docs(service: RunningService) -> None:
    response = httpx2.get(f"{service.url}/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/docs"
    assert httpx2.get(f"{service.url}/docs").status_code == 200


def test_probes_answer(service: RunningService) -> None:
    assert httpx2.get(f"{service.url}/healthz").json() == {"status": "ok"}
    ready = httpx2.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["teams"] == [TEAM]


@pytest.fixture(scope="module")
def guarded() -> Iterator[RunningService]:
    with running_service(API_KEYS=f"other-key, {KEY}") as running:
        yield running


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {KEY}"},
        {"authorization": "Bearer"},
    ],
)
def test_missing_or_wrong_key_is_a_401(guarded: RunningService, headers: dict[str, str]) -> None:
    error = error_of(post(guarded, chat(), headers=headers), 401)
    assert error["type"] == "authentication_error"
    error_of(httpx2.get(f"{guarded.base_url}/models", headers=headers), 401)


def test_right_key_is_accepted_by_the_sdk(guarded: RunningService) -> None:
    client = openai.OpenAI(base_url=guarded.base_url, api_key=KEY, max_retries=0)
    assert [model.id for model in client.models.list()] == [TEAM]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.base_url, api_key="bad", max_retries=0).models.list()


def test_probes_and_preflight_need_no_key(guarded: RunningService) -> None:
    assert httpx2.get(f"{guarded.url}/healthz").status_code == 200
    preflight = httpx2.options(
        f"{guarded.base_url}/chat/completions",
        headers={"origin": "http://localhost:3000", "access-control-request-method": "POST"},
    )
    assert preflight.status_code != 401
