"""``GET /health``: up, with the model and the version (no token needed)."""

from fastapi import APIRouter

from emotrace import __version__
from emotrace.server.deps import Pool
from emotrace.server.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
async def health(pool: Pool) -> Health:
    """The server is up: its default model and emotrace's version."""
    return Health(status="ok", model=pool.recognizer.classifier.name, version=__version__)
