"""Dependencies of the routes: the server's state, taken from ``app.state`` (set by
:func:`~emotrace.server.app.create_app`), the token, and the job a path names."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from emotrace.server.gate import same_token
from emotrace.server.jobs import JobRunner, JobStore, valid_job_id
from emotrace.server.pool import RecognizerPool
from emotrace.server.settings import ServerSettings


async def get_settings(connection: HTTPConnection) -> ServerSettings:
    """The server's :class:`ServerSettings` (``app.state.settings``)."""
    return connection.app.state.settings


async def get_store(connection: HTTPConnection) -> JobStore:
    """The job table (``app.state.store``)."""
    return connection.app.state.store


async def get_runner(connection: HTTPConnection) -> JobRunner:
    """The threads that run jobs (``app.state.runner``)."""
    return connection.app.state.runner


async def get_pool(connection: HTTPConnection) -> RecognizerPool:
    """The recognizers, worker threads and memory budget (``app.state.pool``)."""
    return connection.app.state.pool


Settings = Annotated[ServerSettings, Depends(get_settings)]
Store = Annotated[JobStore, Depends(get_store)]
Runner = Annotated[JobRunner, Depends(get_runner)]
Pool = Annotated[RecognizerPool, Depends(get_pool)]
_bearer = HTTPBearer(auto_error=False)


async def authorised(settings: Settings, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Declares the token in OpenAPI; :class:`~emotrace.server.gate.RequestGate` checked it
    before the body."""
    if settings.token is None:
        return
    if credentials is None or not same_token(credentials.credentials, settings.token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def existing_job(job_id: str, store: Store) -> dict[str, Any]:
    """The job row ``job_id`` names; 404 for an unknown or malformed id and for a job whose
    upload is still being written."""
    job = store.get(job_id) if valid_job_id(job_id) else None
    if job is None or job["status"] == "uploading":
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
    return job


ExistingJob = Annotated[dict[str, Any], Depends(existing_job)]


async def finished_job(job: ExistingJob) -> dict[str, Any]:
    """The job row, once it is done (409 before)."""
    if job["status"] != "done":
        raise HTTPException(status.HTTP_409_CONFLICT, f"the job is {job['status']}, not done")
    return job


FinishedJob = Annotated[dict[str, Any], Depends(finished_job)]
