"""A real uvicorn serving the app on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from fastapi_autogen_team.app import create_app
from fastapi_autogen_team.settings import Settings

# What every test app gets unless the test says otherwise: no files, no OTLP export, and
# no retries of failed model calls, so a scripted fault is seen exactly once.
QUIET = {
    "LOG_FILE": "",
    "TELEMETRY_ENABLED": False,
    "OFFLINE_TOKEN_DELAY": 0.001,
    "LLM_MAX_RETRIES": 0,
}


def quiet_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **(QUIET | overrides))  # type: ignore[call-arg]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningService:
    def __init__(self, server: uvicorn.Server, port: int, settings: Settings) -> None:
        self.server = server
        self.port = port
        self.settings = settings
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/v1"


def behind(upstream_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a service whose agents call the scripted upstream at `upstream_url`."""
    return {"LLM_MODEL": "scripted", "LLM_BASE_URL": upstream_url, "LLM_API_KEY": "x"} | overrides


@contextmanager
def running_service(**overrides: Any) -> Iterator[RunningService]:
    """Serves `create_app(quiet_settings(**overrides))` until the block ends."""
    settings = quiet_settings(**overrides)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.01)
    try:
        yield RunningService(server, port, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
