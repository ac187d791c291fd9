"""The application factory: `create_app(settings)` builds the app; its lifespan runs it.

Nothing starts at import. The lifespan builds the served teams and their model clients,
and closes them on the way out; tests build as many apps as they like with their own settings.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .api import health, playground, routes
from .api.errors import install_error_handlers
from .api.limits import BodySizeLimit
from .errors import ServiceUnavailable
from .settings import Settings
from .shutdown import SHUTTING_DOWN, drain_on_signals
from .streaming import RunTracker
from .teams.registry import load_registry
from .telemetry import Telemetry

logger = logging.getLogger(__name__)


def _lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            telemetry = Telemetry.start(settings)
            stack.push_async_callback(telemetry.shutdown)
            telemetry.instrument_app(app)
            telemetry.start_heartbeat()
            if not settings.API_KEYS:
                logger.warning("API_KEYS is empty: /v1 is open to anyone who can reach it")
            registry = load_registry(settings)
            stack.push_async_callback(registry.close)
            runs = RunTracker(settings.MAX_CONCURRENT_RUNS)
            app.state.telemetry, app.state.registry, app.state.runs = telemetry, registry, runs
            restore_signals = drain_on_signals(app.state, runs, settings.SHUTDOWN_GRACE)
            # What start-up built lives as long as the process; frozen, full collections stop
            # rescanning it (they paused streams for ~0.1 s at a time under load).
            gc.collect()
            gc.freeze()
            stack.callback(gc.unfreeze)
            try:
                yield
            finally:
                app.state.draining = True
                restore_signals()
                runs.abort_all(ServiceUnavailable(SHUTTING_DOWN))
                await runs.wait_all(grace=2.0)

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title=settings.APP_NAME,
        description="OpenAI-compatible chat completions answered by AutoGen agent teams.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    app.state.registry = None
    app.state.draining = False
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, limit=settings.MAX_REQUEST_BYTES)
    if settings.ALLOWED_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.ALLOWED_ORIGINS),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.include_router(routes.root_router)
    app.include_router(routes.router)
    app.include_router(health.router)
    app.include_router(playground.router)
    return app
