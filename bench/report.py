"""The benchmark's results as Markdown: the target table first, then every raw figure."""

from __future__ import annotations

import math
from typing import Any

# Figures the issue quotes for other gateways on a 2-core machine, for the "them ÷ us" column.
LITELLM = {"P1": 15e-3, "P3 chunk": 400e-6, "P3 request": 18e-3}
AUTOGEN_WRAPPER_TTFT = 57e-3

MS, US = 1e3, 1e6


def _value(results: dict, mode: str, path: tuple[str, ...]) -> float | None:
    node: Any = results["telemetry"].get(mode)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _fmt(value: float | None, scale: float, unit: str, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * scale:.{digits}f} {unit}".strip()


# figure, path, scale, unit, target (in base units), True when larger is better, reference
ROWS: list[tuple[str, tuple[str, ...], float, str, float | None, bool, float | None]] = [
    (
        "P1 added TTFT p50, one-agent team",
        ("P1", "added_p50"),
        MS,
        "ms",
        2e-3,
        False,
        LITELLM["P1"],
    ),
    ("P1 added TTFT p99, one-agent team", ("P1", "added_p99"), MS, "ms", None, False, None),
    (
        "P1 added TTFT p50, built-in team ¹",
        ("P1", "builtin", "added_p50"),
        MS,
        "ms",
        None,
        False,
        None,
    ),
    ("P2 added TTFT p50, 100 streams", ("P2", "added_p50"), MS, "ms", None, False, None),
    ("P2 added TTFT p99, 100 streams", ("P2", "added_p99"), MS, "ms", 10e-3, False, None),
    ("P3 CPU per relayed chunk", ("P3", "per_chunk"), US, "µs", 30e-6, False, LITELLM["P3 chunk"]),
    ("P3 CPU per request", ("P3", "per_request"), MS, "ms", 3e-3, False, LITELLM["P3 request"]),
    ("P4 streams held (p99 added ≤ 50 ms)", ("P4", "streams"), 1, "", 1000, True, None),
    ("P5 memory per open stream", ("P5", "per_stream_kib"), 1, "KiB", 128, False, None),
    ("P6 start to ready", ("P6", "ready"), 1, "s", 2.0, False, None),
    ("P6 SIGTERM to exit", ("P6", "exit"), 1, "s", 3.0, False, None),
]


def _failed(results: dict, mode: str, path: tuple[str, ...]) -> str:
    """A mark for a figure taken while requests failed (P5 counts its errors)."""
    count = _value(results, mode, (path[0], "error_count"))
    return f" ({count} errors)" if count else ""


def target_table(results: dict) -> str:
    modes = list(results["telemetry"])
    head = [
        "figure",
        "target",
        *(f"telemetry {m}" for m in modes),
        "÷ target",
        "verdict",
        "LiteLLM ÷ us",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, path, scale, unit, target, larger, reference in ROWS:
        values = [_value(results, mode, path) for mode in modes]
        first = values[0]
        cells = [name, _fmt(target, scale, unit, 0 if scale == 1 else 1) if target else "–"]
        cells += [
            _fmt(v, scale, unit, 0 if path[0] == "P4" else 2) + _failed(results, mode, path)
            for v, mode in zip(values, modes, strict=True)
        ]
        if target and first is not None:
            cells.append(f"{first / target:.2f}×")
            met = first >= target if larger else first <= target
            cells.append("met" if met else "**missed**")
        else:
            cells += ["–", "–"]
        cells.append(f"{reference / first:.1f}×" if reference and first and first > 0 else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ttft_rows(label: str, comparisons: list[dict]) -> list[str]:
    lines = []
    for number, c in enumerate(comparisons, 1):
        d, s = c["direct"], c["service"]
        lines.append(
            f"| {label} {number} | {d['n']} / {s['n']} | {d['p50'] * MS:.2f} / {d['p99'] * MS:.2f} "
            f"| {s['p50'] * MS:.2f} / {s['p99'] * MS:.2f} | {c['added_p50'] * MS:.2f} "
            f"| {c['added_p99'] * MS:.2f} | {len(c['errors'])} |"
        )
    return lines


TTFT_HEAD = (
    "| run | requests direct / service | direct p50 / p99 ms | service p50 / p99 ms "
    "| added p50 ms | added p99 ms | errors |\n|---|---|---|---|---|---|---|"
)


def details(results: dict) -> str:
    parts = []
    for mode, r in results["telemetry"].items():
        parts.append(f"### Telemetry {mode}\n")
        if "P1" in r:
            parts += [
                "P1, one stream at a time; each round calls the upstream directly, then "
                "the one-agent team, then the built-in team:\n",
                TTFT_HEAD,
            ]
            parts += _ttft_rows("one-agent, round", r["P1"]["one_agent"]["rounds"])
            parts += _ttft_rows("built-in, round", r["P1"]["builtin"]["rounds"]) + [""]
            parts.append(_split_table(r["P1"]["split"]))
        if "P2" in r:
            parts += ["P2, 100 streams held (requests started after the ramp):\n", TTFT_HEAD]
            parts += _ttft_rows("round", r["P2"]["rounds"]) + [""]
        if "P3" in r:
            parts.append(_cpu_table(r["P3"]))
        if "P4" in r:
            parts.append(_level_table(r["P4"]))
        if "P5" in r:
            m = r["P5"]
            parts.append(
                f"P5: {m['streams']} streams open at once; RSS {m['base_kib']} KiB before, "
                f"{m['peak_kib']} KiB at the peak, {m['after_kib']} KiB after they ended; "
                f"{m['per_stream_kib']:.1f} KiB per stream; {m['error_count']} errors.\n"
            )
        if "P6" in r:
            parts.append(_start_stop_table(r["P6"]))
    return "\n".join(parts)


def _split_table(split: dict) -> str:
    lines = [
        "P1's time to first token split with the upstream's clock (p50 / p99, ms; the rest "
        "is the upstream's own wait before its first token):\n",
        "| path | request written → upstream call arrives "
        "| first token written → client reads it |",
        "|---|---|---|",
    ]
    for name, parts in split.items():
        before, relay = parts["to_upstream"], parts["relay"]
        lines.append(
            f"| {name} | {before['p50'] * MS:.2f} / {before['p99'] * MS:.2f} "
            f"| {relay['p50'] * MS:.2f} / {relay['p99'] * MS:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _cpu_table(p3: dict) -> str:
    lines = [
        f"P3, service CPU (idle {p3['idle_cpu_per_second'] * MS:.1f} ms per second, included); "
        f"fit over every round's points: {p3['per_chunk'] * US:.0f} µs per chunk, "
        f"{p3['per_request'] * MS:.2f} ms per request:\n",
        "| round | tokens per call | requests | chunks per request | CPU per request ms "
        "| fit: µs per chunk | fit: ms per request |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, r in enumerate(p3["rounds"], 1):
        for point in r["points"]:
            lines.append(
                f"| {number} | {point['tokens']} | {point['requests']} | {point['chunks']:.1f} "
                f"| {point['cpu'] * MS:.2f} | {r['per_chunk'] * US:.0f} "
                f"| {r['per_request'] * MS:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _level_table(p4: dict) -> str:
    lines = [
        "P4, streams held (closed loop, staggered over one stream's length), highest passing "
        f"level {p4['streams']}:\n",
        "| streams | requests | direct p99 ms | service p99 ms | added p50 ms | added p99 ms "
        "| errors | CPU share service / upstream / load generator | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in p4["levels"]:
        share = level["cpu_share"]
        lines.append(
            f"| {level['streams']} | {level['requests']} | {level['direct']['p99'] * MS:.1f} "
            f"| {level['service']['p99'] * MS:.1f} | {level['added_p50'] * MS:.1f} "
            f"| {level['added_p99'] * MS:.1f} | {level['error_count']} | {share['service']:.2f} / "
            f"{share['upstream']:.2f} / {share['load_generator']:.2f} "
            f"| {'pass' if level['passed'] else 'fail'} |"
        )
    return "\n".join(lines) + "\n"


def _start_stop_table(p6: dict) -> str:
    lines = ["P6 (telemetry export pointed at a port where nothing listens):\n"]
    lines += ["| repeat | start to ready s | SIGTERM to exit s | exit code |", "|---|---|---|---|"]
    for number, r in enumerate(p6["repeats"], 1):
        lines.append(f"| {number} | {r['ready']:.2f} | {r['exit']:.2f} | {r['code']} |")
    return "\n".join(lines) + "\n"


def machine_lines(machine: dict) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in machine.items())


def render(results: dict) -> str:
    return "\n\n".join(
        [
            f"## Run of {results['finished']}",
            f"Command: `{results['command']}`",
            machine_lines(results["machine"]),
            target_table(results),
            "¹ The built-in team's first token is the drafter's first reasoning token, compared "
            "with the first token of a direct call; the issue's P1 is the one-agent row.",
            details(results),
        ]
    )


def main() -> None:
    """Renders a saved run again: `uv run python bench/report.py bench/results/<t>/results.json`."""
    import json
    import sys
    from pathlib import Path

    print(render(json.loads(Path(sys.argv[1]).read_text())))


if __name__ == "__main__":
    main()
