"""`Telemetry`: everything the service observes itself with, started and stopped by the lifespan.

Start builds the providers, puts them behind the global providers, sets up logging and the
instruments. Shutdown undoes it in reverse: the heartbeat stops, the app is uninstrumented,
the globals fall back to no-ops, the OTLP log handler goes (so nothing logs into a provider
being shut down), the providers flush and shut down, and only then do the console and file
handlers go, so exporter failures during the final flush are still written somewhere.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from fastapi import FastAPI
from opentelemetry.trace import Tracer

from fastapi_autogen_team.settings import Settings
from fastapi_autogen_team.telemetry import global_providers
from fastapi_autogen_team.telemetry.heartbeat import HeartbeatScheduler, record_heartbeat
from fastapi_autogen_team.telemetry.logs import LogSetup, configure_logging
from fastapi_autogen_team.telemetry.metrics import Instruments, create_instruments
from fastapi_autogen_team.telemetry.providers import (
    SCOPE,
    Providers,
    build_providers,
    service_version,
)
from fastapi_autogen_team.telemetry.tracing import (
    instrument_fastapi,
    restore_tracing_environment,
    set_tracing_environment,
    uninstrument_fastapi,
)

logger = logging.getLogger(__name__)


class Telemetry:
    """One lifespan's telemetry. `tracer` is the service's own; `metrics` its instruments."""

    tracer: Tracer
    metrics: Instruments

    def __init__(
        self,
        settings: Settings,
        providers: Providers,
        log_setup: LogSetup,
        autogen_tracing_env: str | None,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.tracer = providers.tracer.get_tracer(SCOPE, service_version())
        self.metrics = create_instruments(providers.meter.get_meter(SCOPE, service_version()))
        self._log_setup = log_setup
        self._autogen_tracing_env = autogen_tracing_env
        self._apps: list[FastAPI] = []
        self._heartbeat: HeartbeatScheduler | None = None
        self._closed = False

    @classmethod
    def start(cls, settings: Settings) -> Telemetry:
        autogen_tracing_env = set_tracing_environment(settings)
        providers = build_providers(settings)
        log_setup = configure_logging(settings, providers.logger)
        global_providers.attach(providers.tracer, providers.meter, providers.logger)

        if settings.TELEMETRY_ENABLED:
            logger.info(
                "Exporting telemetry over OTLP/HTTP: traces %s, metrics %s, logs %s",
                settings.TRACES_ENDPOINT,
                settings.METRICS_ENDPOINT,
                settings.LOGS_ENDPOINT,
            )
        else:
            logger.info("Telemetry export is off (TELEMETRY_ENABLED=false).")
        return cls(settings, providers, log_setup, autogen_tracing_env)

    def instrument_app(self, app: FastAPI) -> None:
        """Trace the app's requests; call from the lifespan, before the app serves a request."""
        instrument_fastapi(app, self.providers.tracer, self.providers.meter)
        self._apps.append(app)

    def start_heartbeat(self) -> None:
        """Record a heartbeat every `HEARTBEAT_INTERVAL` seconds; needs the running loop."""
        if self._heartbeat is not None:
            raise RuntimeError("The heartbeat is already running; start it once per lifespan.")
        beat = functools.partial(record_heartbeat, self.metrics)
        self._heartbeat = HeartbeatScheduler(self.settings.HEARTBEAT_INTERVAL, beat)
        self._heartbeat.start()

    async def shutdown(self) -> None:
        """Stop everything `start` began; a second call does nothing."""
        if self._closed:
            return
        self._closed = True

        try:
            if self._heartbeat is not None:
                await self._heartbeat.stop()
            for app in self._apps:
                uninstrument_fastapi(app)
            global_providers.detach(self.providers.tracer)

            self._log_setup.remove_otlp_handler()
            await self._shutdown_providers()
        finally:
            self._log_setup.close()
            restore_tracing_environment(self._autogen_tracing_env)

    async def _shutdown_providers(self) -> None:
        # A final export retries within OTEL_EXPORT_TIMEOUT; waiting twice that is generous.
        limit = 2 * self.settings.OTEL_EXPORT_TIMEOUT + 1
        try:
            async with asyncio.timeout(limit):
                await self.providers.shutdown()
        except TimeoutError:
            logger.warning("Telemetry providers did not shut down within %.1f s.", limit)
