"""Spans: `log_with_trace`, the FastAPI instrumentation, and the environment both rely on.

`FastAPIInstrumentor.instrument_app` wraps the app's middleware stack when Starlette builds
it, which happens on the first ASGI call: the lifespan's own. Instrumenting from inside the
lifespan therefore also drops the stack already built, and the first request builds it again
with the OpenTelemetry middleware in it. Per-message `send`/`receive` spans are excluded, or
every SSE chunk would be a span; health and docs routes are not traced at all.
"""

from __future__ import annotations

import functools
import logging
import os
import re

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import StatusCode

from fastapi_autogen_team.settings import Settings
from fastapi_autogen_team.telemetry import global_providers
from fastapi_autogen_team.telemetry.providers import SCOPE, service_version

logger = logging.getLogger(__name__)

UNTRACED_PATHS = ("/healthz", "/readyz", "/docs", "/openapi.json", "/redoc", "/")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
_AUTOGEN_RUNTIME_TRACING_OFF = "AUTOGEN_DISABLE_RUNTIME_TRACING"


def log_with_trace(message: str, level: str = "info") -> None:
    """Log `message` at `level` inside a span of its own, a child of the current span if any.

    For occasional events worth finding in a trace (the heartbeat), not for every log line.
    An unknown `level` is logged as an error that names it and keeps the message.
    """
    with _service_tracer().start_as_current_span("log_with_trace") as span:
        levelno = LEVELS.get(level.lower())
        if levelno is None:
            span.set_status(StatusCode.ERROR, f"Unsupported log level {level!r}.")
            logger.error(
                "Unsupported log level %r (supported: %s); message: %s",
                level,
                ", ".join(LEVELS),
                message,
            )
            return
        logger.log(levelno, message)


@functools.cache
def _service_tracer() -> trace.Tracer:
    return global_providers.service_tracer(SCOPE, service_version())


def set_tracing_environment(settings: Settings) -> str | None:
    """Opt into the stable HTTP conventions and set AutoGen's runtime tracing switch.

    Both are read from the environment by the libraries themselves. Returns the previous value
    of `AUTOGEN_DISABLE_RUNTIME_TRACING`, for `restore_tracing_environment`.
    """
    opt_in = [part.strip() for part in os.environ.get(_SEMCONV_OPT_IN, "").split(",") if part]
    if not {"http", "http/dup"} & set(opt_in):
        os.environ[_SEMCONV_OPT_IN] = ",".join([*opt_in, "http"])

    previous = os.environ.get(_AUTOGEN_RUNTIME_TRACING_OFF)
    os.environ[_AUTOGEN_RUNTIME_TRACING_OFF] = (
        "false" if settings.AUTOGEN_RUNTIME_TRACING else "true"
    )
    return previous


def restore_tracing_environment(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(_AUTOGEN_RUNTIME_TRACING_OFF, None)
    else:
        os.environ[_AUTOGEN_RUNTIME_TRACING_OFF] = previous


def instrument_fastapi(
    app: FastAPI, tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider
) -> None:
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        excluded_urls=",".join(_url_pattern(path) for path in UNTRACED_PATHS),
        exclude_spans=["send", "receive"],
    )
    app.middleware_stack = None


def uninstrument_fastapi(app: FastAPI) -> None:
    FastAPIInstrumentor.uninstrument_app(app)


def _url_pattern(path: str) -> str:
    # The instrumentation matches these against "scheme://host/path", query string excluded.
    return f"^[a-z]+://[^/]+{re.escape(path)}$"
