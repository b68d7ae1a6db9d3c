"""The HTTP API and the web page: a thin shell over :class:`~emotrace.inference.Recognizer`.

Recognition runs in a bounded pool of threads (one per core by default), never in the event
loop. Uploads are the only input: no request can make the server read a path or fetch a URL.
"""


import base64
import logging
import secrets
import shutil
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
import cv2
from fastapi import (APIRouter, Depends, FastAPI, File, HTTPException, Query, Request,
                     UploadFile, WebSocket, WebSocketDisconnect, status)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from emotrace import __version__
from emotrace.data.images import ImageError, NotAnImageError, decode_image
from emotrace.inference import Recognizer
from emotrace.server.jobs import JobRunner, JobStore, public_job, valid_job_id
from emotrace.server.settings import MB, ServerSettings

log = logging.getLogger("emotrace.server")
STATIC = resources.files("emotrace.server") / "static"
#: Video containers recognised from their first bytes (the declared type is not trusted).
_VIDEO_MAGIC = ((4, b"ftyp", ".mp4"), (0, b"\x1a\x45\xdf\xa3", ".mkv"), (0, b"RIFF", ".avi"),
                (0, b"GIF8", ".gif"), (0, b"\x00\x00\x01\xba", ".mpg"), (0, b"\x47", ".ts"))
_MEDIA = {"summary": "application/json", "timeline": "image/png", "video": "video/webm"}


def sniff_video(head: bytes) -> str | None:
    """The suffix of a video container recognised from its first bytes, or None."""
    for offset, magic, suffix in _VIDEO_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            if suffix == ".avi" and head[8:12] != b"AVI ":
                continue
            if suffix == ".ts" and (len(head) < 377 or head[188] != 0x47 or head[376] != 0x47):
                continue
            return suffix
    return None


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application: ``GET /health``, the ``/v1`` API, the page at ``/``."""
    settings = settings or ServerSettings()
    recognizer = Recognizer(settings.model)
    store = JobStore(settings.data_dir)
    runner = JobRunner(store, recognizer, settings)
    limiter = anyio.CapacityLimiter(settings.workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(runner.shutdown)

    app = FastAPI(title="emotrace", version=__version__, lifespan=lifespan,
                  description="Facial emotion recognition: photos, videos (jobs), live webcam.")
    app.state.settings, app.state.store, app.state.runner = settings, store, runner
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)

    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                          Depends(bearer)]) -> None:
        if settings.token is None:
            return
        if credentials is None or not _same_token(credentials.credentials, settings.token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorised)])

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": recognizer.classifier.name, "version": __version__}

    @api.post("/predict", max_body_size=settings.max_image_bytes + MB)
    async def predict(file: Annotated[UploadFile, File(description="an image")],
                      annotate: bool = False) -> dict[str, Any]:
        """The faces of one photo: the JSON of one ``emotrace predict --json`` line; with
        ``annotate=true`` also the annotated image (``"annotated"``, a JPEG data URL)."""
        data = await _read_upload(file, settings.max_image_bytes)
        try:
            image = decode_image(data)
        except NotAnImageError as error:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(error)) from None
        except ImageError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        name = _display_name(file.filename, "upload")
        result = await anyio.to_thread.run_sync(recognizer.recognize, image, name,
                                                limiter=limiter)
        answer = result.to_dict()
        if annotate:
            ok, jpeg = cv2.imencode(".jpg", result.draw(), [cv2.IMWRITE_JPEG_QUALITY, 90])
            answer["annotated"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        return answer

    @api.post("/jobs", status_code=status.HTTP_202_ACCEPTED,
              max_body_size=settings.max_video_bytes + MB)
    async def create_job(file: Annotated[UploadFile, File(description="a video")]
                         ) -> dict[str, str]:
        """Queue a video; poll ``GET /v1/jobs/{id}`` for its progress."""
        if store.count("queued") >= settings.max_queued_jobs:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"{settings.max_queued_jobs} jobs are already queued; try later",
                                headers={"Retry-After": "30"})
        if file.size is not None and file.size > settings.max_video_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"the video is larger than {settings.max_video_bytes // MB} MB")
        suffix = sniff_video(await file.read(512))
        if suffix is None:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                                "not a video emotrace reads (MP4/MOV, MKV/WebM, AVI, MPEG, GIF)")
        await file.seek(0)
        name = _display_name(file.filename, f"video{suffix}")
        job_id, path = store.create(name, suffix)
        try:
            await anyio.to_thread.run_sync(_copy_upload, file.file, path)
        except BaseException:
            store.delete(job_id)
            raise
        store.enqueue(job_id, name, path)
        runner.notify()
        return {"id": job_id, "status": "queued"}

    @api.get("/jobs")
    def list_jobs(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict[str, Any]]:
        """The most recent jobs, newest first."""
        return [public_job(job) for job in store.recent(limit)]

    def _job(job_id: str) -> dict[str, Any]:
        job = store.get(job_id) if valid_job_id(job_id) else None
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
        return job

    @api.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return public_job(_job(job_id))

    def _result_file(job_id: str, kind: str) -> FileResponse:
        job = _job(job_id)
        if job["status"] != "done":
            raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} is {job['status']}, "
                                                          "not done")
        files = store.files(job_id, job)
        path = files.csv if kind == "csv" else files.result(kind)
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} has no {kind}")
        stem = Path(job["filename"]).stem
        names = {"csv": f"{stem}.faces.csv", "summary": f"{stem}.summary.json",
                 "timeline": f"{stem}.timeline.png", "video": f"{stem}.annotated.webm"}
        return FileResponse(path, media_type=_MEDIA.get(kind, "text/csv"), filename=names[kind],
                            content_disposition_type="inline" if kind != "csv" else "attachment")

    result_routes = (
        ("summary", "summary", "Per tracked person: emotion shares and mean scores (the CLI's "
                               "summary.json)."),
        ("faces.csv", "csv", "One row per face per frame (the CLI's --csv)."),
        ("timeline.png", "timeline", "Emotion scores over time, one panel per person."),
        ("video", "video", "The annotated video (WebM, plays in browsers)."))
    def result_route(kind: str):
        def serve_result(job_id: str) -> FileResponse:
            return _result_file(job_id, kind)
        return serve_result

    for route, kind, description in result_routes:
        api.add_api_route(f"/jobs/{{job_id}}/{route}", result_route(kind), methods=["GET"],
                          response_class=FileResponse, description=description,
                          name=f"job_{kind}", summary=f"Job {route}")

    @api.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_job(job_id: str) -> None:
        job = _job(job_id)
        if job["status"] == "running":
            raise HTTPException(status.HTTP_409_CONFLICT, "the job is running; delete it when "
                                                          "it is done")
        store.delete(job_id)

    app.include_router(api)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, token: str | None = None) -> None:
        """Send JPEG frames (binary); each is answered with its faces (JSON), track ids kept
        for the connection. Send the next frame after the answer: one frame in flight."""
        if settings.token is not None and not (token and _same_token(token, settings.token)):
            await websocket.close(code=1008, reason="missing or wrong token")
            return
        await websocket.accept()
        video = recognizer.stream(fps=15.0)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    await websocket.send_json({"error": "send each frame as a binary message "
                                                        "(JPEG or PNG bytes)"})
                    continue
                if len(data) > settings.max_frame_bytes:
                    await websocket.send_json({"error": "frame too large"})
                    continue
                try:
                    image = decode_image(data)
                except ImageError as error:
                    await websocket.send_json({"error": str(error)})
                    continue
                result = await anyio.to_thread.run_sync(video.recognize, image, None, "webcam",
                                                        limiter=limiter)
                await websocket.send_json({**result.to_dict(), "width": image.shape[1],
                                           "height": image.shape[0]})
        except WebSocketDisconnect:
            return

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    return app


async def _read_upload(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"the file is larger than {limit // MB} MB")
    return data


def _same_token(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes tokens with any characters."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  expected.encode("utf-8", "surrogateescape"))


def _copy_upload(source, target: Path) -> None:
    with open(target, "wb") as handle:
        shutil.copyfileobj(source, handle, 1024 * 1024)


def _display_name(filename: str | None, default: str) -> str:
    """The upload's base name, for display only (never used as a path)."""
    name = Path((filename or "").replace("\\", "/")).name
    return name[:200] or default
