"""The benchmark's processes: the upstream, the service and the load generator, and /proc.

Each runs as its own process so the service's CPU time and memory can be read alone from
/proc. Only processes started here are ever signalled, by their own pid. Every address is a
127.0.0.1 port that this module chose or that one of its processes printed.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
SERVICE_SCRIPT = Path(PYTHON).parent / "fastapi-autogen-team"
TICKS = os.sysconf("SC_CLK_TCK")
API_KEY = "bench"  # the load generator sends it as a bearer token
READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 20.0

# Nothing from the caller's environment may point the service elsewhere.
_DROPPED_PREFIXES = (
    "OTEL_",
    "LLM_",
    "TEAMS_",
    "API_KEYS",
    "ALLOW_",
    "AGENT_",
    "TELEMETRY_",
    "LOG_",
    "MAX_",
)
_PROXY_NAMES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the whole process (every thread), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"process {pid} has no VmRSS")


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stop(process: subprocess.Popen[bytes], timeout: float = EXIT_TIMEOUT) -> float:
    """SIGTERM, then the seconds until the process exited; SIGKILL if it outlives `timeout`."""
    if process.poll() is not None:
        return 0.0
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return time.perf_counter() - started


class Upstream:
    """bench/upstream.py in its own process; also the OTLP sink."""

    def __init__(self, interval: float, tokens: int) -> None:
        command = [PYTHON, str(BENCH / "upstream.py"), f"--interval={interval}"]
        self.process = subprocess.Popen(
            [*command, f"--tokens={tokens}"], stdout=subprocess.PIPE, cwd=BENCH
        )
        assert self.process.stdout is not None
        ports = json.loads(self.process.stdout.readline() or b"{}")
        if "upstream" not in ports:
            stop(self.process)
            raise RuntimeError("the benchmark upstream did not start")
        self.interval = interval
        self.port: int = ports["upstream"]
        self.sink_port: int = ports["sink"]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        return json.loads(get(self.port, "/bench/stats")[1])

    def timings(self) -> list[list[float]]:
        """(arrival, first token written) of each streamed request since the last call."""
        return json.loads(get(self.port, "/bench/timings")[1])

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def close(self) -> None:
        stop(self.process)


@dataclass
class ServiceOptions:
    telemetry: bool
    collector_port: int | None = None
    """Where OTLP goes when telemetry is on: the sink's port, or one where nothing listens."""
    teams_dir: str = ""
    command: tuple[str, ...] = (str(SERVICE_SCRIPT),)
    extra_env: dict[str, str] = field(default_factory=dict)
    """For a launcher (gc_launcher.py); never a setting that points the service elsewhere."""


def service_environment(upstream: Upstream, port: int, options: ServiceOptions) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_DROPPED_PREFIXES) and name.lower() not in _PROXY_NAMES
    }
    collector = f"http://127.0.0.1:{options.collector_port or free_port()}"
    env |= {
        "DEFAULT_HOST": "127.0.0.1",
        "DEFAULT_PORT": str(port),
        "LLM_MODEL": "bench",
        "LLM_BASE_URL": upstream.base_url,
        "LLM_API_KEY": "x",
        "LOG_FILE": "",
        "API_KEYS": API_KEY,
        "TELEMETRY_ENABLED": "true" if options.telemetry else "false",
        "DEFAULT_OTEL_ENDPOINT": collector,
        "TRACES_ENDPOINT": f"{collector}/v1/traces",
        "METRICS_ENDPOINT": f"{collector}/v1/metrics",
        "LOGS_ENDPOINT": f"{collector}/v1/logs",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if options.teams_dir:
        env["TEAMS_DIR"] = options.teams_dir
    return env | options.extra_env


class Service:
    """The service under test, started as a deployment starts it, in its own process."""

    def __init__(self, upstream: Upstream, options: ServiceOptions, workdir: Path) -> None:
        self.port = free_port()
        self.options = options
        workdir.mkdir(parents=True, exist_ok=True)
        name = f"service-{'on' if options.telemetry else 'off'}-{self.port}.log"
        self.log_path = workdir / name
        env = service_environment(upstream, self.port, options)
        with self.log_path.open("wb") as log:
            # The working directory holds no .env, so only `env` configures the service.
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                list(options.command), env=env, cwd=workdir, stdout=log, stderr=log
            )
        self.ready_after = self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = self.started + READY_TIMEOUT
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if get(self.port, "/readyz", timeout=0.5)[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        self.close()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the service did not become ready; its log ends:\n{tail}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)

    def close(self) -> float:
        """Stops the service; the seconds from SIGTERM to exit."""
        return stop(self.process)


def load(port: int, body: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """Runs bench/loadgen.py to completion; its rows, wall time and own CPU."""
    return finish_load(start_load(port, body, **spec))


def start_load(port: int, body: dict[str, Any], **spec: Any) -> subprocess.Popen[bytes]:
    """Starts bench/loadgen.py; read its output with `finish_load`."""
    argument = json.dumps({"port": port, "body": body, **spec})
    return subprocess.Popen(
        [PYTHON, str(BENCH / "loadgen.py"), argument],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=BENCH,
    )


def finish_load(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{stderr.decode()[-2000:]}")
    return json.loads(stdout)
