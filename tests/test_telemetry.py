"""Telemetry against a real OTLP/HTTP receiver on loopback: what a collector would get."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from fastapi_autogen_team.settings import Settings
from fastapi_autogen_team.telemetry import Telemetry, log_with_trace
from support.otlp import OtlpReceiver, unused_loopback_endpoint

pytestmark = pytest.mark.anyio

OUR_HANDLERS = "fastapi_autogen_team."
TRACE_ID_IN_TEXT = re.compile(r"\[trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})\]")

StartTelemetry = Callable[..., Telemetry]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "service.log"


@pytest.fixture
def settings_for(receiver: OtlpReceiver, log_file: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **receiver.settings(),
            "LOG_FILE": str(log_file),
            "METRICS_EXPORT_INTERVAL": 100,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
async def start(settings_for: Callable[..., Settings]) -> AsyncIterator[StartTelemetry]:
    """Starts telemetry with the receiver's endpoints; whatever a test leaves running is stopped."""
    started: list[Telemetry] = []

    def start_telemetry(**overrides: Any) -> Telemetry:
        telemetry = Telemetry.start(settings_for(**overrides))
        started.append(telemetry)
        return telemetry

    yield start_telemetry
    for telemetry in reversed(started):
        await telemetry.shutdown()


async def read_lines(path: Path) -> list[str]:
    return (await anyio.Path(path).read_text()).splitlines()


def our_handlers() -> list[str]:
    names = (handler.get_name() or "" for handler in logging.getLogger().handlers)
    return sorted(name for name in names if name.startswith(OUR_HANDLERS))


async def test_log_with_trace_exports_a_span_and_a_log_record_carrying_its_ids(
    start: StartTelemetry, receiver: OtlpReceiver, log_file: Path
) -> None:
    telemetry = start()

    log_with_trace("cache warmed", level="warning")
    await telemetry.shutdown()

    span = receiver.wait_for_span("log_with_trace")
    record = receiver.wait_for_log(lambda r: r.body == "cache warmed")
    assert record.severity_text == "WARN"
    assert (record.trace_id, record.span_id) == (span.trace_id, span.span_id)
    ids = [TRACE_ID_IN_TEXT.search(line) for line in await read_lines(log_file) if "warmed" in line]
    assert [match.groups() for match in ids if match] == [(span.trace_id, span.span_id)]


async def test_log_with_trace_inside_a_span_becomes_its_child(
    start: StartTelemetry, receiver: OtlpReceiver
) -> None:
    telemetry = start()

    with telemetry.tracer.start_as_current_span("handle request"):
        log_with_trace("inside the request")
    await telemetry.shutdown()

    parent = receiver.wait_for_span("handle request")
    child = receiver.wait_for_span("log_with_trace")
    assert child.trace_id == parent.trace_id
    assert child.parent_span_id == parent.span_id


async def test_log_with_trace_unsupported_level_logs_an_error_naming_it_with_the_message(
    start: StartTelemetry, receiver: OtlpReceiver
) -> None:
    telemetry = start()

    log_with_trace("disk almost full", level="loud")
    await telemetry.shutdown()

    record = receiver.wait_for_log(lambda r: "disk almost full" in str(r.body))
    assert record.severity_text == "ERROR"
    assert "'loud'" in record.body
    assert record.trace_id == receiver.wait_for_span("log_with_trace").trace_id


async def test_start_exports_resource_with_service_name_version_and_instance_id(
    start: StartTelemetry, receiver: OtlpReceiver
) -> None:
    telemetry = start(APP_NAME="team-under-test")

    log_with_trace("hello")
    telemetry.metrics.count_request("offline", stream=True, outcome="completed")
    await telemetry.shutdown()

    resources = [
        receiver.wait_for_span("log_with_trace").resource,
        receiver.wait_for_log(lambda r: r.body == "hello").resource,
        receiver.wait_for_metric("chat.requests").resource,
    ]
    for resource in resources:
        assert resource["service.name"] == "team-under-test"
        assert resource["service.version"]
        assert resource["service.instance.id"] == resources[0]["service.instance.id"]


async def test_heartbeat_counter_reaches_the_receiver_with_the_instance_id(
    start: StartTelemetry, receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = start(HEARTBEAT_INTERVAL=0.2, LOG_LEVEL="DEBUG")

    telemetry.start_heartbeat()
    point = await anyio.to_thread.run_sync(
        lambda: receiver.wait_for_metric("heartbeat_counter", lambda p: p.value >= 2)
    )
    await telemetry.shutdown()

    assert point.attributes["service.instance.id"] == point.resource["service.instance.id"]
    assert receiver.wait_for_log(lambda r: r.body == "Heartbeat recorded").severity_text == "DEBUG"
    assert [r for r in caplog.records if r.name.startswith("apscheduler") and r.exc_info] == []


async def test_shutdown_without_a_collector_finishes_within_a_few_seconds(
    start: StartTelemetry,
) -> None:
    telemetry = start(DEFAULT_OTEL_ENDPOINT=unused_loopback_endpoint(), **_no_signal_endpoints())
    log_with_trace("nobody is listening")
    telemetry.metrics.count_upstream_error("connection")

    began = time.monotonic()
    await telemetry.shutdown()

    assert time.monotonic() - began < 4


async def test_export_failures_without_a_collector_are_logged_once_per_message(
    start: StartTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = start(
        DEFAULT_OTEL_ENDPOINT=unused_loopback_endpoint(),
        OTEL_EXPORT_TIMEOUT=0.2,
        **_no_signal_endpoints(),
    )
    telemetry.metrics.stream_opened("offline")

    await anyio.sleep(1.0)  # about ten metric exports at 100 ms, all refused
    await telemetry.shutdown()

    exporters = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    failures = [(r.name, r.msg) for r in exporters]
    assert failures
    assert len(failures) == len(set(failures))


async def test_repeated_start_and_shutdown_delivers_each_record_once_per_destination(
    start: StartTelemetry, receiver: OtlpReceiver, log_file: Path
) -> None:
    for cycle in range(3):
        telemetry = start()
        assert our_handlers() == [f"{OUR_HANDLERS}{name}" for name in ("console", "file", "otlp")]
        logging.getLogger("tests.telemetry").warning("cycle %d", cycle)
        await telemetry.shutdown()
        assert our_handlers() == []

    lines = await read_lines(log_file)
    exported = [r.body for r in receiver.logs if str(r.body).startswith("cycle")]
    for cycle in range(3):
        assert sum(line.endswith(f"cycle {cycle}") for line in lines) == 1
    assert sorted(exported) == ["cycle 0", "cycle 1", "cycle 2"]


async def test_start_again_without_shutdown_replaces_the_handlers_instead_of_adding(
    start: StartTelemetry, log_file: Path
) -> None:
    start()
    start()

    logging.getLogger("tests.telemetry").warning("once")

    assert len(our_handlers()) == 3
    assert len([line for line in await read_lines(log_file) if line.endswith(" once")]) == 1


async def test_disabled_telemetry_exports_nothing_but_still_logs_with_trace_ids(
    start: StartTelemetry, receiver: OtlpReceiver, log_file: Path
) -> None:
    telemetry = start(TELEMETRY_ENABLED=False)

    log_with_trace("quiet start")
    telemetry.metrics.record_token_usage("offline", input_tokens=3, output_tokens=5)
    await telemetry.shutdown()

    assert receiver.requests == []
    lines = [line for line in await read_lines(log_file) if "quiet start" in line]
    assert len(lines) == 1
    assert TRACE_ID_IN_TEXT.search(lines[0])


async def test_empty_log_file_setting_writes_no_file(start: StartTelemetry) -> None:
    start(LOG_FILE="")

    assert our_handlers() == [f"{OUR_HANDLERS}{name}" for name in ("console", "otlp")]


async def test_chatty_library_loggers_stay_at_warning_unless_log_level_is_debug(
    start: StartTelemetry,
) -> None:
    chatty = ["autogen_core", "autogen_core.events", "autogen_agentchat", "httpx2"]

    telemetry = start(LOG_LEVEL="INFO")
    assert [logging.getLogger(name).level for name in chatty] == [logging.WARNING] * 4
    await telemetry.shutdown()
    assert [logging.getLogger(name).level for name in chatty] == [logging.NOTSET] * 4

    start(LOG_LEVEL="DEBUG")
    assert [logging.getLogger(name).getEffectiveLevel() for name in chatty] == [logging.DEBUG] * 4


@pytest.mark.parametrize(("runtime_tracing", "switch"), [(False, "true"), (True, "false")])
async def test_autogen_runtime_tracing_follows_the_setting_and_is_restored_on_shutdown(
    start: StartTelemetry,
    monkeypatch: pytest.MonkeyPatch,
    runtime_tracing: bool,
    switch: str,
) -> None:
    monkeypatch.delenv("AUTOGEN_DISABLE_RUNTIME_TRACING", raising=False)

    telemetry = start(AUTOGEN_RUNTIME_TRACING=runtime_tracing)
    assert os.environ["AUTOGEN_DISABLE_RUNTIME_TRACING"] == switch
    await telemetry.shutdown()

    assert "AUTOGEN_DISABLE_RUNTIME_TRACING" not in os.environ


@pytest.mark.parametrize("runtime_tracing", [False, True])
async def test_autogen_spans_join_the_trace_and_runtime_spans_follow_the_setting(
    start: StartTelemetry, receiver: OtlpReceiver, runtime_tracing: bool
) -> None:
    telemetry = start(AUTOGEN_RUNTIME_TRACING=runtime_tracing)

    with telemetry.tracer.start_as_current_span("request"):
        client = ReplayChatCompletionClient(["hello back"])
        agent = AssistantAgent("helper", model_client=client, system_message="Be brief.")
        team = RoundRobinGroupChat([agent], max_turns=1)
        await team.run(task="hi", output_task_messages=False)
    await telemetry.shutdown()

    request = receiver.wait_for_span("request")
    assert receiver.wait_for_span("invoke_agent helper").trace_id == request.trace_id
    runtime_spans = [span for span in receiver.spans if span.name.startswith("autogen ")]
    assert bool(runtime_spans) is runtime_tracing


async def test_instruments_export_token_usage_with_genai_attributes(
    start: StartTelemetry, receiver: OtlpReceiver
) -> None:
    telemetry = start()

    telemetry.metrics.record_token_usage("gpt-test", input_tokens=12, output_tokens=30)
    await telemetry.shutdown()

    usage = [p for p in receiver.metrics if p.name == "gen_ai.client.token.usage"]
    sums = {p.attributes["gen_ai.token.type"]: p.histogram_sum for p in usage}
    assert sums == {"input": 12, "output": 30}
    assert {p.unit for p in usage} == {"{token}"}
    assert {p.attributes["gen_ai.request.model"] for p in usage} == {"gpt-test"}


def test_instrumented_app_traces_requests_but_not_health_routes_or_stream_chunks(
    settings_for: Callable[..., Settings], receiver: OtlpReceiver
) -> None:
    app = _streaming_app(settings_for())

    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/stream").text == "0123456789"

    names = [span.name for span in receiver.spans]
    server = receiver.wait_for_span("GET /stream")
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["http.response.status_code"] == 200
    assert not [name for name in names if "healthz" in name or "http send" in name]


def _streaming_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry = Telemetry.start(settings)
        telemetry.instrument_app(app)
        yield
        await telemetry.shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for digit in range(10):
                yield str(digit)

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def _no_signal_endpoints() -> dict[str, str]:
    # Empty endpoints fall back to DEFAULT_OTEL_ENDPOINT + /v1/<signal>.
    return {"TRACES_ENDPOINT": "", "METRICS_ENDPOINT": "", "LOGS_ENDPOINT": ""}
