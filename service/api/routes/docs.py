"""GET /docs (Swagger UI), /redoc and /openapi.json, served from local files.

FastAPI's defaults load Swagger UI and ReDoc from a CDN, so the pages are blank on a
machine without internet access; the `fastapi-offline` package ships the same assets, which
are served here under /docs-assets. Whether these pages need the API key is a setting
(COREL_DOCS_REQUIRE_KEY, off by default: the schema describes the API, it holds no data).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "mount_docs"]

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"


def mount_docs(app: FastAPI, router: APIRouter) -> None:
    """Add the docs routes to `router` (which carries the key check when docs need it) and
    mount the static assets on the app."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    pages = {
        "/docs": get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        ),
        "/redoc": get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title}: API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        ),
    }
    for path, page in pages.items():
        router.add_api_route(path, _serve(page), include_in_schema=False)


def _serve(page: HTMLResponse) -> Callable[[], Awaitable[HTMLResponse]]:
    async def serve() -> HTMLResponse:
        return page

    return serve
