"""Runs the service's console script with every garbage collection recorded, for gc_probe.py.

The service runs unchanged; `gc.callbacks` time each collection, and a thread writes them to
$BENCH_GC_OUT twice a second (uvicorn ends the process by re-raising SIGTERM, so no exit
hook would run).
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path

from fastapi_autogen_team.main import run

collections: list[tuple[int, float, int]] = []  # generation, seconds, unreachable objects
_started = [0.0]


def _record(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        seconds = time.perf_counter() - _started[0]
        collections.append((info["generation"], seconds, info["collected"]))


def _write(path: Path) -> None:
    while True:
        time.sleep(0.5)
        path.write_text(json.dumps(collections[:]))


if thresholds := os.environ.get("BENCH_GC_THRESHOLDS"):  # to try other settings: "700,10,10"
    gc.set_threshold(*(int(value) for value in thresholds.split(",")))
gc.callbacks.append(_record)
threading.Thread(target=_write, args=(Path(os.environ["BENCH_GC_OUT"]),), daemon=True).start()
run()
