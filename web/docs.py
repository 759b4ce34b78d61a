"""The API documentation: Swagger UI from the npm package ``swagger-ui-dist`` (served from
``/vendor/swagger-ui/``, never a CDN) under a strict CSP, and the OpenAPI schema.

FastAPI's own ``/docs`` page loads Swagger UI from a third-party CDN into the gateway's origin and
starts it with an inline script, with no CSP: whoever controls that CDN runs script with an
operator's login. Here the page, its assets and its start-up script (``web/static/docs.js``) all
come from this origin, so the CSP allows no inline script and no other origin. ReDoc is not served.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from gateway.policy import public
from web.routes import STATIC_DIR

__all__ = ["DOCS_CSP", "router"]

# Swagger UI's icons are data: SVGs in its stylesheet; "Try it out" calls this origin only.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache", "X-Frame-Options": "DENY"}
router = APIRouter(include_in_schema=False)


@router.api_route("/docs", methods=["GET", "HEAD"], dependencies=[public()])
async def swagger_ui() -> FileResponse:
    """Swagger UI for the API (public, as the schema is; every operation still needs its credentials)."""
    return FileResponse(STATIC_DIR / "docs.html", headers=HEADERS)


@router.get("/openapi.json", dependencies=[public()])
async def openapi_schema(request: Request) -> JSONResponse:
    """The OpenAPI schema of the API."""
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema, headers={"Cache-Control": "no-cache"})
