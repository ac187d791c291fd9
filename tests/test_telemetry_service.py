"""The running service's telemetry, end to end: a chat request traced, measured and logged."""

from __future__ import annotations

import json

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


def test_upstream_failure_is_marked_counted_and_logged_in_the_request_trace() -> None:
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
        record = receiver.wait_for_log(lambda r: str(r.body).startswith("model call failed"))
    assert errors.attributes["error.type"] == "upstream_error"
    assert team.attributes["chat.outcome"] == "error"
    failed = [s for s in receiver.spans if s.name == "chat scripted" and s.status_code == 2]
    assert len(failed) == 1
    # The warning is logged inside the failed call's span, in the request's trace.
    assert record.severity_text == "WARN"
    assert record.trace_id == team.trace_id
    assert [call.span_id for call in failed] == [record.span_id]


PROMPT_MARKER = "prompt-marker-5102"
REPLY_MARKER = "reply-marker-9046"


def _export_a_chat_with_markers(**settings: object) -> OtlpReceiver:
    """Serves one chat whose prompt and reply hold the markers; returns what was exported."""
    with (
        ScriptedUpstream() as upstream,
        OtlpReceiver() as receiver,
        running_service(
            TELEMETRY_ENABLED=True,
            LLM_MODEL="scripted",
            LLM_BASE_URL=upstream.base_url,
            LLM_API_KEY="k",
            **receiver.settings(),
            **settings,
        ) as service,
    ):
        upstream.script(Reply.text(f"draft {REPLY_MARKER}"), Reply.text(f"answer {REPLY_MARKER}"))
        client = openai.OpenAI(base_url=service.base_url, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model=TEAM,
            messages=[{"role": "user", "content": f"Tell me about {PROMPT_MARKER}."}],
            stream=True,
        )
        assert REPLY_MARKER in "".join(
            chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
        )
        client.close()
        receiver.wait_for_span(f"invoke_team {TEAM}")
    return receiver


def test_content_capture_off_exports_no_prompt_or_reply_text_even_at_debug() -> None:
    receiver = _export_a_chat_with_markers(LOG_LEVEL="DEBUG")

    assert [s for s in receiver.spans if s.name == "chat scripted"]
    assert receiver.logs
    for marker in (PROMPT_MARKER, REPLY_MARKER):
        assert [s.name for s in receiver.spans if marker in str(s.attributes)] == []
        leaked = [r for r in receiver.logs if marker in f"{r.body} {r.attributes}"]
        assert [(r.scope, str(r.body)[:80]) for r in leaked] == []


def test_content_capture_on_records_prompt_and_reply_on_the_model_call_spans() -> None:
    receiver = _export_a_chat_with_markers(CAPTURE_CONTENT=True)

    drafter, reviewer = [s for s in receiver.spans if s.name == "chat scripted"]
    prompt = json.loads(drafter.attributes["gen_ai.input.messages"])
    reply = json.loads(drafter.attributes["gen_ai.output.messages"])
    assert prompt[0]["role"] == "system"
    assert prompt[-1]["role"] == "user"
    assert prompt[-1]["parts"] == [{"type": "text", "content": f"Tell me about {PROMPT_MARKER}."}]
    assert reply == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": f"draft {REPLY_MARKER}"}],
            "finish_reason": "stop",
        }
    ]
    assert f"draft {REPLY_MARKER}" in reviewer.attributes["gen_ai.input.messages"]
    assert f"answer {REPLY_MARKER}" in reviewer.attributes["gen_ai.output.messages"]
