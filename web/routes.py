"""Serves the browser consoles (static files) from this package."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from gateway.policy import public

STATIC_DIR = Path(__file__).resolve().parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/", dependencies=[public()])
async def index() -> FileResponse:
    """The operator console (it asks for a login itself)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/static/{name:path}", dependencies=[public()])
async def static(name: str) -> FileResponse:
    """Static assets of the consoles; nothing outside web/static can be named."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})
