"""Entry points: `uv run fastapi-autogen-team`, and `app` for `uvicorn ...main:app`.

`app` is created lazily on first access (PEP 562) so importing this module builds nothing;
uvicorn's attribute lookup is that first access.
"""

from __future__ import annotations

import ipaddress
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
        from uvicorn.config import STARTUP_FAILURE

        from .app import create_app

        try:
            settings = _load_settings()
            _check_team_files(settings)  # a bad file: one line, not a lifespan traceback
        except SystemExit as refusal:
            # uvicorn's supervisor restarts a worker that exits any other way, forever.
            print(refusal.code, file=sys.stderr)
            raise SystemExit(STARTUP_FAILURE) from None
        return create_app(settings)
    raise AttributeError(name)


def _refuse_open_public_bind(settings: Settings) -> None:
    host = settings.DEFAULT_HOST
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback or settings.API_KEYS or settings.ALLOW_OPEN_ACCESS:
        return
    sys.exit(
        f"Refusing to serve on {host} with no API keys: anyone who can reach it could spend "
        "your model budget. Set API_KEYS=key1,key2 (clients send 'Authorization: Bearer "
        "<key>'), or set ALLOW_OPEN_ACCESS=true if the network in front already restricts it."
    )


def _check_team_files(settings: Settings) -> None:
    """Loads TEAMS_DIR once before serving, so a bad file stops start-up with one message.

    Inside the lifespan the same error would reach the console wrapped in a traceback. Both
    the console script and `uvicorn ...main:app` (through `__getattr__`) check first.
    """
    if not settings.TEAMS_DIR:
        return
    import asyncio

    from .teams.loader import TeamFileError
    from .teams.registry import load_registry

    try:
        registry = load_registry(settings)
    except TeamFileError as error:
        sys.exit(f"Cannot serve the teams in TEAMS_DIR: {error}")
    asyncio.run(registry.close())


def run() -> None:
    """The console script: serve on DEFAULT_HOST:DEFAULT_PORT."""
    import uvicorn

    from .app import create_app
    from .telemetry.logs import configure_process_logging

    settings = _load_settings()
    _refuse_open_public_bind(settings)
    _check_team_files(settings)
    configure_process_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.DEFAULT_HOST,
        port=settings.DEFAULT_PORT,
        log_config=None,  # uvicorn's records propagate to the service's handlers
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=int(settings.SHUTDOWN_TIMEOUT),
    )
