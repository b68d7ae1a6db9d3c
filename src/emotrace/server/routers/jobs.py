"""``/v1/jobs``: video jobs (post, list, progress, results, delete)."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile, status
from fastapi.responses import FileResponse

from emotrace.cards import SHIPPED_MODELS
from emotrace.inference.sources import SNIFF_BYTES, VIDEO_FORMAT_NAMES, sniff_video
from emotrace.server.deps import (
    ExistingJob,
    FinishedJob,
    Runner,
    Settings,
    Store,
    authorised,
)
from emotrace.server.jobs import RESULT_FILES, public_job
from emotrace.server.schemas import Job, JobCreated, VideoSummary, error_responses
from emotrace.server.settings import MB
from emotrace.server.uploads import copy_upload, display_name

router = APIRouter(prefix="/v1/jobs", tags=["video jobs"], dependencies=[Depends(authorised)])
ShippedModel = Literal[tuple(SHIPPED_MODELS)]  # type: ignore[valid-type]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobCreated,
             responses=error_responses(408, 413, 415, 429))
async def create_job(
        file: Annotated[UploadFile, File(description="a video")], store: Store,
        runner: Runner, settings: Settings,
        annotate: Annotated[bool, Query(description="write the annotated video (the slowest "
                                                    "part of a job)")] = True,
        every: Annotated[int, Query(ge=1, le=1000, description="process every N-th "
                                                               "frame")] = 1,
        model: Annotated[ShippedModel | None, Query(
            description="a shipped model (default: the server's)")] = None,
) -> JobCreated:
    """Queue a video; poll ``GET /v1/jobs/{id}`` for its progress."""
    if file.size is not None and file.size > settings.max_video_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"the video is larger than {settings.max_video_bytes // MB} MB")
    suffix = sniff_video(await file.read(SNIFF_BYTES))
    if suffix is None:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"not a video emotrace reads ({VIDEO_FORMAT_NAMES})")
    await file.seek(0)
    name = display_name(file.filename, f"video{suffix}")
    reserved = store.reserve(name, suffix, settings.max_queued_jobs,
                             {"annotate": annotate, "every": every, "model": model})
    if reserved is None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"{settings.max_queued_jobs} jobs are already queued; try later",
                            headers={"Retry-After": "30"})
    job_id, path = reserved
    try:
        await anyio.to_thread.run_sync(copy_upload, file.file, path)
    except BaseException:
        store.delete(job_id)
        raise
    store.enqueue(job_id)
    runner.notify()
    return JobCreated(id=job_id, status="queued")


@router.get("", response_model=list[Job], responses=error_responses())
def list_jobs(store: Store, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[Job]:
    """The most recent jobs, newest first."""
    return [public_job(job) for job in store.recent(limit)]


@router.get("/{job_id}", response_model=Job, responses=error_responses(404))
def get_job(job: ExistingJob) -> Job:
    """A job's status, options and progress (with the seconds left while it runs)."""
    return public_job(job)


def _result_route(kind: str) -> Callable[..., FileResponse]:
    """The route that serves the result file ``kind`` of a done job (:data:`RESULT_FILES`)."""
    result = RESULT_FILES[kind]

    def serve_result(job_id: str, job: FinishedJob, store: Store) -> FileResponse:
        path = store.files(job_id, job).result(kind)
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"the job has no {kind}")
        return FileResponse(path, media_type=result.media_type,
                            filename=result.download.format(stem=Path(job["filename"]).stem),
                            content_disposition_type="inline" if result.inline else "attachment")

    return serve_result


def _add_result_routes() -> None:
    """``GET /v1/jobs/{id}/ROUTE`` for each of :data:`RESULT_FILES` (the summary's JSON declared
    by :class:`~emotrace.server.schemas.VideoSummary`)."""
    for kind, result in RESULT_FILES.items():
        ok: dict[str, Any] = {"description": result.description,
                              "content": {result.media_type: {}}}
        if kind == "summary":
            ok["model"] = VideoSummary
        router.add_api_route(f"/{{job_id}}/{result.route}", _result_route(kind), methods=["GET"],
                             response_class=FileResponse, description=result.description,
                             name=f"job_{kind}", summary=f"Job {result.route}",
                             responses={200: ok, **error_responses(404, 409)})


_add_result_routes()


@router.get("/{job_id}/people/{person_id}.jpg", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404, 409)})
def person_thumbnail(job_id: str, person_id: str, job: FinishedJob, store: Store) -> FileResponse:
    """A person's thumbnail (JPEG), named in the summary's ``"thumbnail"``."""
    path = store.files(job_id, job).thumbnail(person_id)
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such person in this job")
    return FileResponse(path, media_type="image/jpeg")


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=error_responses(404, 409))
async def delete_job(job_id: str, job: ExistingJob, store: Store, runner: Runner) -> None:
    """Remove a job and its files; a running job is stopped first."""
    if job["status"] == "running":
        if not await anyio.to_thread.run_sync(runner.cancel, job_id):
            raise HTTPException(status.HTTP_409_CONFLICT, "the job did not stop in time; "
                                                          "try again")
        return
    store.delete(job_id)

