"""The process-wide OpenTelemetry providers, which forward to the running lifespan's SDK providers.

OpenTelemetry lets a process set each global provider once. A process can run several
lifespans one after another (every test that starts the app does), and each builds fresh SDK
providers and shuts them down on exit. So the globals set here are switchboards, installed once,
that forward to whichever lifespan is running, or to no-op implementations between lifespans.

Tracers are resolved at every span, because libraries keep the tracers they get (AutoGen, the
API's proxy tracers); meters and loggers are resolved when they are obtained, which is enough for
the instrumentation that obtains them inside a lifespan.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.util.types import Attributes

logger = logging.getLogger(__name__)

_NO_TRACER = trace.NoOpTracer()


class _SwitchTracerProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.target: trace.TracerProvider | None = None

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        scope = (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        return _SwitchTracer(self, scope)


class _SwitchTracer(trace.Tracer):
    def __init__(self, switch: _SwitchTracerProvider, scope: Sequence[Any]) -> None:
        self._switch = switch
        self._scope = scope
        self._resolved: tuple[trace.TracerProvider, trace.Tracer] | None = None

    def _current(self) -> trace.Tracer:
        target = self._switch.target
        if target is None:
            return _NO_TRACER
        resolved = self._resolved
        if resolved is None or resolved[0] is not target:
            resolved = (target, target.get_tracer(*self._scope))
            self._resolved = resolved
        return resolved[1]

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_as_current_span(*args, **kwargs)


class _SwitchMeterProvider(metrics.MeterProvider):
    def __init__(self) -> None:
        self.target: metrics.MeterProvider | None = None

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> metrics.Meter:
        if self.target is None:
            return metrics.NoOpMeter(name, version, schema_url)
        return self.target.get_meter(name, version, schema_url, attributes)


class _SwitchLoggerProvider(_logs.LoggerProvider):
    def __init__(self) -> None:
        self.target: _logs.LoggerProvider | None = None

    def get_logger(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> _logs.Logger:
        if self.target is None:
            return _logs.NoOpLogger(name, version, schema_url, attributes)
        return self.target.get_logger(name, version, schema_url, attributes)


_TRACERS = _SwitchTracerProvider()
_METERS = _SwitchMeterProvider()
_LOGGERS = _SwitchLoggerProvider()
_install_lock = threading.Lock()
_installed = False


def attach(
    tracer_provider: trace.TracerProvider,
    meter_provider: metrics.MeterProvider,
    logger_provider: _logs.LoggerProvider | None,
) -> None:
    """Make these the providers behind the globals until `detach`."""
    _install_once()
    _TRACERS.target = tracer_provider
    _METERS.target = meter_provider
    _LOGGERS.target = logger_provider


def service_tracer(name: str, version: str) -> trace.Tracer:
    """A tracer that follows the running lifespan even when the global belongs to someone else."""
    return _TRACERS.get_tracer(name, version)


def detach(tracer_provider: trace.TracerProvider) -> None:
    """Fall back to no-ops, unless a newer lifespan has attached its providers since."""
    if _TRACERS.target is tracer_provider:
        _TRACERS.target = None
        _METERS.target = None
        _LOGGERS.target = None


def _install_once() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        trace.set_tracer_provider(_TRACERS)
        metrics.set_meter_provider(_METERS)
        _logs.set_logger_provider(_LOGGERS)

    if trace.get_tracer_provider() is not _TRACERS:
        # Someone (e.g. `opentelemetry-instrument`) set one first; the globals stay theirs.
        logger.warning(
            "A global tracer provider was already set, so AutoGen's spans go there; "
            "the service's own spans, metrics and logs still use its own providers."
        )
