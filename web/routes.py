"""Serves the browser consoles (static ES modules) and the small endpoints only the consoles use."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from acl.identity import Subject
from camera_registry.store import CameraFilter
from gateway.policy import authenticated, public

STATIC_DIR = Path(__file__).resolve().parent / "static"
NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
# Third-party browser libraries, installed from the npm registry by scripts/bootstrap.sh (web/package.json).
# Only these files are served: /vendor/<name> -> web/node_modules/<path>.
VENDOR = {
    "hls.mjs": "hls.js/dist/hls.mjs",
    "leaflet.mjs": "leaflet/dist/leaflet-src.esm.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "images/layers.png": "leaflet/dist/images/layers.png",
    "images/layers-2x.png": "leaflet/dist/images/layers-2x.png",
    "images/marker-icon.png": "leaflet/dist/images/marker-icon.png",
    "images/marker-icon-2x.png": "leaflet/dist/images/marker-icon-2x.png",
    "images/marker-shadow.png": "leaflet/dist/images/marker-shadow.png",
}
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


@router.get("/admin", dependencies=[public()])
async def admin_console() -> FileResponse:
    """The security-admin console (it asks for a login itself; the API enforces every role)."""
    return FileResponse(STATIC_DIR / "admin.html", headers=HEADERS)


@router.get("/static/{name:path}", dependencies=[public()])
async def static(name: str) -> FileResponse:
    """Static assets of the consoles; nothing outside web/static can be named."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers=HEADERS)


@router.get("/vendor/{name:path}", dependencies=[public()])
async def vendor(name: str) -> FileResponse:
    """A browser library from web/node_modules (installed by ``make demo``/``make test``); only listed files."""
    rel = VENDOR.get(name)
    if rel is None:
        raise HTTPException(404, "not found")
    path = NODE_MODULES / rel
    if not path.is_file():
        raise HTTPException(404, f"{name} is not installed: run scripts/bootstrap.sh (npm ci in web/)")
    return FileResponse(path, headers=HEADERS)


@router.get("/api/config", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def console_config(request: Request) -> dict[str, Any]:
    """What the console needs to know: ICE servers for WebRTC, enabled protocols."""
    s = request.app.state.ld.settings
    return {"ice_servers": list(s.webrtc.ice_servers), "webrtc": s.webrtc.enabled, "hls": s.hls.enabled}


@router.get("/api/console/facets", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def camera_facets(request: Request) -> dict[str, Any]:
    """What the console's filter menus offer: the sub-districts, departments, kinds and statuses of the
    cameras the caller may view, each with how many cameras have it (nothing about other cameras)."""
    ld = request.app.state.ld
    subject: Subject = request.state.subject
    visible = None if subject.is_admin else ld.authorizer.visible_cameras(subject, "view_snapshot")
    cams, total = await ld.store.search(CameraFilter(), only_ids=visible, limit=1 << 30)

    def counted(values: Counter[str]) -> list[dict[str, Any]]:
        return [{"value": v, "count": n} for v, n in sorted(values.items()) if v]

    return {
        "total": total,
        "areas": counted(Counter(c.area for c in cams)),
        "departments": counted(Counter(c.department for c in cams)),
        "kinds": counted(Counter(c.kind.value for c in cams)),
        "statuses": counted(Counter(c.status.value for c in cams)),
    }
