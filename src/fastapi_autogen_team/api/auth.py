"""Bearer-key authentication for `/v1/*` when API_KEYS is set."""

from __future__ import annotations

import hmac

from fastapi import Request

from ..errors import AuthenticationFailed


def _matches_any(candidate: bytes, keys: tuple[str, ...]) -> bool:
    # Compare against every key, so the time taken says nothing about which one was close.
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key.encode())
    return found


async def require_api_key(request: Request) -> None:
    keys: tuple[str, ...] = request.app.state.settings.API_KEYS
    if not keys:
        return
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches_any(credential.strip().encode(), keys):
        raise AuthenticationFailed(
            "Incorrect API key provided.", headers={"WWW-Authenticate": "Bearer"}
        )
