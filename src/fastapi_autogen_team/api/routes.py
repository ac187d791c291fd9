"""The OpenAI-compatible routes: models and chat completions.

A streamed completion waits for the run's first delta before sending headers, so a failure
before any output (an unreachable upstream, a rate limit) gets its real HTTP status instead
of a 200 with an error event. While waiting, and for a non-streamed completion, the route
watches the connection: a client that leaves stops the run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from ..conversation import split_conversation
from ..errors import ModelNotFound, ServiceError, ServiceUnavailable, UnsupportedParameter
from ..settings import Settings
from ..streaming import Delta, RunTracker, TeamRun, collect, sse_events, start_run
from ..teams.registry import ServedTeam, TeamRegistry
from ..telemetry import Instruments, Telemetry
from ..wire import ChunkWriter, Input, completion_body, model_card, new_completion_id
from .auth import require_api_key
from .errors import ClientGone
from .limits import check_limits

T = TypeVar("T")
logger = logging.getLogger(__name__)


class _EventStream(EventSourceResponse):
    """sse-starlette raises SendTimeoutError at a client that stopped reading; dropping such a
    client (and so cancelling its run) is routine here, not an unhandled error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning("dropped a client that stopped reading for SEND_TIMEOUT seconds")


root_router = APIRouter()
router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


# async on purpose: FastAPI runs a plain `def` dependency in a worker thread, per request.
async def _registry(request: Request) -> TeamRegistry:
    registry: TeamRegistry = request.app.state.registry
    return registry


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _card(served: ServedTeam) -> dict[str, Any]:
    definition = served.definition
    return model_card(definition.id, served.created, definition.owned_by, definition.information())


@root_router.get("/", include_in_schema=False)
async def docs_redirect() -> RedirectResponse:
    return RedirectResponse(url="/docs")


@router.get("/models")
async def get_models(registry: Annotated[TeamRegistry, Depends(_registry)]) -> dict[str, Any]:
    """Lists the teams served, each as a model."""
    return {"object": "list", "data": [_card(served) for served in registry]}


@router.get("/models/{model_id}")
async def get_model(
    model_id: str, registry: Annotated[TeamRegistry, Depends(_registry)]
) -> dict[str, Any]:
    """Describes one team."""
    served = registry.get(model_id)
    if served is None:
        raise ModelNotFound(model_id)
    return _card(served)


@router.post("/chat/completions", response_model=None)
async def route_query(
    body: Input,
    request: Request,
    registry: Annotated[TeamRegistry, Depends(_registry)],
    settings: Annotated[Settings, Depends(_settings)],
) -> Response:
    """Runs the team named by `model` on the conversation; streams when `stream` is true."""
    served = registry.get(body.model)
    if served is None:
        raise ModelNotFound(body.model)
    if (unsupported := body.unsupported_field()) is not None:
        field, reason = unsupported
        raise UnsupportedParameter(reason, param=field)
    check_limits(body, settings)
    conversation = split_conversation(body.messages)
    if request.app.state.draining:
        raise ServiceUnavailable(
            "The server is shutting down; send the request again.", headers={"Retry-After": "1"}
        )
    runs: RunTracker = request.app.state.runs
    runs.admit()
    telemetry: Telemetry = request.app.state.telemetry
    run = runs.track(start_run(served, conversation, body.sampling(), settings, telemetry))
    if body.stream:
        return await _stream(request, run, body, settings, telemetry.metrics)
    return await _complete(request, run, body, telemetry.metrics)


async def _stream(
    request: Request, run: TeamRun, body: Input, settings: Settings, metrics: Instruments
) -> Response:
    started = time.perf_counter()
    deltas = aiter(run.deltas())
    try:
        first: Delta | None = await _unless_gone(request, anext(deltas, None))
    except (ServiceError, ClientGone, asyncio.CancelledError) as error:
        await _stop(run)
        outcome = "error" if isinstance(error, ServiceError) else "cancelled"
        metrics.count_request(run.model, stream=True, outcome=outcome)
        raise
    metrics.record_time_to_first_token(run.model, time.perf_counter() - started)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    writer = ChunkWriter(new_completion_id(), body.model)
    events = sse_events(run, first, deltas, writer, include_usage, metrics)
    return _EventStream(
        events,
        sep="\n",
        ping=settings.PING_INTERVAL,
        send_timeout=settings.SEND_TIMEOUT,
        # Our own drain ends streams with an error event and [DONE] after SHUTDOWN_GRACE;
        # sse-starlette's force-cancel is only the backstop.
        shutdown_grace_period=settings.SHUTDOWN_GRACE + 1,
    )


async def _complete(request: Request, run: TeamRun, body: Input, metrics: Instruments) -> Response:
    outcome = "cancelled"
    try:
        content, reasoning = await _unless_gone(request, collect(run))
        outcome = "completed"
    except ServiceError:
        outcome = "error"
        raise
    finally:
        await _stop(run)
        metrics.count_request(run.model, stream=False, outcome=outcome)
    completion = completion_body(new_completion_id(), body.model, content, reasoning, run.usage)
    return JSONResponse(completion)


async def _stop(run: TeamRun) -> None:
    run.close()
    await asyncio.shield(run.wait_closed())


async def _wait_for_disconnect(request: Request) -> None:
    # The body has been read, so the next message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(request: Request, work: Awaitable[T]) -> T:
    """Awaits `work`, or raises ClientGone as soon as the client disconnects."""
    working = asyncio.ensure_future(work)
    watching = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({working, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
    if not working.done():
        working.cancel()
        raise ClientGone()
    return working.result()
