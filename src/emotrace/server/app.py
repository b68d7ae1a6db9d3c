"""The HTTP API and the web page: a thin shell over :class:`~emotrace.inference.Recognizer`.

Decoding, recognition and encoding run in a bounded pool of threads (one per core by default),
never in the event loop, and photos wait for their turn when the pixels being decoded would take
more than the memory budget. Uploads are the only input: no request can make the server read a
path or fetch a URL. A gate in front of every route answers before any body is read: the Host
header (on localhost), the Origin of POSTs and WebSockets, the token and the declared length.
"""


import base64
import io
import logging
import os
import secrets
import shutil
import warnings
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import anyio
import cv2
from fastapi import (APIRouter, Depends, FastAPI, File, HTTPException, Query, Request,
                     UploadFile, WebSocket, WebSocketDisconnect, status)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emotrace import __version__
from emotrace.data.images import MAX_PIXELS, ImageError, NotAnImageError, decode_image
from emotrace.inference import Recognizer
from emotrace.inference.classifier import SHIPPED_MODELS
from emotrace.inference.sources import sniff_video
from emotrace.server.jobs import JobRunner, JobStore, public_job, valid_job_id
from emotrace.server.settings import MB, ServerSettings

log = logging.getLogger("emotrace.server")
STATIC = resources.files("emotrace.server") / "static"
_MEDIA = {"summary": "application/json", "timeline": "image/png", "video": "video/webm"}
#: Bytes a decoded pixel takes at the peak: OpenCV's decoder (about 6) and the annotated copy (3).
_BYTES_PER_PIXEL = 9
#: Body size for routes that take none (everything but the two uploads).
_SMALL_BODY = 64 * 1024
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_VIDEO_FORMATS = "MP4/MOV, MKV/WebM, AVI, MPEG/MPEG-TS, WMV/ASF, FLV, GIF"


class Problem(BaseModel):
    """Every error answer: one line that says what is wrong and what to do."""

    detail: str


_DESCRIPTIONS = {401: "missing or wrong bearer token", 404: "no such job or file",
                 409: "the job is not in a state that allows this",
                 413: "the upload is larger than the limit", 415: "not a file type emotrace "
                 "reads", 422: "unreadable or invalid input", 429: "too many queued jobs"}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives (401 on every /v1 route)."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in (401, *codes)}


def _json_answer(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


class RequestGate:
    """Pure ASGI middleware that answers before the app reads a byte of the body.

    - On a loopback address, a ``Host`` that is not a local name gets 400 (DNS rebinding).
    - A POST, DELETE or WebSocket whose ``Origin`` is another site gets 403 unless
      ``cors_origins`` names it (cross-site requests from pages the user visits).
    - ``/v1``: a missing or wrong token gets 401 and a declared ``Content-Length`` above the
      route's limit 413, before the upload is read; a body longer than it is cut with 413, and a
      body that sends nothing for ``body_timeout_s`` with 408.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app, self.settings = app, settings
        self.limits = {("POST", "/v1/predict"): settings.max_image_bytes + MB,
                       ("POST", "/v1/jobs"): settings.max_video_bytes + MB}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[1]})
            else:
                await _json_answer(*refusal)(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            limit = self.limits.get((scope["method"], scope["path"].rstrip("/")), _SMALL_BODY)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await _json_answer(413, f"the upload is larger than {limit // MB} MB"
                                   if limit >= MB else "this route takes no upload")(
                    scope, receive, send)
                return
            await _LimitedBody(self.app, limit, self.settings.body_timeout_s)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, dict] | None:
        host = headers.get("host", "")
        allowed = self.settings.allowed_hosts
        if allowed is not None and _hostname(host) not in allowed:
            return (400, "this server answers to localhost only (the Host header names another "
                         "host); use http://127.0.0.1 or serve with --host", {})
        origin = headers.get("origin")
        if (origin is not None and (scope["type"] == "websocket"
                                    or scope["method"] not in _SAFE_METHODS)
                and origin.rstrip("/") not in self.settings.cors_origins
                and urlsplit(origin).netloc != host):
            return (403, "cross-origin request refused; the server allows other sites' pages "
                         "only with --cors-origin", {})
        if (scope["type"] == "http" and scope["path"].startswith("/v1")
                and self.settings.token is not None and scope["method"] != "OPTIONS"):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not _same_token(given.strip(), self.settings.token):
                return (401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return None


class _LimitedBody:
    """Counts the body as it arrives: over ``limit`` -> 413, ``timeout_s`` without a byte -> 408
    (JSON, like every other error); the app then sees a disconnected client."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, answered, started = 0, False, False

        async def send_once(message: Message) -> None:
            nonlocal started
            if answered:
                return  # our error answer went first
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def answer(code: int, detail: str) -> Message:
            nonlocal answered
            if not started and not answered:
                await _json_answer(code, detail, {"Connection": "close"})(scope, receive, send)
            answered = True
            return {"type": "http.disconnect"}

        async def counted() -> Message:
            nonlocal received
            if answered:
                return {"type": "http.disconnect"}
            with anyio.move_on_after(self.timeout_s) as waited:
                message = await receive()
            if waited.cancelled_caught:
                return await answer(408, f"the request body stalled for {self.timeout_s:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    return await answer(413, f"the upload is larger than {self.limit // MB} MB"
                                        if self.limit >= MB else "this route takes no upload")
            return message

        await self.app(scope, counted, send_once)


class MemoryBudget:
    """Bytes of decoded pixels in flight, at most ``limit``: a request waits for its turn instead
    of taking memory that others hold. One larger than the whole budget runs alone."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._changed: anyio.Condition | None = None

    @asynccontextmanager
    async def hold(self, size: int):
        size = min(max(size, 1), self.limit)
        if self._changed is None:
            self._changed = anyio.Condition()
        async with self._changed:
            while self.used + size > self.limit:
                await self._changed.wait()
            self.used += size
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self.used -= size
                    self._changed.notify_all()


def decode_cost(data: bytes) -> int:
    """The bytes decoding (and annotating) ``data`` takes at the peak, from its header only."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except Exception:  # not an image or too large: decoding refuses it before any pixel
        return len(data)
    return min(width * height, MAX_PIXELS) * _BYTES_PER_PIXEL


def label_box(box, shape: tuple[int, ...], label: str) -> tuple[int, int, int, int, float]:
    """Where :func:`number_faces` writes ``label`` for a face ``box``: ``(x0, y0, x1, y1,
    scale)``, under the box (above it at the image's bottom edge)."""
    x, y, w, h = (int(round(v)) for v in box)
    scale = max(0.5, min(2.0, w / 100))
    (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    x0 = max(0, min(x, shape[1] - width - 8))
    y0 = y + h + 14 if y + h + height + 22 < shape[0] else max(0, y - height - 30)  # past the bars
    return x0, y0, x0 + width + 8, y0 + height + 8, scale


def number_faces(image, boxes) -> Any:
    """Write ``#1``, ``#2``, ... by each face, as the page's table numbers its rows."""
    for index, box in enumerate(boxes, 1):
        x0, y0, x1, y1, scale = label_box(box, image.shape, f"#{index}")
        cv2.rectangle(image, (x0, y0), (x1, y1), (0, 0, 0), -1)
        cv2.putText(image, f"#{index}", (x0 + 4, y1 - 5), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 2, cv2.LINE_AA)
    return image


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application: ``GET /health``, the ``/v1`` API, the page at ``/``."""
    settings = settings or ServerSettings()
    recognizer = Recognizer(settings.model)
    store = JobStore(settings.data_dir)
    runner = JobRunner(store, recognizer, settings)
    limiter = anyio.CapacityLimiter(settings.workers)
    budget = MemoryBudget(settings.decode_budget_bytes)

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
    app.add_middleware(RequestGate, settings=settings)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)

    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                          Depends(bearer)]) -> None:
        """Declares the token in OpenAPI; :class:`RequestGate` checked it before the body."""
        if settings.token is None:
            return
        if credentials is None or not _same_token(credentials.credentials, settings.token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorised)])

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": recognizer.classifier.name, "version": __version__}

    def recognize_upload(data: bytes, name: str, annotate: bool) -> dict[str, Any]:
        """Decode, recognise and (optionally) encode the annotated JPEG: one worker thread."""
        image = decode_image(data)
        result = recognizer.recognize(image, name)
        answer = result.to_dict()
        if annotate:
            drawn = number_faces(result.draw(), [face.box for face in result.faces])
            ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
            answer["annotated"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        return answer

    @api.post("/predict", responses=_errors(413, 415, 422))
    async def predict(file: Annotated[UploadFile, File(description="an image")],
                      annotate: bool = False) -> dict[str, Any]:
        """The faces of one photo: the JSON of one ``emotrace predict --json`` line; with
        ``annotate=true`` also the annotated image (``"annotated"``, a JPEG data URL)."""
        data = await _read_upload(file, settings.max_image_bytes)
        name = _display_name(file.filename, "upload")
        async with budget.hold(decode_cost(data)):
            try:
                return await anyio.to_thread.run_sync(recognize_upload, data, name, annotate,
                                                      limiter=limiter)
            except NotAnImageError as error:
                raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(error)) from None
            except ImageError as error:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None

    @api.post("/jobs", status_code=status.HTTP_202_ACCEPTED, responses=_errors(413, 415, 429))
    async def create_job(
            file: Annotated[UploadFile, File(description="a video")],
            annotate: Annotated[bool, Query(description="write the annotated video (the "
                                                        "slowest part of a job)")] = True,
            every: Annotated[int, Query(ge=1, le=1000, description="process every N-th "
                                                                   "frame")] = 1,
            model: Annotated[Literal[tuple(SHIPPED_MODELS)] | None, Query(
                description="a shipped model (default: the server's)")] = None,
    ) -> dict[str, str]:
        """Queue a video; poll ``GET /v1/jobs/{id}`` for its progress."""
        if file.size is not None and file.size > settings.max_video_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"the video is larger than {settings.max_video_bytes // MB} MB")
        suffix = sniff_video(await file.read(4096))
        if suffix is None:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                                f"not a video emotrace reads ({_VIDEO_FORMATS})")
        await file.seek(0)
        name = _display_name(file.filename, f"video{suffix}")
        reserved = store.reserve(name, suffix, settings.max_queued_jobs,
                                 {"annotate": annotate, "every": every, "model": model})
        if reserved is None:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"{settings.max_queued_jobs} jobs are already queued; try later",
                                headers={"Retry-After": "30"})
        job_id, path = reserved
        try:
            await anyio.to_thread.run_sync(_copy_upload, file.file, path)
        except BaseException:
            store.delete(job_id)
            raise
        store.enqueue(job_id)
        runner.notify()
        return {"id": job_id, "status": "queued"}

    @api.get("/jobs", responses=_errors())
    def list_jobs(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict[str, Any]]:
        """The most recent jobs, newest first."""
        return [public_job(job) for job in store.recent(limit)]

    def _job(job_id: str) -> dict[str, Any]:
        job = store.get(job_id) if valid_job_id(job_id) else None
        if job is None or job["status"] == "uploading":
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
        return job

    @api.get("/jobs/{job_id}", responses=_errors(404))
    def get_job(job_id: str) -> dict[str, Any]:
        return public_job(_job(job_id))

    def _result_file(job_id: str, kind: str) -> FileResponse:
        job = _job(job_id)
        if job["status"] != "done":
            raise HTTPException(status.HTTP_409_CONFLICT, f"the job is {job['status']}, "
                                                          "not done")
        files = store.files(job_id, job)
        path = files.csv if kind == "csv" else files.result(kind)
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"the job has no {kind}")
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
        ("video", "video", "The annotated video (WebM, plays in browsers); 404 when the job "
                           "was posted with annotate=false."))

    def result_route(kind: str):
        def serve_result(job_id: str) -> FileResponse:
            return _result_file(job_id, kind)
        return serve_result

    for route, kind, description in result_routes:
        api.add_api_route(f"/jobs/{{job_id}}/{route}", result_route(kind), methods=["GET"],
                          response_class=FileResponse, description=description,
                          name=f"job_{kind}", summary=f"Job {route}", responses=_errors(404, 409))

    @api.get("/jobs/{job_id}/people/{person_id}.jpg", response_class=FileResponse,
             responses=_errors(404, 409))
    def person_thumbnail(job_id: str, person_id: str) -> FileResponse:
        """A person's thumbnail (JPEG), named in the summary's ``"thumbnail"``."""
        job = _job(job_id)
        if job["status"] != "done":
            raise HTTPException(status.HTTP_409_CONFLICT, f"the job is {job['status']}, "
                                                          "not done")
        path = store.files(job_id, job).thumbnail(person_id)
        if path is None or not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such person in this job")
        return FileResponse(path, media_type="image/jpeg")

    @api.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT,
                responses=_errors(404, 409))
    async def delete_job(job_id: str) -> None:
        """Remove a job and its files; a running job is stopped first."""
        job = _job(job_id)
        if job["status"] == "running":
            if not await anyio.to_thread.run_sync(runner.cancel, job_id):
                raise HTTPException(status.HTTP_409_CONFLICT, "the job did not stop in time; "
                                                              "try again")
            return
        store.delete(job_id)

    app.include_router(api)

    def recognize_frame(video, data: bytes) -> dict[str, Any]:
        image = decode_image(data, settings.max_frame_pixels)
        result = video.recognize(image, None, "webcam")
        return {**result.to_dict(), "width": image.shape[1], "height": image.shape[0]}

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, token: str | None = None) -> None:
        """Send JPEG frames (binary); each is answered with its faces (JSON), track ids kept
        for the connection. Send the next frame after the answer: one frame in flight. A
        missing or wrong token closes the connection with code 1008 and the reason."""
        await websocket.accept()
        if settings.token is not None and not (token and _same_token(token, settings.token)):
            await websocket.close(code=1008, reason="missing or wrong token: enter the server's "
                                                    "access token at the top of the page")
            return
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
                    async with budget.hold(decode_cost(data)):
                        answer = await anyio.to_thread.run_sync(recognize_frame, video, data,
                                                                limiter=limiter)
                except ImageError as error:
                    await websocket.send_json({"error": str(error)})
                    continue
                await websocket.send_json(answer)
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


def _hostname(host: str) -> str:
    """``localhost`` from ``localhost:8000``, ``[::1]`` from ``[::1]:8000``."""
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_token(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes tokens with any characters."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  expected.encode("utf-8", "surrogateescape"))


def _copy_upload(source, target: Path) -> None:
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        shutil.copyfileobj(source, handle, 1024 * 1024)


def _display_name(filename: str | None, default: str) -> str:
    """The upload's base name, for display only (never used as a path)."""
    name = Path((filename or "").replace("\\", "/")).name
    return name[:200] or default
