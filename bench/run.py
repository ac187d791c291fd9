"""Benchmark: what the service adds between a client and the model, side by side with direct.

Starts a scripted OpenAI-compatible upstream on 127.0.0.1 with a set token rate (and an OTLP
sink), the service in front of it as its own process, and a load generator in a third, then
measures P1-P6 of issue 6 with telemetry on (exporting to the sink) and off. Writes the raw
figures as JSON and a Markdown report to bench/results/, and prints the report.

    uv run python bench/run.py            # the full run, about ten minutes
    uv run python bench/run.py --quick    # a short run, about three minutes
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import report
import scenarios
from processes import BENCH, REPO, Service, Upstream
from scenarios import Bench, Config

SCENARIOS = ("P1", "P2", "P3", "P4", "P5", "P6")
PACKAGES = ("fastapi", "starlette", "uvicorn", "sse-starlette", "autogen-agentchat", "openai")


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = []
    for name in (*PACKAGES, "opentelemetry-sdk"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{name} {importlib.metadata.version(name)}")
    return {
        "cores (nproc)": os.cpu_count(),
        "CPU": cpu,
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "packages": ", ".join(versions),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and levels")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help="comma-separated subset, e.g. P1,P3"
    )
    parser.add_argument("--telemetry", choices=("on", "off", "both"), default="both")
    parser.add_argument(
        "--token-rate", type=float, default=20.0, help="upstream tokens per second per stream"
    )
    parser.add_argument("--team", default="autogen-team", help="the model id to call")
    parser.add_argument("--calls", type=int, default=2, help="model calls one team run makes")
    parser.add_argument(
        "--teams-dir", default=str(BENCH / "teams"), help="TEAMS_DIR with the one-agent team"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    return parser.parse_args()


def run_mode(bench: Bench, telemetry: bool, selected: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    measured = [name for name in ("P1", "P2", "P3", "P4") if name in selected]
    if measured:
        service = Service(bench.upstream, bench.options(telemetry), bench.workdir)
        try:
            scenarios.warm_up(bench, service)
            for name in measured:
                results[name] = getattr(scenarios, name.lower())(bench, service)
        finally:
            service.close()
    if "P5" in selected:
        results["P5"] = scenarios.p5(bench, telemetry)
    if "P6" in selected:
        results["P6"] = scenarios.p6(bench, telemetry)
    return results


def main() -> None:
    args = arguments()
    selected = {name.strip().upper() for name in args.only.split(",")}
    overrides = {
        "interval": 1 / args.token_rate,
        "team": args.team,
        "calls": args.calls,
        "teams_dir": args.teams_dir,
    }
    config = Config.quick_run(**overrides) if args.quick else Config(**overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = args.out / stamp
    modes = ["on", "off"] if args.telemetry == "both" else [args.telemetry]

    results: dict[str, Any] = {
        "command": " ".join(["uv run python bench/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "config": asdict(config),
        "telemetry": {},
    }
    upstream = Upstream(config.interval, config.p4_tokens)
    try:
        bench = Bench(config, upstream, workdir)
        for mode in modes:
            bench.note(f"-- telemetry {mode}")
            results["telemetry"][mode] = run_mode(bench, mode == "on", selected)
    finally:
        upstream.close()
    results["machine"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    markdown = report.render(results)
    (workdir / "report.md").write_text(markdown + "\n")
    print(markdown)
    print(f"\nRaw figures: {workdir.relative_to(REPO)}/results.json")


if __name__ == "__main__":
    main()
