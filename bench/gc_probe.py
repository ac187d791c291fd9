"""How often the garbage collector stops the service, and for how long, under held streams.

    uv run python bench/gc_probe.py --streams 50 --seconds 30

Starts the same upstream and service as run.py (the service through gc_launcher.py, which
records every collection), holds `--streams` streams in a closed loop for `--seconds`, and
prints, per generation, the collections, their pauses (p50, p99, max, total) and the
unreachable objects they found per request: cyclic garbage, which only the collector frees.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from processes import BENCH, PYTHON, Service, Upstream, finish_load
from scenarios import Bench, Config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50, help="streams held (default 50)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="load after the ramp (default 30)"
    )
    parser.add_argument("--tokens", type=int, default=20, help="per model call (default 20)")
    parser.add_argument("--telemetry", choices=("on", "off"), default="on")
    parser.add_argument("--thresholds", help="gc.set_threshold for the run, e.g. 700,10,10")
    args = parser.parse_args()

    config = Config()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = BENCH / "results" / f"gc-{stamp}"
    record = workdir / "collections.json"
    upstream = Upstream(config.interval, args.tokens)
    try:
        bench = Bench(config, upstream, workdir)
        options = bench.options(args.telemetry == "on")
        options.command = (PYTHON, str(BENCH / "gc_launcher.py"))
        options.extra_env = {"BENCH_GC_OUT": str(record)}
        if args.thresholds:
            options.extra_env["BENCH_GC_THRESHOLDS"] = args.thresholds
        service = Service(upstream, options, workdir)
        try:
            time.sleep(1.0)  # the record of start-up's collections is written
            before = len(json.loads(record.read_text()))
            load, _ = bench.hold(service, args.streams, args.tokens, args.seconds)
            rss = [service.rss()]
            while load.poll() is None:
                time.sleep(0.2)
                rss.append(service.rss())
            result = finish_load(load)
            time.sleep(1.0)
            collections = json.loads(record.read_text())[before:]
        finally:
            service.close()
    finally:
        upstream.close()
    requests = len(result["rows"])
    errors = sum(1 for row in result["rows"] if row[4])
    wall = result["wall"]
    print(f"{args.streams} streams, {requests} requests ({errors} errors) in {wall:.1f} s")
    print(f"RSS {rss[0] / 1024:.0f} MiB at the start, {max(rss) / 1024:.0f} MiB at the peak")
    for generation in (0, 1, 2):
        pauses = sorted(s for g, s, _ in collections if g == generation)
        found = sum(n for g, _, n in collections if g == generation)
        if not pauses:
            print(f"gen {generation}: no collections")
            continue
        p99 = pauses[min(len(pauses) - 1, int(0.99 * len(pauses)))]
        print(
            f"gen {generation}: {len(pauses)} collections, pause p50 "
            f"{statistics.median(pauses) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max "
            f"{pauses[-1] * 1e3:.2f} ms, total {sum(pauses):.3f} s "
            f"({sum(pauses) / wall:.1%} of the time); "
            f"{found / max(requests, 1):.0f} unreachable objects per request"
        )


if __name__ == "__main__":
    main()
