"""Limits, CORS, the open-bind guard and graceful shutdown of a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2

from support.schema import validate
from support.service import free_port, running_service

TEAM = "autogen-team"
QUESTION = [{"role": "user", "content": "Tell me something."}]
CHAT = {"model": TEAM, "messages": QUESTION}


def error_of(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    validate(response.json(), "ErrorResponse")
    error: dict[str, Any] = response.json()["error"]
    return error


def stream_events(url: str, body: dict[str, Any], events: list[str]) -> None:
    with httpx2.stream("POST", url, json=body | {"stream": True}, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))


def test_run_beyond_max_concurrent_runs_gets_429() -> None:
    with running_service(MAX_CONCURRENT_RUNS=1, OFFLINE_TOKEN_DELAY=0.1) as service:
        url = f"{service.base_url}/chat/completions"
        with httpx2.stream("POST", url, json=CHAT | {"stream": True}) as first:
            lines = first.iter_lines()  # kept: a dropped iterator would close the stream
            next(lines)
            refused = httpx2.post(url, json=CHAT)
            error = error_of(refused, 429)
            assert refused.headers["retry-after"] == "1"
            assert "maximum of 1" in error["message"]
        assert httpx2.post(url, json=CHAT | {"max_tokens": 2}, timeout=10).status_code == 200


def test_run_timeout_ends_stream_with_error_and_done() -> None:
    with running_service(RUN_TIMEOUT=0.5, OFFLINE_TOKEN_DELAY=0.05) as service:
        url = f"{service.base_url}/chat/completions"
        events: list[str] = []
        started = time.monotonic()
        stream_events(url, CHAT, events)
        assert time.monotonic() - started < 5
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "run_timeout"
        assert error_of(httpx2.post(url, json=CHAT), 504)["code"] == "run_timeout"


def test_oversized_bodies_get_413_declared_or_chunked() -> None:
    with running_service(MAX_REQUEST_BYTES=2048) as service:
        url = f"{service.base_url}/chat/completions"
        big = CHAT | {"messages": [{"role": "user", "content": "x" * 5000}]}
        error_of(httpx2.post(url, json=big), 413)

        def chunks() -> Iterator[bytes]:
            payload = json.dumps(big).encode()
            for start in range(0, len(payload), 512):
                yield payload[start : start + 512]

        error_of(
            httpx2.post(url, content=chunks(), headers={"content-type": "application/json"}), 413
        )


def test_too_many_or_too_long_messages_get_400() -> None:
    with running_service(MAX_MESSAGES=3, MAX_MESSAGE_CHARS=100) as service:
        url = f"{service.base_url}/chat/completions"
        many = CHAT | {"messages": [{"role": "user", "content": "hi"}] * 4}
        assert error_of(httpx2.post(url, json=many), 400)["param"] == "messages"
        long = CHAT | {"messages": [{"role": "user", "content": "y" * 101}]}
        assert error_of(httpx2.post(url, json=long), 400)["param"] == "messages.0.content"


def test_cors_preflight_needs_no_key_and_is_off_by_default() -> None:
    preflight = {
        "origin": "http://ui.localhost",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    with running_service(API_KEYS="k1", ALLOWED_ORIGINS="http://ui.localhost") as service:
        url = f"{service.base_url}/chat/completions"
        answer = httpx2.options(url, headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "http://ui.localhost"
        models = httpx2.get(
            f"{service.base_url}/models",
            headers={"origin": "http://ui.localhost", "authorization": "Bearer k1"},
        )
        assert models.headers["access-control-allow-origin"] == "http://ui.localhost"
    with running_service() as service:
        answer = httpx2.options(f"{service.base_url}/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers


def _server_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "API_KEYS"))}
    return env | {"LOG_FILE": "", "TELEMETRY_ENABLED": "false", "TEAMS_DIR": ""} | overrides


def _serve(**overrides: str) -> subprocess.Popen[str]:
    code = "from fastapi_autogen_team.main import run; run()"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=_server_env(**overrides),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_public_bind_without_keys_refuses_to_start() -> None:
    process = _serve(DEFAULT_HOST="0.0.0.0", DEFAULT_PORT=str(free_port()))
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "API_KEYS" in output and "ALLOW_OPEN_ACCESS" in output


def test_invalid_setting_stops_start_up_naming_the_variable() -> None:
    process = _serve(DEFAULT_PORT="not-a-port")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "DEFAULT_PORT" in output and "Traceback" not in output


def test_sigterm_ends_streams_cleanly_and_exits_in_time() -> None:
    port = free_port()
    process = _serve(
        DEFAULT_PORT=str(port),
        OFFLINE_TOKEN_DELAY="0.05",
        SHUTDOWN_GRACE="1",
        SHUTDOWN_TIMEOUT="4",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        streams: list[list[str]] = [[] for _ in range(3)]
        threads = [
            threading.Thread(
                target=stream_events, args=(f"{base}/v1/chat/completions", CHAT, events)
            )
            for events in streams
        ]
        for thread in threads:
            thread.start()
        while not all(len(events) > 3 for events in streams):
            time.sleep(0.02)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        exited_after = time.monotonic() - signalled
        for thread in threads:
            thread.join(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate()
    # uvicorn re-raises the signal it handled once shut down, so -SIGTERM is a clean exit.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert exited_after < 4 + 1
    for events in streams:
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])
        validate(error, "ErrorResponse")
        assert error["error"]["code"] == "service_unavailable"
