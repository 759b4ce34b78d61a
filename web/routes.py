"""Serves the browser consoles (static ES modules) and their small config endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from gateway.policy import authenticated, public

STATIC_DIR = Path(__file__).resolve().parent / "static"
router = APIRouter(include_in_schema=False)

# Pages load only our own scripts and styles; media and API calls stay on this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Frame-Options": "DENY"}


@router.get("/", dependencies=[public()])
async def index() -> FileResponse:
    """The operator console (it asks for a login itself)."""
    return FileResponse(STATIC_DIR / "index.html", headers=HEADERS)


@router.get("/static/{name:path}", dependencies=[public()])
async def static(name: str) -> FileResponse:
    """Static assets of the consoles; nothing outside web/static can be named."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers=HEADERS)


@router.get("/api/config", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def console_config(request: Request) -> dict[str, Any]:
    """What the console needs to know: ICE servers for WebRTC, enabled protocols."""
    s = request.app.state.ld.settings
    return {"ice_servers": list(s.webrtc.ice_servers), "webrtc": s.webrtc.enabled, "hls": s.hls.enabled}
