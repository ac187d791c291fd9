"""The six measurements (P1-P6), each against the same upstream it also calls directly.

Every figure that compares is taken side by side in the same run: the load generator calls
the upstream directly and then through the service, with the same request body and the same
concurrency, and the difference is what the service adds. Rows from the load generator are
`[start, ttft, total, chunks, error]` in seconds.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import BENCH, Service, ServiceOptions, Upstream, finish_load, load, start_load
from stats import fit_line, percentile, spread, summary

QUESTION = "Why is the sky blue?"
MAX_ADDED_TTFT = 0.050  # seconds: P4's bound on p99 added time to first token
LEVEL_TIMEOUT = 30.0  # seconds a request may take before P4 counts it as an error

Rows = list[list[Any]]


@dataclass
class Config:
    quick: bool = False
    interval: float = 0.05
    """Seconds between tokens (and before the first): the upstream's token rate."""
    team: str = "autogen-team"
    calls: int = 2
    """Model calls one request of `team` makes (the built-in team: drafter, reviewer)."""
    one_agent_team: str = "bench-one-agent"
    teams_dir: str = str(BENCH / "teams")
    p1_rounds: int = 5
    p1_requests: int = 20
    p2_streams: int = 100
    p2_tokens: int = 40
    p2_window: float = 8.0
    p2_rounds: int = 2
    p3_concurrency: int = 20
    p3_lengths: tuple[int, ...] = (1, 20, 100)
    p3_requests: tuple[int, ...] = (100, 60, 20)
    p3_rounds: int = 2
    p4_levels: tuple[int, ...] = (
        10,
        15,
        20,
        30,
        40,
        50,
        70,
        100,
        150,
        200,
        300,
        500,
        700,
        1000,
        1400,
        2000,
    )
    p4_tokens: int = 20
    p4_samples: int = 150
    """Requests a level should measure, so its p99 is not one request's bad luck."""
    p4_window: float = 20.0
    """At most this many seconds held per level; the direct baseline holds `p4_direct`."""
    p4_direct: float = 4.0
    p5_streams: int = 1000
    p5_interval: float = 0.5
    p5_tokens: int = 12
    p6_repeats: int = 3

    @classmethod
    def quick_run(cls, **overrides: Any) -> Config:
        return cls(
            quick=True,
            p1_rounds=2,
            p1_requests=10,
            p2_window=4.0,
            p2_rounds=1,
            p3_requests=(60, 40, 20),
            p3_rounds=1,
            p4_levels=(10, 20, 40, 70, 100, 200, 500, 1000),
            p4_samples=60,
            p4_window=8.0,
            p4_direct=2.0,
            p5_streams=300,
            p6_repeats=1,
            **overrides,
        )


@dataclass
class Bench:
    config: Config
    upstream: Upstream
    workdir: Path
    log: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.log.append(message)
        print(message, flush=True)

    def body(self, tokens: int, *, direct: bool = False, team: str = "") -> dict[str, Any]:
        return {
            "model": "bench" if direct else team or self.config.team,
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": tokens,
        }

    def options(self, telemetry: bool) -> ServiceOptions:
        sink = self.upstream.sink_port if telemetry else None
        return ServiceOptions(telemetry, sink, self.config.teams_dir)

    def stream_seconds(self, tokens: int, *, direct: bool = False) -> float:
        """How long one stream lasts at the set token rate."""
        calls = 1 if direct else self.config.calls
        return calls * tokens * self.config.interval

    def hold(
        self, service: Service, streams: int, tokens: int, seconds: float
    ) -> tuple[subprocess.Popen[bytes], float]:
        """Starts holding `streams` streams for `seconds` after a ramp of one stream's length;
        the load generator (read it with `finish_load`) and the ramp's seconds."""
        ramp = self.stream_seconds(tokens)
        process = start_load(
            service.port,
            self.body(tokens),
            concurrency=streams,
            requests=1_000_000,
            ramp=ramp,
            duration=ramp + seconds,
        )
        return process, ramp


def ttfts(rows: Rows, after: float = 0.0) -> list[float]:
    return [row[1] for row in rows if not row[4] and row[1] >= 0 and row[0] >= after]


def errors(rows: Rows) -> list[str]:
    return [row[4] for row in rows if row[4]]


def compare(direct: Rows, service: Rows, after: tuple[float, float] = (0.0, 0.0)) -> dict:
    """TTFT summaries of both paths and what the service adds at p50 and p99."""
    d, s = summary(ttfts(direct, after[0])), summary(ttfts(service, after[1]))
    return {
        "direct": d,
        "service": s,
        "added_p50": s["p50"] - d["p50"],
        "added_p99": s["p99"] - d["p99"],
        "errors": errors(direct) + errors(service),
    }


def warm_up(bench: Bench, service: Service) -> None:
    """The first requests import and build what later ones reuse; none of them is measured."""
    for team in (bench.config.team, bench.config.one_agent_team):
        load(service.port, bench.body(4, team=team), concurrency=4, requests=3)


def p1(bench: Bench, service: Service) -> dict:
    """Added TTFT of one stream at a time: rounds of direct, one-agent team, built-in team.

    Each TTFT is also split in two with the upstream's own clock: from writing the request to
    the upstream receiving its call, and from the upstream writing its first token to the
    client reading it. The rest of a TTFT is the upstream's own time to first token.
    """
    config, upstream = bench.config, bench.upstream
    teams = {"direct": ("bench", 1), "one_agent": (config.one_agent_team, 1)}
    teams["builtin"] = (config.team, config.calls)
    rows: dict[str, Rows] = {name: [] for name in teams}
    splits: dict[str, list[tuple[float, float]]] = {name: [] for name in teams}
    rounds: dict[str, list[dict]] = {name: [] for name in teams if name != "direct"}
    for _ in range(config.p1_rounds):
        outputs = {}
        for name, (team, calls) in teams.items():
            port = upstream.port if name == "direct" else service.port
            upstream.timings()
            outputs[name] = load(port, bench.body(4, team=team), requests=config.p1_requests)
            rows[name] += outputs[name]["rows"]
            splits[name] += _split(outputs[name], upstream.timings(), calls)
        for name in rounds:
            rounds[name].append(compare(outputs["direct"]["rows"], outputs[name]["rows"]))
    result: dict[str, Any] = {}
    for name in rounds:
        result[name] = compare(rows["direct"], rows[name])
        result[name]["rounds"] = rounds[name]
        result[name]["spread_p50"] = spread([r["added_p50"] for r in rounds[name]])
        result[name]["spread_p99"] = spread([r["added_p99"] for r in rounds[name]])
    result["split"] = {
        name: {
            "to_upstream": summary([b for b, _ in pairs]),
            "relay": summary([r for _, r in pairs]),
        }
        for name, pairs in splits.items()
    }
    result |= {key: result["one_agent"][key] for key in ("added_p50", "added_p99")}
    bench.note(
        f"P1 added TTFT p50 {result['added_p50'] * 1e3:.2f} ms (one agent), "
        f"{result['builtin']['added_p50'] * 1e3:.2f} ms (built-in team, first reasoning token)"
    )
    return result


def _split(
    output: dict[str, Any], timings: list[list[float]], calls: int
) -> list[tuple[float, float]]:
    """(request written -> upstream call arrives, first token written -> client reads it)."""
    rows = output["rows"]
    if len(timings) != calls * len(rows) or errors(rows):
        return []
    pairs = []
    for row, (arrived, token_written) in zip(rows, timings[::calls], strict=True):
        sent = output["origin"] + row[0]
        pairs.append((arrived - sent, sent + row[1] - token_written))
    return pairs


def _closed_loop(
    bench: Bench, port: int, streams: int, tokens: int, window: float, *, direct: bool
) -> tuple[dict[str, Any], float]:
    """`streams` workers staggered over one stream's length, then `window` seconds held."""
    ramp = bench.stream_seconds(tokens, direct=direct)
    spec = {"concurrency": streams, "requests": 1_000_000, "ramp": ramp}
    output = load(
        port,
        bench.body(tokens, direct=direct),
        **spec,
        duration=ramp + window,
        timeout=LEVEL_TIMEOUT,
    )
    return output, ramp


def p2(bench: Bench, service: Service) -> dict:
    """Added TTFT while `p2_streams` streams are open at once."""
    config, rounds = bench.config, []
    for _ in range(config.p2_rounds):
        streams, tokens, window = config.p2_streams, config.p2_tokens, config.p2_window
        direct, ramp_d = _closed_loop(
            bench, bench.upstream.port, streams, tokens, window, direct=True
        )
        through, ramp_s = _closed_loop(bench, service.port, streams, tokens, window, direct=False)
        rounds.append(compare(direct["rows"], through["rows"], (ramp_d, ramp_s)))
    result = {
        "rounds": rounds,
        "added_p50": statistics.median(r["added_p50"] for r in rounds),
        "added_p99": max(r["added_p99"] for r in rounds),
        "spread_p50": spread([r["added_p50"] for r in rounds]),
        "spread_p99": spread([r["added_p99"] for r in rounds]),
        "errors": [e for r in rounds for e in r["errors"]],
    }
    bench.note(f"P2 added TTFT p99 {result['added_p99'] * 1e3:.2f} ms (worst round)")
    return result


def p3(bench: Bench, service: Service) -> dict:
    """Service CPU per relayed chunk and per request, fitted over short and long replies."""
    config = bench.config
    # Reported, not subtracted: /proc counts in 10 ms ticks, too coarse to subtract from.
    idle_start, idle_cpu = time.perf_counter(), service.cpu()
    time.sleep(3.0)
    idle_rate = (service.cpu() - idle_cpu) / (time.perf_counter() - idle_start)
    rounds = []
    for _ in range(config.p3_rounds):
        points = [
            _cpu_point(bench, service, tokens, requests)
            for tokens, requests in zip(config.p3_lengths, config.p3_requests, strict=True)
        ]
        per_request, per_chunk = fit_line([p["chunks"] for p in points], [p["cpu"] for p in points])
        rounds.append({"points": points, "per_request": per_request, "per_chunk": per_chunk})
    # The headline fits every round's points at once; each round's own fit shows the spread.
    points = [point for r in rounds for point in r["points"]]
    per_request, per_chunk = fit_line([p["chunks"] for p in points], [p["cpu"] for p in points])
    result = {
        "idle_cpu_per_second": idle_rate,
        "rounds": rounds,
        "per_chunk": per_chunk,
        "per_request": per_request,
        "spread_chunk": spread([r["per_chunk"] for r in rounds]),
        "spread_request": spread([r["per_request"] for r in rounds]),
    }
    bench.note(
        f"P3 {result['per_chunk'] * 1e6:.0f} us/chunk, {result['per_request'] * 1e3:.2f} ms/request"
    )
    return result


def _cpu_point(bench: Bench, service: Service, tokens: int, requests: int) -> dict[str, Any]:
    concurrency = bench.config.p3_concurrency
    before_stats, before_cpu = bench.upstream.stats(), service.cpu()
    output = load(
        service.port,
        bench.body(tokens),
        concurrency=concurrency,
        requests=math.ceil(requests / concurrency),
    )
    cpu = service.cpu() - before_cpu
    after_stats = bench.upstream.stats()
    done = len(output["rows"])
    chunks = after_stats["chunks"] - before_stats["chunks"]
    return {
        "tokens": tokens,
        "requests": done,
        "upstream_calls": after_stats["requests"] - before_stats["requests"],
        "chunks": chunks / done,
        "cpu": cpu / done,
        "cpu_total": cpu,
        "wall": output["wall"],
        "errors": errors(output["rows"]),
    }


def p4(bench: Bench, service: Service) -> dict:
    """The most streams held with no errors and p99 added TTFT within 50 ms, level by level."""
    levels, passed, failed = [], 0, 0
    for streams in bench.config.p4_levels:
        level = _level(bench, service, streams)
        levels.append(level)
        if not level["passed"]:
            failed = streams
            break
        passed = streams
    bench.note(f"P4 held {passed} streams")
    return {"streams": passed, "first_failure": failed, "levels": levels}


def _level(bench: Bench, service: Service, streams: int) -> dict[str, Any]:
    config, upstream = bench.config, bench.upstream
    tokens = config.p4_tokens
    length = bench.stream_seconds(tokens)
    window = min(config.p4_window, max(2 * length, config.p4_samples * length / streams))
    direct, ramp_d = _closed_loop(
        bench, upstream.port, streams, tokens, config.p4_direct, direct=True
    )
    before = service.cpu(), upstream.cpu()
    through, ramp_s = _closed_loop(bench, service.port, streams, tokens, window, direct=False)
    service_cpu, upstream_cpu = service.cpu() - before[0], upstream.cpu() - before[1]
    result = compare(direct["rows"], through["rows"], (ramp_d, ramp_s))
    wall = through["wall"]
    result |= {
        "streams": streams,
        "requests": len(through["rows"]),
        "passed": not result["errors"] and result["added_p99"] <= MAX_ADDED_TTFT,
        "cpu_share": {
            "service": service_cpu / wall,
            "upstream": upstream_cpu / wall,
            "load_generator": through["cpu"] / wall,
        },
    }
    result["error_count"], result["errors"] = len(result["errors"]), result["errors"][:5]
    verdict = "pass" if result["passed"] else "FAIL"
    bench.note(f"P4 {streams} streams: added p99 {result['added_p99'] * 1e3:.1f} ms, {verdict}")
    return result


def p5(bench: Bench, telemetry: bool) -> dict:
    """RSS growth per open stream, on a fresh service, with replies slow enough to all be open."""
    config = bench.config
    slow = Upstream(config.p5_interval, config.p5_tokens)
    try:
        options = ServiceOptions(telemetry, slow.sink_port if telemetry else None, config.teams_dir)
        service = Service(slow, options, bench.workdir)
        try:
            return _memory(bench, service)
        finally:
            service.close()
    finally:
        slow.close()


def _memory(bench: Bench, service: Service) -> dict[str, Any]:
    config = bench.config
    load(service.port, bench.body(1), concurrency=4, requests=2)
    time.sleep(0.5)
    base = service.rss()
    process = start_load(
        service.port, bench.body(config.p5_tokens), concurrency=config.p5_streams, ramp=3.0
    )
    peak = base
    while process.poll() is None:
        peak = max(peak, service.rss())
        time.sleep(0.05)
    output = finish_load(process)
    after = service.rss()
    result = {
        "streams": config.p5_streams,
        "base_kib": base,
        "peak_kib": peak,
        "after_kib": after,
        "per_stream_kib": (peak - base) / config.p5_streams,
        "errors": errors(output["rows"])[:5],
        "error_count": len(errors(output["rows"])),
    }
    bench.note(f"P5 {result['per_stream_kib']:.1f} KiB per stream")
    return result


def p6(bench: Bench, telemetry: bool, command: tuple[str, ...] | None = None) -> dict:
    """Start to ready, then SIGTERM to exit after a few requests, with no collector listening."""
    repeats = []
    for _ in range(bench.config.p6_repeats if command is None else 1):
        options = ServiceOptions(telemetry, None, bench.config.teams_dir)
        if command is not None:
            options.command = command
        service = Service(bench.upstream, options, bench.workdir)
        load(service.port, bench.body(2), concurrency=2, requests=2)
        exit_after = service.close()
        repeats.append(
            {"ready": service.ready_after, "exit": exit_after, "code": service.process.returncode}
        )
    result = {
        "repeats": repeats,
        "ready": statistics.median(r["ready"] for r in repeats),
        "exit": statistics.median(r["exit"] for r in repeats),
        "spread_ready": spread([r["ready"] for r in repeats]),
        "spread_exit": spread([r["exit"] for r in repeats]),
    }
    bench.note(f"P6 ready {result['ready']:.2f} s, exit {result['exit']:.2f} s")
    return result


__all__ = ["Bench", "Config", "p1", "p2", "p3", "p4", "p5", "p6", "percentile", "warm_up"]
