"""Probes: `/healthz` says the process answers; `/readyz` says it can take chat requests."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    """Alive: the event loop answers. Checks no dependency."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request) -> JSONResponse:
    """Ready: teams are loaded and the service is not shutting down."""
    registry = getattr(request.app.state, "registry", None)
    draining = getattr(request.app.state, "draining", False)
    if registry is None or draining:
        status = "draining" if draining else "starting"
        return JSONResponse({"status": status}, status_code=503)
    teams = [served.definition.id for served in registry]
    return JSONResponse({"status": "ready", "teams": teams})
