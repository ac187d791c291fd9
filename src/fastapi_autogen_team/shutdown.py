"""Graceful shutdown: on SIGTERM or SIGINT, stop taking runs, then end the ones in flight.

uvicorn closes its listening sockets on the signal and waits up to SHUTDOWN_TIMEOUT for open
connections. We add what it cannot know: `/readyz` turns 503 at once, new chat requests on
kept-alive connections get a 503, and after SHUTDOWN_GRACE seconds every run still going is
aborted so its stream ends with an error event and [DONE] instead of being cut off.
Signal handlers can only be installed from the main thread; elsewhere (tests that run
uvicorn in a thread) this is a no-op and the lifespan's own shutdown does the same work.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .errors import ServiceUnavailable
from .streaming import RunTracker

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "The server is shutting down; send the request again."


def drain_on_signals(state: Any, runs: RunTracker, grace: float) -> Callable[[], None]:
    """Installs the handlers; returns the function that restores the previous ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()

    def begin_drain() -> None:
        if state.draining:
            return
        state.draining = True
        logger.info("shutdown: draining %d run(s) for up to %.1f s", len(runs), grace)
        loop.call_later(grace, runs.abort_all, ServiceUnavailable(SHUTTING_DOWN))

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(begin_drain)
        chained = previous[signal.Signals(signum)]
        if callable(chained):
            chained(signum, frame)

    for sig in previous:
        signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
