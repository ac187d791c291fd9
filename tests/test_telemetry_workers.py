"""Telemetry of the service as it is deployed: real server processes, a real OTLP receiver.

Each test starts its server in a process group of its own and stops that group by its id,
SIGTERM first, SIGKILL only if it has not exited within STOP_TIMEOUT seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from support.otlp import MetricPoint, OtlpReceiver
from support.service import free_port

HEARTBEAT_INTERVAL = 0.3  # seconds
BEATS = 8  # beats per worker the rate is measured over
STOP_TIMEOUT = 10.0
CLEAN_EXITS = (0, -signal.SIGTERM)  # uvicorn re-raises the SIGTERM it handled


def server_env(receiver: OtlpReceiver, **overrides: str) -> dict[str, str]:
    """This environment minus anything that could configure the service, plus `overrides`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLM_", "API_KEYS", "OTEL_", "AUTOGEN_"))
    }
    settings = {"TELEMETRY_ENABLED": "true", "TEAMS_DIR": "", **receiver.settings()}
    return inherited | settings | overrides


@contextmanager
def server_process(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[Path]:
    """Runs `command` in `cwd` until the block ends; yields the file its output goes to."""
    console = cwd / "console.txt"
    with console.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield console
        finally:
            stop_group(process)
    assert process.returncode in CLEAN_EXITS, console.read_text()


def stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_ready(base_url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx2.get(f"{base_url}/readyz").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, f"the server at {base_url} did not become ready"
        time.sleep(0.05)


def instance(point: MetricPoint) -> str:
    return str(point.resource["service.instance.id"])


def beat_counts(receiver: OtlpReceiver) -> dict[str, float]:
    """Each instance's heartbeat count so far (the counter is cumulative)."""
    counts: dict[str, float] = {}
    for point in receiver.metrics:
        if point.name == "heartbeat_counter":
            counts[instance(point)] = max(point.value, counts.get(instance(point), 0))
    return counts


def beats_of(worker: str, at_least: float) -> Callable[[MetricPoint], bool]:
    return lambda point: instance(point) == worker and point.value >= at_least


def test_each_uvicorn_worker_beats_once_per_interval_under_its_own_instance_id(
    tmp_path: Path,
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "fastapi_autogen_team.main:app", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with OtlpReceiver() as receiver:
        env = server_env(
            receiver,
            APP_NAME="workers-under-test",
            HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
            METRICS_EXPORT_INTERVAL="300",
            LOG_FILE="",
        )
        with server_process(command, env, tmp_path):
            first = receiver.wait_for_metric("heartbeat_counter", timeout=15)
            receiver.wait_for_metric("heartbeat_counter", lambda p: instance(p) != instance(first))
            window_start, before = time.monotonic(), beat_counts(receiver)
            for worker, count in before.items():
                receiver.wait_for_metric("heartbeat_counter", beats_of(worker, count + BEATS), 10)
            window = time.monotonic() - window_start
            after = beat_counts(receiver)

    assert len(before) == 2 and set(after) == set(before)
    for worker in before:
        # Exported counts lag the beats by up to an export interval, hence the allowance; a
        # worker beating twice per interval would still exceed it.
        assert after[worker] - before[worker] <= window / HEARTBEAT_INTERVAL + 3
    for point in [p for p in receiver.metrics if p.name == "heartbeat_counter"]:
        assert point.attributes["service.instance.id"] == instance(point)
        assert point.resource["service.name"] == "workers-under-test"


def test_console_script_sends_uvicorn_lines_to_each_log_destination_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    log_file = tmp_path / "service.log"
    command = [sys.executable, "-c", "from fastapi_autogen_team.main import run; run()"]
    with OtlpReceiver() as receiver:
        env = server_env(receiver, DEFAULT_PORT=str(port), LOG_FILE=str(log_file))
        with server_process(command, env, tmp_path) as console:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(base_url)
            assert httpx2.get(f"{base_url}/v1/models").status_code == 200
        request = receiver.wait_for_span("GET /v1/models")
        access = receiver.wait_for_log(lambda r: "GET /v1/models" in str(r.body))

    # From before the lifespan starts to after it ends, and the access log in between.
    uvicorn_lines = [
        "uvicorn.error [trace_id=- span_id=-] Started server process",
        "uvicorn.error [trace_id=- span_id=-] Waiting for application startup.",
        f"uvicorn.error [trace_id=- span_id=-] Uvicorn running on http://127.0.0.1:{port}",
        f"[trace_id={request.trace_id} span_id={request.span_id}] 127.0.0.1:",
        "uvicorn.error [trace_id=- span_id=-] Application shutdown complete.",
        "uvicorn.error [trace_id=- span_id=-] Finished server process",
    ]
    for lines in (log_file.read_text().splitlines(), console.read_text().splitlines()):
        for expected in uvicorn_lines:
            assert len([line for line in lines if expected in line]) == 1, expected
        assert len([line for line in lines if '"GET /v1/models HTTP/1.1" 200' in line]) == 1
    assert access.scope == "uvicorn.access"
    assert (access.trace_id, access.span_id) == (request.trace_id, request.span_id)
    assert len([r for r in receiver.logs if "GET /v1/models" in str(r.body)]) == 1


def test_plain_uvicorn_sends_its_own_lines_to_each_log_destination_once(
    tmp_path: Path,
) -> None:
    """`uvicorn ...:app` keeps its loggers to itself; the lifespan bridges them to the file
    and to OTLP, while the console keeps uvicorn's own handler only."""
    port = free_port()
    log_file = tmp_path / "service.log"
    command = [sys.executable, "-m", "uvicorn", "fastapi_autogen_team.main:app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with OtlpReceiver() as receiver:
        env = server_env(receiver, LOG_FILE=str(log_file))
        with server_process(command, env, tmp_path) as console:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(base_url)
            assert httpx2.get(f"{base_url}/v1/models").status_code == 200
        request = receiver.wait_for_span("GET /v1/models")
        access = receiver.wait_for_log(lambda r: "GET /v1/models" in str(r.body))
        receiver.wait_for_log(lambda r: "Application startup complete" in str(r.body))

    access_line = '"GET /v1/models HTTP/1.1" 200'
    file_lines = log_file.read_text().splitlines()
    assert len([line for line in file_lines if access_line in line]) == 1
    assert len([line for line in file_lines if "Application startup complete." in line]) == 1
    assert len([line for line in console.read_text().splitlines() if access_line in line]) == 1
    assert access.scope == "uvicorn.access"
    assert (access.trace_id, access.span_id) == (request.trace_id, request.span_id)
    assert len([r for r in receiver.logs if "GET /v1/models" in str(r.body)]) == 1
