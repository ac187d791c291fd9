"""The heartbeat: a counter and a traced debug line every `HEARTBEAT_INTERVAL` seconds.

APScheduler's asyncio executor cancels a job still pending at shutdown and logs that as an
error with a traceback. So stopping first pauses the scheduler, waits for a run already handed
to the executor to finish (a beat takes microseconds), and only then shuts it down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from fastapi_autogen_team.telemetry.metrics import Instruments
from fastapi_autogen_team.telemetry.providers import instance_id
from fastapi_autogen_team.telemetry.tracing import log_with_trace

DRAIN_TIMEOUT = 1.0  # seconds to wait for a running beat at shutdown


def record_heartbeat(instruments: Instruments) -> None:
    instruments.record_heartbeat(instance_id())
    log_with_trace("Heartbeat recorded", level="debug")


class HeartbeatScheduler:
    def __init__(self, interval: float, beat: Callable[[], None]) -> None:
        self._interval = interval
        self._beat = beat
        self._scheduler = AsyncIOScheduler()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """Needs the running event loop: call it from the lifespan."""
        self._scheduler.add_listener(
            self._on_job_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        self._scheduler.add_job(
            self._run,
            "interval",
            seconds=self._interval,
            id="heartbeat",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()

    async def stop(self) -> None:
        if not self._scheduler.running:
            return
        self._scheduler.pause()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), DRAIN_TIMEOUT)

        self._scheduler.shutdown(wait=False)
        # AsyncIOScheduler.shutdown only schedules the work on the loop; let it happen now.
        await asyncio.sleep(0)

    async def _run(self) -> None:
        self._beat()

    def _on_job_event(self, event: JobSubmissionEvent | JobExecutionEvent) -> None:
        # Both kinds are dispatched on the event loop: submission by the scheduler's wakeup,
        # the outcome by the executor's done-callback.
        self._in_flight += 1 if event.code == EVENT_JOB_SUBMITTED else -1
        if self._in_flight:
            self._idle.clear()
        else:
            self._idle.set()
