"""Serves the browser consoles (static ES modules) and the small endpoints only the consoles use."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from acl.identity import Subject
from camera_registry.store import CameraFilter
from gateway.container import services
from gateway.policy import authenticated, incident_rules, public
from gateway.policy.rules import visible_camera_ids
from gateway.routes.params import ZonedSince
from gateway.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
# Third-party browser libraries, installed from the npm registry by scripts/bootstrap.sh (web/package.json).
# Only these files are served: /vendor/<name> -> web/node_modules/<path>.
VENDOR = {
    "hls.mjs": "hls.js/dist/hls.mjs",
    "echarts.mjs": "echarts/dist/echarts.esm.min.mjs",
    "leaflet.mjs": "leaflet/dist/leaflet-src.esm.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "images/layers.png": "leaflet/dist/images/layers.png",
    "images/layers-2x.png": "leaflet/dist/images/layers-2x.png",
    "images/marker-icon.png": "leaflet/dist/images/marker-icon.png",
    "images/marker-icon-2x.png": "leaflet/dist/images/marker-icon-2x.png",
    "images/marker-shadow.png": "leaflet/dist/images/marker-shadow.png",
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-ui/favicon-32x32.png": "swagger-ui-dist/favicon-32x32.png",
}
router = APIRouter(include_in_schema=False)

# Pages load only our own scripts and styles; media and API calls stay on this origin. The one
# exception is the map's tile server (settings.console.map_tile_url): its origin may serve images.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:{tiles}; "
    "media-src 'self' blob:; connect-src 'self'{peers}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP.format(tiles="", peers=""),
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
}


def page_headers(settings: Settings, peers: Iterable[str] = ()) -> dict[str, str]:
    """Headers of a console page: the strict CSP, widened only by the configured tile server's origin
    (images) and, in a cluster, the other nodes' origins (connections: a camera request redirected
    to the node that pulls the camera)."""
    url = settings.console.map_tile_url
    peer_src = "".join(f" {p}" for p in sorted(peers))
    if not url and not peer_src:
        return HEADERS
    tiles = ""
    if url:
        u = urlsplit(url)
        tiles = f" {u.scheme}://{u.netloc.replace('{s}', '*')}"  # {s}: Leaflet's subdomains a, b, c
    return {**HEADERS, "Content-Security-Policy": CSP.format(tiles=tiles, peers=peer_src)}


async def _peer_origins(request: Request) -> list[str]:
    """The cluster's other node origins (live now) that differ from this page's origin; none without a cluster."""
    node = services(request).cluster
    if node is None or node.origins is None:
        return []
    here = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return [o for o in await node.origins.get() if o != here]


@router.api_route("/", methods=["GET", "HEAD"], dependencies=[public()])
async def index(request: Request) -> FileResponse:
    """The operator console (it asks for a login itself)."""
    headers = page_headers(services(request).settings, await _peer_origins(request))
    return FileResponse(STATIC_DIR / "index.html", headers=headers)


@router.api_route("/admin", methods=["GET", "HEAD"], dependencies=[public()])
async def admin_console() -> FileResponse:
    """The security-admin console (it asks for a login itself; the API enforces every role)."""
    return FileResponse(STATIC_DIR / "admin.html", headers=HEADERS)


@router.api_route("/static/{name:path}", methods=["GET", "HEAD"], dependencies=[public()])
async def static(name: str) -> FileResponse:
    """Static assets of the consoles; nothing outside web/static can be named."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers=HEADERS)


@router.api_route("/vendor/{name:path}", methods=["GET", "HEAD"], dependencies=[public()])
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
    """What the console needs to know: ICE servers for WebRTC, enabled protocols, the map's tile
    server, and the departments an incident can be dispatched to (id, name, level)."""
    ld = services(request)
    s = ld.settings
    state = getattr(ld.authorizer, "state", None)
    depts = [] if state is None else sorted(state.departments.values(), key=lambda d: d.id)
    return {
        "ice_servers": list(s.webrtc.ice_servers),
        "webrtc": s.webrtc.enabled,
        "hls": s.hls.enabled,
        "snapshot_width": max(s.snapshot.widths),
        "map": {
            "tile_url": s.console.map_tile_url,
            "attribution": s.console.map_attribution,
            "max_zoom": s.console.map_max_zoom,
            "vehicle_refresh_s": s.console.vehicle_refresh_s,
        },
        "departments": [{"id": d.id, "name": d.name, "level": getattr(d.level, "value", str(d.level))} for d in depts],
    }


@router.get("/api/console/district", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def district_boundary(request: Request) -> dict[str, Any]:
    """The district boundary for the map (the GeoJSON of ``acl.district_geojson``); an empty
    FeatureCollection when none is configured."""
    ld = services(request)
    path = ld.settings.acl.district_geojson
    if path is None:
        return {"type": "FeatureCollection", "features": []}
    try:
        doc = await asyncio.to_thread(_district_document, Path(path))
    except (OSError, ValueError):
        raise HTTPException(503, "the district boundary file cannot be read") from None
    return dict(doc)


def _district_document(path: Path) -> dict[str, Any]:
    """The boundary file's GeoJSON, parsed once per version of the file."""
    return _parsed_geojson(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _parsed_geojson(path: str, _mtime_ns: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return doc


@router.get("/api/console/map/cameras", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def map_cameras(request: Request) -> dict[str, Any]:
    """Fixed cameras with a position that the caller may view, compact for a map of 20,000:
    ``[id, name, lat, lon, status, area]`` rows. Cameras on vehicles move with them (``/api/vehicles``)."""
    ld = services(request)
    visible = visible_camera_ids(ld.authorizer, request.state.subject)
    cams, _ = await ld.store.search(CameraFilter(), only_ids=visible, limit=1 << 30)
    rows = [
        [c.id, c.name, c.lat, c.lon, c.status.value, c.area]
        for c in cams
        if c.lat is not None and c.lon is not None and not c.vehicle_id
    ]
    return {"fields": ["id", "name", "lat", "lon", "status", "area"], "cameras": rows}


@router.get("/api/console/dashboard", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def dashboard(request: Request, since: ZonedSince = None) -> dict[str, Any]:
    """A supervisor's overview, over what the caller may see: incidents by sub-district and by
    department (total, open, handled %, overdue), totals, and cameras offline per sub-district."""
    ld = services(request)
    subject: Subject = request.state.subject
    rules = incident_rules(request)
    stats = await rules.flow.stats(since, lambda i: rules.may_see(subject, i))
    totals = {"total": 0, "open": 0, "handled": 0, "overdue": 0}
    for b in stats["by_area"].values():
        for k in totals:
            totals[k] += int(b[k])
    visible = visible_camera_ids(ld.authorizer, subject)
    cams, _ = await ld.store.search(CameraFilter(), only_ids=visible, limit=1 << 30)
    by_area: dict[str, dict[str, int]] = {}
    for c in cams:
        b = by_area.setdefault(c.area or "-", {"total": 0, "offline": 0})
        b["total"] += 1
        b["offline"] += c.status.value in ("offline", "error")
    return {
        "incidents": {
            **totals,
            "handled_pct": round(100 * totals["handled"] / totals["total"], 1) if totals["total"] else 0.0,
            "by_area": stats["by_area"],
            "by_department": stats["by_department"],
        },
        "cameras": {
            "total": len(cams),
            "offline": sum(b["offline"] for b in by_area.values()),
            "by_area": dict(sorted(by_area.items())),
        },
    }


@router.get("/api/console/facets", dependencies=[authenticated()], include_in_schema=True, tags=["web"])
async def camera_facets(request: Request) -> dict[str, Any]:
    """What the console's filter menus offer: the sub-districts, stations, departments (with their
    names), kinds and statuses of the cameras the caller may view, each with how many cameras have
    it (nothing about other cameras)."""
    ld = services(request)
    visible = visible_camera_ids(ld.authorizer, request.state.subject)
    cams, total = await ld.store.search(CameraFilter(), only_ids=visible, limit=1 << 30)

    def counted(values: Counter[str]) -> list[dict[str, Any]]:
        return [{"value": v, "count": n} for v, n in sorted(values.items()) if v]

    # Departments by name as well as id: a duty officer reads 七宝派出所, not pcs-qibao.
    state = getattr(ld.authorizer, "state", None)
    names = {} if state is None else {d.id: d.name for d in state.departments.values()}
    departments = [
        {**d, "name": names.get(d["value"], d["value"])} for d in counted(Counter(c.department for c in cams))
    ]
    return {
        "total": total,
        "areas": counted(Counter(c.area for c in cams)),
        "stations": counted(Counter(c.station for c in cams)),
        "departments": departments,
        "kinds": counted(Counter(c.kind.value for c in cams)),
        "statuses": counted(Counter(c.status.value for c in cams)),
    }
