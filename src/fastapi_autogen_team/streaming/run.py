"""The run owner: runs one team in its own task, hands its deltas over, always cleans up.

The team runs in its own asyncio task that feeds a queue; the HTTP side only reads the queue.
Cancelling the consumer does not stop an AutoGen team (it runs to the end), so `close()`
cancels the run's CancellationToken, which aborts the model call in flight; the producer then
drains quietly, closes any upstream response AutoGen abandoned (see `teams/http.py`) and
ends. Agents' tokens reach the queue straight from the model client (see `teams/clients.py`),
ahead of their whole message, which comes through the run's stream. Whoever created a
`TeamRun` must call `close()` and should await `wait_closed()`, whatever happened.
`RunTracker` holds every live run of the worker: the concurrency limit, and the handle
shutdown uses to end them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from autogen_agentchat.base import TaskResult, Team
from autogen_agentchat.messages import BaseChatMessage
from autogen_core import CancellationToken
from opentelemetry.trace import Span, StatusCode

from ..conversation import Conversation
from ..errors import InternalError, RateLimited, RunTimedOut, ServiceError
from ..settings import Settings
from ..teams.clients import RunModelClient
from ..teams.http import close_responses, track_upstream_responses
from ..teams.registry import ServedTeam
from ..teams.retry import RetryPolicy
from ..teams.run import RunInputs
from ..telemetry import Telemetry
from .mapping import Channel, Delta, DeltaMapper

logger = logging.getLogger(__name__)

_END = object()


class TeamRun:
    """One team run, started in its own task; read its deltas, then close it."""

    def __init__(
        self,
        team: Team,
        task: str,
        client: RunModelClient,
        token: CancellationToken,
        mapper: DeltaMapper,
        timeout: float,
        telemetry: Telemetry,
        model: str,
        queue: asyncio.Queue[object] | None = None,
    ) -> None:
        self._telemetry = telemetry
        self.model = model
        self._team = team
        self._task_text = task
        self._token = token
        self._mapper = mapper
        self.client = client
        self.stop_reason: str | None = None
        self._queue = queue or asyncio.Queue()
        """Events for the reader: the run's stream, and the agents' tokens put by their client."""
        self._error: BaseException | None = None
        self._aborted: ServiceError | None = None
        self._closing = False
        self._task = asyncio.create_task(self._produce(), name="team-run")
        timer = asyncio.get_running_loop().call_later(timeout, self._time_out, timeout)
        self._task.add_done_callback(lambda _: timer.cancel())

    def _time_out(self, timeout: float) -> None:
        self.abort(RunTimedOut(f"The team did not finish within RUN_TIMEOUT ({timeout:g} s)."))

    def abort(self, error: ServiceError) -> None:
        """Ends the run now; its reader gets `error` instead of the rest of the deltas."""
        if self._task.done() or self._aborted is not None:
            return
        self._aborted = error
        self.close()
        self._queue.put_nowait(_END)  # wake the reader now, not when the team has wound down

    def on_done(self, callback: Callable[[TeamRun], object]) -> None:
        self._task.add_done_callback(lambda _: callback(self))

    async def _produce(self) -> None:
        started = time.perf_counter()
        turns = 0
        span_name = f"invoke_team {self.model}"
        upstream_responses = track_upstream_responses()
        with self._telemetry.tracer.start_as_current_span(span_name) as span:
            try:
                stream = self._team.run_stream(
                    task=self._task_text, cancellation_token=self._token, output_task_messages=False
                )
                async for event in stream:
                    if isinstance(event, TaskResult):
                        self.stop_reason = event.stop_reason
                        continue
                    turns += isinstance(event, BaseChatMessage)
                    if not self._closing:
                        self._queue.put_nowait(event)
            except BaseException as error:  # the run's failure is reported to the consumer
                self._error = error
            finally:
                self._queue.put_nowait(_END)
                self._record(span, turns, time.perf_counter() - started)
                await close_responses(upstream_responses)

    def _record(self, span: Span, turns: int, seconds: float) -> None:
        outcome = self.outcome
        prompt_tokens, completion_tokens = self.usage
        span.set_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": self.model,
                "autogen.team.stop_reason": self.stop_reason or outcome,
                "autogen.team.turns": turns,
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": completion_tokens,
                "chat.outcome": outcome,
            }
        )
        logger.info(
            "run %s: model=%s turns=%d model_calls=%d tokens=%d+%d in %.3f s",
            outcome,
            self.model,
            turns,
            self.client.calls,
            prompt_tokens,
            completion_tokens,
            seconds,
        )
        metrics = self._telemetry.metrics
        metrics.record_run_duration(self.model, seconds, outcome=outcome)
        metrics.record_token_usage(
            self.model, input_tokens=prompt_tokens, output_tokens=completion_tokens
        )
        if self.client.failure is not None:
            span.set_status(StatusCode.ERROR, self.client.failure.code)
            metrics.count_upstream_error(self.client.failure.code or "upstream_error")

    @property
    def outcome(self) -> str:
        """How the run ended: completed, cancelled (client left or aborted), or error."""
        if self._aborted is not None or self.client.failure is not None:
            return "error"
        if self._closing:
            return "cancelled"
        return "completed" if self._error is None else "error"

    async def deltas(self) -> AsyncIterator[Delta]:
        """Every delta of the run; raises a ServiceError if the run failed."""
        while (event := await self._queue.get()) is not _END:
            for delta in self._mapper.map(event):
                yield delta
        if self._aborted is not None:
            raise self._aborted
        if self._error is not None:
            raise self._failure(self._error)
        for delta in self._mapper.finish():
            yield delta

    def _failure(self, error: BaseException) -> ServiceError:
        if self.client.failure is not None:
            return self.client.failure
        if isinstance(error, ServiceError):
            return error
        logger.error("team run failed", exc_info=error)
        return InternalError()

    def close(self) -> None:
        """Stops the run if it is still going; safe to call more than once."""
        if self._task.done() or self._closing:
            return
        self._closing = True
        self._token.cancel()

    async def wait_closed(self, grace: float = 5.0) -> None:
        """Waits for the run's task to end, cancelling it outright after `grace` seconds."""
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            logger.warning("team run ignored cancellation for %.1f s; cancelling its task", grace)
            self._task.cancel()

    @property
    def usage(self) -> tuple[int, int]:
        return self.client.prompt_tokens, self.client.completion_tokens


async def collect(run: TeamRun) -> tuple[str, str]:
    """Runs to the end and returns (content, reasoning), for non-streaming responses."""
    parts: dict[Channel, list[str]] = {"content": [], "reasoning": []}
    async for delta in run.deltas():
        parts[delta.channel].append(delta.text)
    return "".join(parts["content"]), "".join(parts["reasoning"])


def start_run(
    served: ServedTeam,
    conversation: Conversation,
    sampling: dict[str, object],
    settings: Settings,
    telemetry: Telemetry,
) -> TeamRun:
    """Builds fresh agents and a fresh team for this request, and starts the run."""
    token = CancellationToken()
    retry = RetryPolicy(settings.LLM_MAX_RETRIES, settings.LLM_RETRY_AFTER_MAX)
    queue: asyncio.Queue[object] = asyncio.Queue()
    client = RunModelClient(
        served.client,
        token,
        sampling,
        retry=retry,
        capture_content=settings.CAPTURE_CONTENT,
        sink=queue.put_nowait,
    )
    inputs = RunInputs(client, conversation.instructions, conversation.history, settings.MAX_TURNS)
    definition = served.definition
    team = definition.build(inputs)
    mapper = DeltaMapper(
        settings.AGENT_MESSAGES, definition.answer_agent, definition.answer_streams
    )
    return TeamRun(
        team,
        conversation.task,
        client,
        token,
        mapper,
        settings.RUN_TIMEOUT,
        telemetry,
        definition.id,
        queue,
    )


class RunTracker:
    """The worker's live runs: the concurrency limit, and shutdown's handle on every run."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._runs: set[TeamRun] = set()

    def __len__(self) -> int:
        return len(self._runs)

    def admit(self) -> None:
        """Raises a 429 when this worker already runs its MAX_CONCURRENT_RUNS."""
        if len(self._runs) >= self._limit:
            raise RateLimited(
                f"This server is running its maximum of {self._limit} team runs; retry shortly.",
                headers={"Retry-After": "1"},
            )

    def track(self, run: TeamRun) -> TeamRun:
        self._runs.add(run)
        run.on_done(self._runs.discard)
        return run

    def abort_all(self, error: ServiceError) -> None:
        for run in list(self._runs):
            run.abort(error)

    async def wait_all(self, grace: float) -> None:
        runs = list(self._runs)
        await asyncio.gather(*(run.wait_closed(grace) for run in runs))
