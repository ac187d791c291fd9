"""The application factory: `create_app(settings)` builds the app; its lifespan runs it.

Nothing starts at import. The lifespan builds the served teams and their model clients,
and closes them on the way out; tests build as many apps as they like with their own settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .api import health, routes
from .api.errors import install_error_handlers
from .settings import Settings
from .teams.registry import load_registry

logger = logging.getLogger(__name__)


def _lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.API_KEYS:
            logger.warning("API_KEYS is empty: /v1 is open to anyone who can reach this address")
        registry = load_registry(settings)
        app.state.registry = registry
        app.state.draining = False
        try:
            yield
        finally:
            app.state.draining = True
            await registry.close()

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
    install_error_handlers(app)
    app.include_router(routes.root_router)
    app.include_router(routes.router)
    app.include_router(health.router)
    return app
