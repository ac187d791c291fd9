"""The three SDK providers of one lifespan, their OTLP/HTTP exporters, and their shutdown.

Every exporter gets `OTEL_EXPORT_TIMEOUT` seconds: with no collector listening, a flush then
gives up after about that long instead of the exporter's default 10 s per attempt, and the
three providers shut down side by side, so stopping the service stays bounded.

With `TELEMETRY_ENABLED=false` no exporter is built. Spans are still started (unsampled), so
log lines keep their trace ids; metric instruments record into a provider with no reader; and
there is no log provider at all.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import uuid
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.semconv.attributes.service_attributes import (
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    SERVICE_VERSION,
)

from fastapi_autogen_team.settings import Settings

PACKAGE = "fastapi-autogen-team"

# The instrumentation scope of the service's own spans, metrics and log records.
SCOPE = "fastapi_autogen_team"


@functools.cache
def instance_id() -> str:
    """This process's `service.instance.id`: the same for every lifespan it runs."""
    return str(uuid.uuid4())


@functools.cache
def service_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def build_resource(settings: Settings) -> Resource:
    return Resource.create(
        {
            SERVICE_NAME: settings.APP_NAME,
            SERVICE_VERSION: service_version(),
            SERVICE_INSTANCE_ID: instance_id(),
        }
    )


@dataclass(frozen=True)
class Providers:
    tracer: TracerProvider
    meter: MeterProvider
    logger: LoggerProvider | None

    async def shutdown(self) -> None:
        """Flush and shut down all three at once, each in a worker thread (they block)."""
        closers = [self.tracer.shutdown, self.meter.shutdown]
        if self.logger is not None:
            closers.append(self.logger.shutdown)
        await asyncio.gather(*(asyncio.to_thread(close) for close in closers))


def build_providers(settings: Settings) -> Providers:
    resource = build_resource(settings)
    if not settings.TELEMETRY_ENABLED:
        return Providers(
            tracer=TracerProvider(sampler=ALWAYS_OFF, resource=resource, shutdown_on_exit=False),
            meter=MeterProvider(resource=resource, shutdown_on_exit=False),
            logger=None,
        )
    return Providers(
        tracer=_tracer_provider(settings, resource),
        meter=_meter_provider(settings, resource),
        logger=_logger_provider(settings, resource),
    )


def _tracer_provider(settings: Settings, resource: Resource) -> TracerProvider:
    exporter = OTLPSpanExporter(
        endpoint=settings.TRACES_ENDPOINT, timeout=settings.OTEL_EXPORT_TIMEOUT
    )
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, export_timeout_millis=_millis(settings))
    )
    return provider


def _meter_provider(settings: Settings, resource: Resource) -> MeterProvider:
    exporter = OTLPMetricExporter(
        endpoint=settings.METRICS_ENDPOINT, timeout=settings.OTEL_EXPORT_TIMEOUT
    )
    reader = PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.METRICS_EXPORT_INTERVAL,
        export_timeout_millis=_millis(settings),
    )
    return MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)


def _logger_provider(settings: Settings, resource: Resource) -> LoggerProvider:
    exporter = OTLPLogExporter(
        endpoint=settings.LOGS_ENDPOINT, timeout=settings.OTEL_EXPORT_TIMEOUT
    )
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, export_timeout_millis=_millis(settings))
    )
    return provider


def _millis(settings: Settings) -> float:
    return settings.OTEL_EXPORT_TIMEOUT * 1000
