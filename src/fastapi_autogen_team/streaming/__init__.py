"""From a started team run to OpenAI stream chunks: the run owner, the event mapping, SSE.

`run.py` owns a run's task and its cancellation, `mapping.py` turns AutoGen events into
reasoning/content deltas, `sse.py` frames them for the wire.
"""

from .mapping import Channel, Delta, DeltaMapper
from .run import RunTracker, TeamRun, collect, start_run
from .sse import DONE, frame, sse_events

__all__ = [
    "DONE",
    "Channel",
    "Delta",
    "DeltaMapper",
    "RunTracker",
    "TeamRun",
    "collect",
    "frame",
    "sse_events",
    "start_run",
]
