"""The playground: a chat page at `/playground` that is just another client of `/v1`.

The page is plain HTML, CSS and JavaScript shipped inside the package, so it needs no build
step and no network. It is not behind API-key auth (only `/v1` is): the page holds no data,
and the key a user types stays in the browser and goes out only as a `/v1` bearer header.
Assets are a fixed list rather than a mounted directory, so nothing else in the folder is
served; the CSP lets the page load only its own files and talk only to this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "playground" / "static"

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(prefix="/playground", include_in_schema=False)


@router.get("")
async def playground_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/{asset}")
async def playground_asset(asset: str) -> FileResponse:
    media_type = _ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"There is no playground file {asset!r}.")
    return FileResponse(STATIC_DIR / asset, media_type=media_type, headers=_HEADERS)
