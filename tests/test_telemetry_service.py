"""The running service's telemetry, end to end: a chat request traced, measured and logged."""

from __future__ import annotations

import openai
import pytest

from support.otlp import OtlpReceiver
from support.service import running_service
from support.upstream import HttpError, Reply, ScriptedUpstream

TEAM = "autogen-team"
SECRET_QUESTION = "What is the colour of the hidden-marker-7731 teapot?"


def test_chat_request_is_traced_team_agents_and_model_calls_nested() -> None:
    with (
        OtlpReceiver() as receiver,
        running_service(
            TELEMETRY_ENABLED=True, METRICS_EXPORT_INTERVAL=200, **receiver.settings()
        ) as service,
    ):
        client = openai.OpenAI(base_url=service.base_url, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model=TEAM,
            messages=[{"role": "user", "content": SECRET_QUESTION}],
            stream=True,
            temperature=0.5,
        )
        assert "hidden-marker-7731" in "".join(
            chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
        )
        client.close()
        team = receiver.wait_for_span(f"invoke_team {TEAM}")
        server = receiver.wait_for_span("POST /v1/chat/completions")
        receiver.wait_for_metric(
            "chat.requests", lambda p: p.attributes["chat.outcome"] == "completed"
        )
        usage = receiver.wait_for_metric("gen_ai.client.token.usage")
        first_token = receiver.wait_for_metric("chat.time_to_first_token")
    assert team.trace_id == server.trace_id and team.parent_span_id == server.span_id
    assert team.attributes["autogen.team.turns"] == 2
    assert team.attributes["chat.outcome"] == "completed"
    assert team.attributes["gen_ai.usage.output_tokens"] > 0
    calls = [s for s in receiver.spans if s.name == "chat offline"]
    assert len(calls) == 2
    agents = {s.span_id: s for s in receiver.spans if s.name.startswith("invoke_agent")}
    for call in calls:
        assert call.trace_id == team.trace_id
        assert call.parent_span_id in agents
        assert call.attributes["gen_ai.request.temperature"] == 0.5
        assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert usage.attributes["gen_ai.request.model"] == TEAM
    assert first_token.value >= 1
    assert not [s for s in receiver.spans if s.name.endswith("http send")]
    # Prompt text stays out of exported logs and span attributes unless asked for.
    assert not [r for r in receiver.logs if "hidden-marker-7731" in str(r.body)]
    assert not [s for s in receiver.spans if "hidden-marker-7731" in str(s.attributes)]


def test_upstream_failure_marks_span_and_counts_error() -> None:
    with (
        ScriptedUpstream() as upstream,
        OtlpReceiver() as receiver,
        running_service(
            TELEMETRY_ENABLED=True,
            METRICS_EXPORT_INTERVAL=200,
            LLM_MODEL="scripted",
            LLM_BASE_URL=upstream.base_url,
            LLM_API_KEY="k",
            **receiver.settings(),
        ) as service,
    ):
        upstream.script(Reply.text("draft"), HttpError(500))
        client = openai.OpenAI(base_url=service.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=TEAM, messages=[{"role": "user", "content": "hi"}])
        client.close()
        errors = receiver.wait_for_metric("chat.upstream.errors")
        team = receiver.wait_for_span(f"invoke_team {TEAM}")
        receiver.wait_for_span("chat scripted")
    assert errors.attributes["error.type"] == "upstream_error"
    assert team.attributes["chat.outcome"] == "error"
    failed = [s for s in receiver.spans if s.name == "chat scripted" and s.status_code == 2]
    assert len(failed) == 1
