"""Entry points: `uv run fastapi-autogen-team`, and `app` for `uvicorn ...main:app`.

`app` is created lazily on first access (PEP 562) so importing this module builds nothing;
uvicorn's attribute lookup is that first access.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import ValidationError

from .settings import Settings, describe_error


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        sys.exit(describe_error(error))


def __getattr__(name: str) -> Any:
    if name == "app":
        from .app import create_app

        return create_app(_load_settings())
    raise AttributeError(name)


def run() -> None:
    """The console script: serve on DEFAULT_HOST:DEFAULT_PORT."""
    import uvicorn

    from .app import create_app

    settings = _load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.DEFAULT_HOST,
        port=settings.DEFAULT_PORT,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=10,
    )
