"""The web page at ``/`` and its files at ``/static`` (no CDN: every asset is served here)."""

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = resources.files("emotrace.server") / "static"
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The page: photos, video jobs, webcam."""
    return HTMLResponse((STATIC / "index.html").read_text())


def static_files() -> StaticFiles:
    """The page's scripts and styles, for ``app.mount("/static", ...)``."""
    return StaticFiles(directory=str(STATIC))
