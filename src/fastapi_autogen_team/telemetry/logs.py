"""Logging for one lifespan: console, an optional rotating file, and OTLP export.

All three handlers sit on the root logger and nowhere else, so a record reaches each
destination once. They are named, and setting up again first removes any named handler an
earlier setup left behind, so repeated start-ups (tests) never stack duplicates.

`uv run fastapi-autogen-team` owns logging for the whole process instead: `main.run` installs
console and file handlers once (`configure_process_logging`) and turns uvicorn's own logging
config off, so uvicorn's lines, including those before the lifespan starts and after it ends,
propagate to the same handlers; a lifespan then adds and removes only the OTLP handler.
Under plain `uvicorn ...:app`, uvicorn's own loggers do not propagate; a lifespan gives them
its file and OTLP handlers too (not its console: uvicorn prints them there already), so the
access log and server errors reach every destination once, from start-up's end to shutdown.

The OTLP handler is the service's own rather than the SDK's `LoggingHandler`, which is
deprecated in opentelemetry-sdk 1.45. It drops records made while OpenTelemetry is exporting
(instrumentation suppressed) and records of the `opentelemetry` loggers: an exporter that
cannot reach its collector must not feed its own complaints back into the failing pipeline.
Those complaints are also rate-limited, since every failed export logs one.

Libraries log message text below WARNING (AutoGen's runtime and events loggers at INFO, the
OpenAI client and sse-starlette at DEBUG), so unless CAPTURE_CONTENT is on, the OTLP handler
exports records below WARNING only from loggers known to log no content: the service's own,
whose lines never carry message text, and uvicorn's. Console and file keep everything.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from opentelemetry import _logs, context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.semconv.attributes.code_attributes import (
    CODE_FILE_PATH,
    CODE_FUNCTION_NAME,
    CODE_LINE_NUMBER,
)

from fastapi_autogen_team.settings import Settings

FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[trace_id=%(otel_trace_id)s span_id=%(otel_span_id)s] %(message)s"
)
HANDLER_PREFIX = "fastapi_autogen_team."
PROCESS_HANDLER_PREFIX = HANDLER_PREFIX + "process."
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5

# Chatty below WARNING: autogen_core logs every message and chunk, autogen_core.events full
# prompts and replies, apscheduler two lines per job run, httpx2 a line per model call (the
# run's own line already says how many calls it made; it cost ~0.1 ms of CPU per call).
QUIET_LOGGERS = (
    "autogen_core",
    "autogen_core.events",
    "autogen_agentchat",
    "apscheduler",
    "httpx2",
)

# Each logs once per failed export; with no collector that is one line per signal per interval.
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)
EXPORT_LOG_INTERVAL = 300.0  # seconds between two lines with the same message

# Exported below WARNING with CAPTURE_CONTENT off; any other logger's records might hold content.
CONTENT_FREE_LOGGERS = ("fastapi_autogen_team", "uvicorn")

# Plain `uvicorn ...:app` sets these not to propagate, so their lines (errors, the access log)
# would stop at uvicorn's console handler. While a lifespan runs they also get its file and
# OTLP handlers; their console stays uvicorn's own.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.access")

_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_STANDARD_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "otel_trace_id",
    "otel_span_id",
}


class TraceContextFilter(logging.Filter):
    """Adds the current trace and span ids to a record, for the text formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.otel_trace_id = trace.format_trace_id(span_context.trace_id)
            record.otel_span_id = trace.format_span_id(span_context.span_id)
        else:
            record.otel_trace_id = record.otel_span_id = "-"
        return True


class RateLimitFilter(logging.Filter):
    """Lets a message through once per `interval` seconds and counts the ones it holds back."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[str, object], float] = {}
        self._held: dict[tuple[str, object], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)

        if held:
            record.msg = f"{record.msg} ({held} more like this since the last one)"
        return True


class OtlpHandler(logging.Handler):
    """Emits standard-library records as OpenTelemetry log records, in the current context."""

    def __init__(self, provider: _logs.LoggerProvider, *, export_content: bool = False) -> None:
        super().__init__()
        self._provider = provider
        self._export_content = export_content

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry") or not is_instrumentation_enabled():
            return
        if not (self._export_content or _content_free(record)):
            return
        try:
            self._provider.get_logger(record.name).emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=context.get_current(),
                severity_number=_severity_number(record.levelno),
                severity_text=_SEVERITY_TEXT.get(record.levelname, record.levelname),
                body=record.getMessage(),
                attributes=_attributes(record),
                exception=record.exc_info[1] if record.exc_info else None,
            )
        except Exception:
            self.handleError(record)


@dataclass
class LogSetup:
    """What `configure_logging` changed, so that `close` can undo exactly that."""

    rate_limit: RateLimitFilter
    handlers: list[logging.Handler] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)

    def remove_otlp_handler(self) -> None:
        for handler in [h for h in self.handlers if isinstance(h, OtlpHandler)]:
            _remove(handler)
            self.handlers.remove(handler)

    def close(self) -> None:
        for handler in self.handlers:
            _remove(handler)
        self.handlers.clear()

        for name in EXPORT_LOGGERS:
            logging.getLogger(name).removeFilter(self.rate_limit)
        logging.getLogger(AUTOGEN_RUNTIME_LOGGER).removeFilter(drop_cancelled_runs)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        self.levels.clear()


def configure_process_logging(settings: Settings) -> None:
    """Console and file handlers for the rest of the process, before uvicorn starts."""
    root = logging.getLogger()
    for name, handler in _text_handlers(settings):
        handler.set_name(PROCESS_HANDLER_PREFIX + name)
        root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL)


def configure_logging(settings: Settings, provider: _logs.LoggerProvider | None) -> LogSetup:
    _remove_leftover_handlers()
    setup = LogSetup(RateLimitFilter(EXPORT_LOG_INTERVAL))

    owned_by_process = any(
        (handler.get_name() or "").startswith(PROCESS_HANDLER_PREFIX)
        for handler in logging.getLogger().handlers
    )
    handlers = [] if owned_by_process else _text_handlers(settings)
    if provider is not None:
        otlp = OtlpHandler(provider, export_content=settings.CAPTURE_CONTENT)
        handlers.append(("otlp", otlp))

    root = logging.getLogger()
    uvicorn_loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    for name, handler in handlers:
        handler.set_name(HANDLER_PREFIX + name)
        root.addHandler(handler)
        setup.handlers.append(handler)
        if name != "console":
            for logger in uvicorn_loggers:
                if not logger.propagate:
                    logger.addHandler(handler)

    _set_levels(settings, setup)
    for name in EXPORT_LOGGERS:
        logging.getLogger(name).addFilter(setup.rate_limit)
    logging.getLogger(AUTOGEN_RUNTIME_LOGGER).addFilter(drop_cancelled_runs)
    return setup


AUTOGEN_RUNTIME_LOGGER = "autogen_core"


def drop_cancelled_runs(record: logging.LogRecord) -> bool:
    """A client that leaves cancels its run; AutoGen's runtime logs that as an ERROR with a
    traceback per agent, which lets any client flood the logs. It is not an error here."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def _text_handlers(settings: Settings) -> list[tuple[str, logging.Handler]]:
    formatter = logging.Formatter(FORMAT)
    handlers: list[tuple[str, logging.Handler]] = [("console", logging.StreamHandler())]
    if settings.LOG_FILE:
        handlers.append(("file", _file_handler(settings.LOG_FILE)))
    for _, handler in handlers:
        handler.addFilter(TraceContextFilter())
        handler.setFormatter(formatter)
    return handlers


def _file_handler(path: str) -> logging.Handler:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return RotatingFileHandler(
        path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8", delay=True
    )


def _set_levels(settings: Settings, setup: LogSetup) -> None:
    levels = {"": getattr(logging, settings.LOG_LEVEL)}
    if settings.LOG_LEVEL != "DEBUG":
        levels.update(dict.fromkeys(QUIET_LOGGERS, logging.WARNING))
    for name, level in levels.items():
        target = logging.getLogger(name)
        setup.levels[name] = target.level
        target.setLevel(level)


def _remove_leftover_handlers() -> None:
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in UVICORN_LOGGERS)]
    for handler in dict.fromkeys(h for logger in loggers for h in logger.handlers):
        name = handler.get_name() or ""
        if name.startswith(HANDLER_PREFIX) and not name.startswith(PROCESS_HANDLER_PREFIX):
            _remove(handler)


def _remove(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    for name in UVICORN_LOGGERS:
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def _content_free(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
        return True
    return any(
        record.name == name or record.name.startswith(f"{name}.") for name in CONTENT_FREE_LOGGERS
    )


def _severity_number(levelno: int) -> _logs.SeverityNumber:
    if levelno <= logging.DEBUG:
        return _logs.SeverityNumber.DEBUG
    if levelno <= logging.INFO:
        return _logs.SeverityNumber.INFO
    if levelno <= logging.WARNING:
        return _logs.SeverityNumber.WARN
    if levelno <= logging.ERROR:
        return _logs.SeverityNumber.ERROR
    return _logs.SeverityNumber.FATAL


def _attributes(record: logging.LogRecord) -> dict[str, Any]:
    extra = {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_RECORD_KEYS and isinstance(value, str | bool | int | float)
    }
    return {
        **extra,
        CODE_FILE_PATH: record.pathname,
        CODE_FUNCTION_NAME: record.funcName,
        CODE_LINE_NUMBER: record.lineno,
    }
