"""The API's JSON, as pydantic models: every answer the service gives, errors included, so that
``/openapi.json`` declares each one and a typed client can be generated from it.

Fields that the recognizer leaves out when they have no value (a face's ``landmarks``,
``track_id`` and ``person_id``; a result's ``error`` and ``warning``; the ``annotated`` image)
have a default and are left out of the answer when unset (``response_model_exclude_unset``),
exactly as :meth:`~emotrace.inference.results.Result.to_dict` writes them; the others are
always present, ``null`` when empty.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    """``GET /health``: the server is up, with its model and emotrace's version."""

    status: Literal["ok"]
    model: str = Field(description="the model photos and the webcam use by default")
    version: str


class Face(BaseModel):
    """One face, as in a line of ``emotrace predict --json``."""

    box: list[int] = Field(min_length=4, max_length=4, description="x, y, width, height "
                                                                    "in pixels")
    score: float | None = Field(description="the face detector's confidence")
    emotion: str = Field(description="the emotion with the highest score")
    scores: dict[str, float] = Field(description="each emotion's probability")
    landmarks: list[list[float]] | None = Field(
        None, description="eyes, nose tip and mouth corners (x, y); absent when the detector "
                          "gives none")
    track_id: int | None = Field(None, description="video and webcam: the face's motion track")
    person_id: int | None = Field(None, description="video and webcam: one id per person")


class Prediction(BaseModel):
    """The faces of one image or frame: one line of ``emotrace predict --json``."""

    source: str = Field(description="the upload's file name")
    frame: int | None = Field(description="the frame's index (video, webcam); null for a photo")
    time: float | None = Field(description="seconds into the video; null for a photo")
    faces: list[Face]
    error: str | None = Field(None, description="why the input could not be read")
    warning: str | None = Field(None, description="why the result is doubtful")


class PhotoPrediction(Prediction):
    """``POST /v1/predict``: the photo's faces, and with ``annotate=true`` the drawn photo."""

    annotated: str | None = Field(None, description="with annotate=true: the annotated photo "
                                                    "as a JPEG data URL")


class StreamFrame(Prediction):
    """A WebSocket answer (``/v1/stream``): a frame's faces, track ids kept for the
    connection, and the frame's size."""

    width: int
    height: int


class StreamError(BaseModel):
    """A WebSocket answer to a frame that could not be used; the connection stays open."""

    error: str


class JobCreated(BaseModel):
    """``POST /v1/jobs``: the new job's id; poll ``GET /v1/jobs/{id}``."""

    id: str
    status: Literal["queued"]


class JobOptions(BaseModel):
    """What a job was asked to do."""

    annotate: bool = Field(description="whether the annotated video is written")
    every: int = Field(description="every N-th frame is processed")
    model: str | None = Field(description="the shipped model; null: the server's")


class JobProgress(BaseModel):
    """How far a job is."""

    frames_done: int
    frames_total: int | None = Field(description="null until the video is opened")
    fps: float | None = Field(description="frames processed per second")
    eta_s: float | None = Field(description="seconds left while it runs")


class Job(BaseModel):
    """A video job: ``queued`` -> ``running`` -> ``done`` | ``failed``."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    filename: str = Field(description="the upload's file name")
    created: float = Field(description="when it was posted (Unix time)")
    options: JobOptions
    progress: JobProgress
    error: str | None = Field(description="why it failed")
    warning: str | None = Field(description="what went wrong although it finished")


class EmotionStats(BaseModel):
    """Emotion shares (of the frames, by top emotion) and mean scores."""

    emotion_shares: dict[str, float]
    mean_scores: dict[str, float]
    dominant: str


class PersonSummary(BaseModel):
    """One tracked person of a video, most frames first."""

    person_id: int | None
    frames: int
    first_time: float
    last_time: float
    emotion_shares: dict[str, float]
    mean_scores: dict[str, float]
    dominant: str
    thumbnail: str | None = Field(None, description="the thumbnail's file name: "
                                                    "GET /v1/jobs/{id}/people/{person_id}.jpg")


class VideoSummary(BaseModel):
    """``GET /v1/jobs/{id}/summary``: the CLI's ``summary.json`` of the video."""

    source: str
    frames: int
    duration_s: float | None
    faces: list[PersonSummary]
    overall: EmotionStats | None


class Problem(BaseModel):
    """Every error answer: one line that says what is wrong and what to do."""

    detail: str


class FieldError(BaseModel):
    """One invalid parameter or missing field (FastAPI's request validation)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class Invalid(BaseModel):
    """422: a parameter is invalid (a list of field errors) or the upload cannot be used (one
    line)."""

    detail: str | list[FieldError]


_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (Problem, "the Host header names another host (a server bound to localhost)"),
    401: (Problem, "missing or wrong bearer token"),
    403: (Problem, "a cross-origin request the server does not allow (--cors-origin)"),
    404: (Problem, "no such job or file"),
    408: (Problem, "the request body stalled"),
    409: (Problem, "the job is not in a state that allows this"),
    413: (Problem, "the upload is larger than the limit"),
    415: (Problem, "not a file type emotrace reads"),
    422: (Invalid, "unreadable or invalid input"),
    429: (Problem, "too many queued jobs"),
    500: (Problem, "internal error (logged on the server)"),
}
#: Answers any ``/v1`` route may give: the request gate's and the token's before it runs, an
#: invalid parameter, a bug.
GATE_ERRORS = (400, 401, 403, 422, 500)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries (``responses=``) for the error answers a ``/v1`` route gives: ``codes``
    and those of :data:`GATE_ERRORS`.

    Args:
        codes: the route's own error status codes.

    Returns:
        ``{code: {"model": ..., "description": ...}}`` for FastAPI's ``responses``.

    Example:
        >>> sorted(error_responses(404))
        [400, 401, 403, 404, 422, 500]
    """
    return {code: {"model": _ERRORS[code][0], "description": _ERRORS[code][1]}
            for code in sorted({*GATE_ERRORS, *codes})}
