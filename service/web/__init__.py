"""The web page for people (GET /): static HTML, CSS and plain JavaScript in `static/`.

No build step and nothing from a CDN: the files are served as they are, so the page works
on a machine without internet access. The page and its assets hold no data and need no
API key (a browser cannot send a header when it loads a page); every data call the page
makes goes to the API, which asks for the key as usual, and the page asks the user for it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC", "mount_web"]

STATIC = Path(__file__).parent / "static"
ASSETS_URL = "/web"


def mount_web(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under `/web`."""
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC), name="web")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")
