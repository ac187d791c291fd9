"""SSE framing of a streamed completion: `data: <chunk>` events, LF line ends, [DONE].

OpenAI ends lines with LF (sse-starlette's default is CRLF, which some clients split
wrongly), so events are framed here as bytes, which sse-starlette passes through untouched.
A failure after the first chunk becomes an error event followed by [DONE]; a client that
left gets nothing more, and its run is closed either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from ..errors import ServiceError
from ..telemetry import Instruments
from ..wire import ChunkWriter, error_event
from .mapping import Delta
from .run import TeamRun

DONE = b"data: [DONE]\n\n"


def frame(data: str) -> bytes:
    """One SSE event. OpenAI ends lines with \\n, and some clients split only on \\n\\n."""
    return b"data: " + data.encode() + b"\n\n"


def _chunk(writer: ChunkWriter, delta: Delta) -> str:
    if delta.channel == "content":
        return writer.content(delta.text)
    return writer.reasoning(delta.text)


async def sse_events(
    run: TeamRun,
    first: Delta | None,
    rest: AsyncIterator[Delta],
    writer: ChunkWriter,
    include_usage: bool,
    metrics: Instruments,
) -> AsyncIterator[bytes]:
    """The whole SSE body of one streamed completion, given its first delta."""
    metrics.stream_opened(run.model)
    outcome = "cancelled"
    try:
        yield frame(writer.role())
        if first is not None:
            yield frame(_chunk(writer, first))
        async for delta in rest:
            yield frame(_chunk(writer, delta))
        yield frame(writer.finish())
        if include_usage:
            yield frame(writer.usage(*run.usage))
        outcome = "completed"
    except ServiceError as error:
        outcome = "error"
        yield frame(error_event(error.body()))
    finally:
        metrics.stream_closed(run.model)
        metrics.count_request(run.model, stream=True, outcome=outcome)
        run.close()
        with anyio.CancelScope(shield=True):
            await run.wait_closed()
    yield DONE
