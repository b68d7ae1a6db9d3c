"""The FastAPI application: a thin shell over :class:`~emotrace.inference.Recognizer`.

:func:`create_app` builds the server's state (settings, job table, job threads, recognizer pool)
into ``app.state``, where the routes' dependencies (:mod:`emotrace.server.deps`) take it from,
and mounts the routers (:mod:`emotrace.server.routers`). Uploads are the only input: no request
can make the server read a path or fetch a URL. The request gate
(:class:`~emotrace.server.gate.RequestGate`) answers before any body is read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from emotrace import __version__
from emotrace.server.gate import RequestGate
from emotrace.server.jobs import JobRunner, JobStore
from emotrace.server.pool import RecognizerPool
from emotrace.server.routers import health, jobs, pages, predict, stream
from emotrace.server.settings import ServerSettings

log = logging.getLogger("emotrace.server")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The application: ``GET /health``, the ``/v1`` API, the page at ``/``.

    Args:
        settings: the server's settings (default: :class:`ServerSettings` from the
            environment).

    Returns:
        The app; its state (``app.state.settings``, ``.store``, ``.runner``, ``.pool``) is
        built now, the job threads start with its lifespan.

    Example:
        >>> app = create_app(ServerSettings(data_dir="emotrace-data"))  # doctest: +SKIP
        >>> uvicorn.run(app)  # doctest: +SKIP
    """
    settings = settings or ServerSettings()
    app = FastAPI(title="emotrace", version=__version__, lifespan=_lifespan,
                  description="Facial emotion recognition: photos, videos (jobs), live webcam.")
    app.state.settings = settings
    app.state.pool = RecognizerPool(settings)
    app.state.store = JobStore(settings.data_dir)
    app.state.runner = JobRunner(app.state.store, app.state.pool, settings)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(RequestGate, settings=settings)
    app.add_exception_handler(Exception, _internal_error)
    for router in (health.router, predict.router, jobs.router, stream.router, pages.router):
        app.include_router(router)
    app.mount("/static", pages.static_files(), name="static")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the job threads (after the data folder's lock); stop them on the way out."""
    app.state.runner.start()
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(app.state.runner.shutdown)


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    """A bug answers 500 with one line; the traceback goes to the server's log only."""
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)
