"""Profile the service under a steady streaming load with py-spy, and summarise where time goes.

    uv run --with py-spy python bench/profile.py --tokens 100 --streams 20 --seconds 15

Starts the same upstream and service as run.py, holds `--streams` streams of `--tokens`
tokens per model call, records the service process with py-spy (`--native` off, idle frames
off), writes the folded stacks to bench/results/, and prints the functions with the most
samples: by own time, and inclusive by module, which is what tells a per-chunk cost from a
per-request one when compared across `--tokens`.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from processes import BENCH, Service, Upstream, finish_load
from scenarios import Bench, Config

TOP = 25


def record(pid: int, seconds: float, output: Path, rate: int) -> None:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        sys.exit("py-spy is not installed: run this with `uv run --with py-spy ...`.")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    command += ["--rate", str(rate), "--format", "raw", "--output", str(output), "--nonblocking"]
    subprocess.run(command, check=True, capture_output=True)


# Innermost frame from one of these packages names the layer a sample is spent in.
LAYERS = (
    ("fastapi_autogen_team/", "service code"),
    ("autogen_core/", "AutoGen runtime"),
    ("autogen_agentchat/", "AutoGen agents and team"),
    ("autogen_ext/", "AutoGen OpenAI client"),
    ("openai/", "openai SDK"),
    ("httpx2/", "httpx2/httpcore2"),
    ("httpcore2/", "httpx2/httpcore2"),
    ("pydantic", "pydantic"),
    ("opentelemetry", "OpenTelemetry"),
    ("sse_starlette/", "sse-starlette"),
    ("starlette/", "Starlette/FastAPI"),
    ("fastapi/", "Starlette/FastAPI"),
    ("anyio/", "anyio"),
    ("uvicorn/", "uvicorn"),
    ("logging/", "logging"),
)
# Frames where a thread waits rather than works; py-spy cannot always tell on a VM.
WAITING = ("Condition.wait", "Queue.get (queue.py)", "select (", "_worker (concurrent")
# Functions whose inclusive share tells a per-request cost from a per-chunk one.
FOCUS = (
    "route_query",
    "start_run",
    "build_team",
    "AssistantAgent.__init__",
    "BaseGroupChat.__init__",
    "BaseGroupChat.run_stream",
    "TeamRun._produce",
    "TeamRun.deltas",
    "sse_events",
    "EventSourceResponse._send_with_timeout",
    "SingleThreadedAgentRuntime._process_publish",
    "SingleThreadedAgentRuntime._try_serialize",
    "TraceHelper.trace_block",
    "AsyncCompletions.create",
    "_async_transform_recursive",
    "AsyncStream.__stream__",
    "construct_type",
    "Logger.info",
    "Logger._log",
    "run_in_threadpool",
)


def summarise(folded: Path, prefix: str = "") -> str:
    own: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    focus: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue  # a frame name with a line break in it splits its stack; rare enough
        frames = stack.split(";")
        if any(mark in frames[-1] for mark in WAITING):
            continue
        samples = int(count)
        total += samples
        own[_short(frames[-1])] += samples
        layers[_layer(frames)] += samples
        for name in {f.partition(" (")[0] for f in frames} & set(FOCUS):
            focus[name] += samples
    lines = [f"{prefix}{total} busy samples", "", "by layer (innermost library frame):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in layers.most_common()]
    lines += ["", "inclusive, selected functions:"]
    lines += [f"  {focus[name] / total:6.1%}  {name}" for name in FOCUS]
    lines += ["", "own time:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(TOP)]
    return "\n".join(lines)


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for marker, layer in LAYERS:
            if marker in frame:
                return layer
        if frame.startswith("Runner.run (asyncio/runners.py"):
            return "event loop (uvloop, native)"
    return "other (stdlib, threads)"


def _short(frame: str) -> str:
    # py-spy frames read "function (path/to/module.py:line)"; keep the function and module.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    marker = "site-packages/"
    module = path.split(marker, 1)[1] if marker in path else path.rsplit("/src/", 1)[-1]
    return f"{name} ({module})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=100, help="tokens per model call")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--token-rate", type=float, default=20.0)
    parser.add_argument("--telemetry", choices=("on", "off"), default="on")
    args = parser.parse_args()

    config = Config(interval=1 / args.token_rate)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = BENCH / "results" / f"profile-{stamp}"
    upstream = Upstream(config.interval, args.tokens)
    try:
        bench = Bench(config, upstream, workdir)
        telemetry = args.telemetry == "on"
        service = Service(upstream, bench.options(telemetry), workdir)
        try:
            load, ramp = bench.hold(service, args.streams, args.tokens, args.seconds + 2)
            time.sleep(ramp + 1)
            before = service.cpu()
            output = workdir / f"py-spy-{args.tokens}tokens.folded"
            record(service.pid, args.seconds, output, args.rate)
            busy = (service.cpu() - before) / args.seconds
            result = finish_load(load)
        finally:
            service.close()
    finally:
        upstream.close()
    errors = sum(1 for row in result["rows"] if row[4])
    print(summarise(output, f"service CPU {busy:.0%} of one core, {errors} errors, "))
    print(f"\nFolded stacks: {output}")


if __name__ == "__main__":
    main()
