"""The service's metric instruments, and the attribute names they are recorded with.

Names follow the OpenTelemetry conventions: dot-separated, units in `unit` and not in the
name, `{thing}` for counts. Token usage is the GenAI semantic-convention histogram
`gen_ai.client.token.usage`, since the service is a client of its upstream model.
`heartbeat_counter` keeps the name the issue gives it. The recording methods keep attribute
names in one place; use the instruments directly only for something these do not cover.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter, UpDownCounter
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.service_attributes import SERVICE_INSTANCE_ID

MODEL = "gen_ai.request.model"
OPERATION = "gen_ai.operation.name"
TOKEN_TYPE = "gen_ai.token.type"
STREAM = "chat.stream"
OUTCOME = "chat.outcome"

# Bucket boundaries recommended by the GenAI semantic conventions.
_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_FIRST_TOKEN_SECONDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5)
_TOKENS = tuple(4.0**power for power in range(14))


@dataclass(frozen=True)
class Instruments:
    heartbeat: Counter
    chat_requests: Counter
    time_to_first_token: Histogram
    run_duration: Histogram
    active_streams: UpDownCounter
    token_usage: Histogram
    upstream_errors: Counter

    def record_heartbeat(self, instance_id: str) -> None:
        self.heartbeat.add(1, {SERVICE_INSTANCE_ID: instance_id})

    def count_request(self, model: str, *, stream: bool, outcome: str) -> None:
        """`outcome`: e.g. "completed", "cancelled" (client went away) or "error"."""
        self.chat_requests.add(1, {MODEL: model, STREAM: stream, OUTCOME: outcome})

    def record_time_to_first_token(self, model: str, seconds: float) -> None:
        self.time_to_first_token.record(seconds, {MODEL: model})

    def record_run_duration(self, model: str, seconds: float, *, outcome: str) -> None:
        self.run_duration.record(seconds, {MODEL: model, OUTCOME: outcome})

    def stream_opened(self, model: str) -> None:
        self.active_streams.add(1, {MODEL: model})

    def stream_closed(self, model: str) -> None:
        self.active_streams.add(-1, {MODEL: model})

    def record_token_usage(self, model: str, *, input_tokens: int, output_tokens: int) -> None:
        for token_type, count in (("input", input_tokens), ("output", output_tokens)):
            self.token_usage.record(
                count, {OPERATION: "chat", MODEL: model, TOKEN_TYPE: token_type}
            )

    def count_upstream_error(self, kind: str) -> None:
        """`kind`: a short class of failure, e.g. "timeout", "rate_limit", "connection"."""
        self.upstream_errors.add(1, {ERROR_TYPE: kind})


def create_instruments(meter: Meter) -> Instruments:
    return Instruments(
        heartbeat=meter.create_counter(
            "heartbeat_counter", "{heartbeat}", "Heartbeats recorded by this instance."
        ),
        chat_requests=meter.create_counter(
            "chat.requests", "{request}", "Chat completion requests, by model, stream and outcome."
        ),
        time_to_first_token=meter.create_histogram(
            "chat.time_to_first_token",
            "s",
            "Time from accepting a request to sending its first content token.",
            explicit_bucket_boundaries_advisory=_FIRST_TOKEN_SECONDS,
        ),
        run_duration=meter.create_histogram(
            "chat.run.duration",
            "s",
            "Duration of a team run, from start to its last event.",
            explicit_bucket_boundaries_advisory=_SECONDS,
        ),
        active_streams=meter.create_up_down_counter(
            "chat.active_streams", "{stream}", "Streaming responses currently open."
        ),
        token_usage=meter.create_histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Tokens used per run, by model and token type.",
            explicit_bucket_boundaries_advisory=_TOKENS,
        ),
        upstream_errors=meter.create_counter(
            "chat.upstream.errors", "{error}", "Failed calls to the upstream model, by kind."
        ),
    )
