"""Result objects: one per image or video frame, with its faces. They draw and save themselves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotrace.data.labels import EMOTIONS
from emotrace.errors import UsageError
from emotrace.utils import atomic_path

# BGR colours per emotion, used for boxes and bars.
COLORS = {"angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160),
          "happy": (0, 200, 255), "sad": (200, 120, 40), "surprise": (0, 140, 255),
          "neutral": (170, 170, 170)}


@dataclass
class Face:
    """One face: box ``(x, y, w, h)``, detector score, landmarks, emotion and its 7 scores.
    In video: ``track_id`` (a motion track: ends when the face is lost or the shot changes) and
    ``person_id`` (one id per person for the whole video or stream).

    Attributes:
        box: ``(x, y, w, h)`` in the image's pixels.
        emotion: the top emotion, one of ``EMOTIONS``.
        scores: emotion -> probability, all seven (calibrated; they sum to 1).
        score: the detector's confidence, or ``None``.
        landmarks: five ``[x, y]`` points, or ``None``.
        track_id: in video, the motion track; ``None`` for still images.
        person_id: in video, one id per person; ``None`` for still images, and for at most 10
            frames while a new face waits to be seen well enough to tell who it is.

    Example:
        >>> face = Face((10, 20, 64, 64), "happy", {"happy": 0.9, "neutral": 0.1}, score=0.98)
        >>> face.to_dict()
        {'box': [10, 20, 64, 64], 'score': 0.98, 'emotion': 'happy', 'scores': {'happy': 0.9, 'neutral': 0.1}}
    """

    box: tuple[int, int, int, int]
    emotion: str
    scores: dict[str, float]
    score: float | None = None
    landmarks: list[list[float]] | None = None
    track_id: int | None = None
    person_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The face's JSON form (part of the public contract).

        Returns:
            ``{"box", "score", "emotion", "scores"}``, plus ``"landmarks"``, ``"track_id"`` and
            ``"person_id"`` when they are set.
        """
        data: dict[str, Any] = {"box": list(self.box), "score": self.score,
                                "emotion": self.emotion, "scores": self.scores}
        if self.landmarks is not None:
            data["landmarks"] = self.landmarks
        if self.track_id is not None:
            data["track_id"] = self.track_id
        if self.person_id is not None:
            data["person_id"] = self.person_id
        return data


@dataclass
class Result:
    """The faces of one image or frame. ``frame``/``time`` are None for still images;
    ``error`` is set (and ``faces`` empty) when the source could not be read; ``warning`` when
    the result is doubtful (an image too small for face detection). ``thumbnails``: in video,
    the people (person id -> BGR face crop) whose best thumbnail so far first appears in this
    frame (not part of ``to_dict``).

    Attributes:
        source: the source as the caller named it.
        faces: the faces found, left to right as the detector gives them.
        frame: the frame number in a video or stream; ``None`` for still images.
        time: seconds from the start of a video or stream; ``None`` for still images.
        error: why the source could not be read, or ``None``.
        warning: why the result is doubtful, or ``None``.
        image: the BGR frame, kept when annotation needs it (not part of ``to_dict``).
        thumbnails: person id -> BGR face crop, in video (not part of ``to_dict``).

    Example:
        >>> result = Result("photo.jpg", [Face((0, 0, 48, 48), "sad", {"sad": 1.0})])
        >>> result.ok, result.to_dict()["faces"][0]["emotion"]
        (True, 'sad')
    """

    source: str
    faces: list[Face] = field(default_factory=list)
    frame: int | None = None
    time: float | None = None
    error: str | None = None
    warning: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the source was read (``error`` is ``None``)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """``{"source", "frame", "time", "faces": [...]}`` (+ ``"error"`` when it failed).

        Returns:
            The JSON line ``emotrace predict --json`` prints for this image or frame
            (``"warning"`` added when set).

        Example:
            >>> Result("broken.jpg", error="not a readable image").to_dict()
            {'source': 'broken.jpg', 'frame': None, 'time': None, 'faces': [], 'error': 'not a readable image'}
        """
        data: dict[str, Any] = {"source": self.source, "frame": self.frame, "time": self.time,
                                "faces": [face.to_dict() for face in self.faces]}
        if self.error:
            data["error"] = self.error
        if self.warning:
            data["warning"] = self.warning
        return data

    def draw(self) -> np.ndarray:
        """A copy of the image with boxes, labels and per-face score bars.

        Returns:
            The annotated BGR image (the result's own image is not changed).

        Raises:
            ValueError: the result holds no image.

        Example:
            >>> import emotrace
            >>> result = emotrace.Recognizer().predict(emotrace.sample_photos()[0])[0]
            >>> result.draw().shape == result.image.shape
            True
        """
        if self.image is None:
            raise ValueError(f"{self.source}: no image to draw on")
        canvas = self.image.copy()
        thickness = max(1, round(max(canvas.shape[:2]) / 400))
        for face in self.faces:
            _draw_face(canvas, face, thickness)
        return canvas

    def save(self, path: str | Path) -> Path:
        """Write the annotated image (format from the suffix), atomically.

        Args:
            path: the image file to write (``.jpg``, ``.png``...); its folder is created.

        Returns:
            The written file.

        Raises:
            ValueError: the result holds no image.
            UsageError: no image format has this suffix (a ``ValueError`` too).

        Example:
            >>> import emotrace, tempfile
            >>> result = emotrace.Recognizer().predict(emotrace.sample_photos()[0])[0]
            >>> result.save(f"{tempfile.mkdtemp()}/annotated.jpg").name
            'annotated.jpg'
        """
        path = Path(path)
        try:  # OpenCV raises for a suffix it has no encoder for (.txt), returns False for others
            ok, encoded = cv2.imencode(path.suffix or ".jpg", self.draw())
        except cv2.error:
            ok = False
        if not ok:
            raise UsageError(f"{path}: cannot write an image with the suffix "
                             f"{path.suffix!r}; use .jpg or .png")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(encoded.tobytes())
        return path


def _draw_face(canvas: np.ndarray, face: Face, thickness: int) -> None:
    x, y, w, h = face.box
    color = COLORS.get(face.emotion, (255, 255, 255))
    cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness + 1)
    label = f"{face.emotion} {face.scores[face.emotion]:.0%}"
    if face.person_id is not None:  # a face still waiting for its person shows no number
        label = f"#{face.person_id} {label}"
    font_scale = max(0.4, min(1.2, w / 160))
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    top = max(th + base, y)
    cv2.rectangle(canvas, (x, top - th - base), (x + tw, top), color, -1)
    cv2.putText(canvas, label, (x, top - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0),
                thickness, cv2.LINE_AA)
    # Seven score bars under the box (or inside it near the bottom edge when out of room).
    bar_h = max(3, h // 28)
    bar_top = y + h + 2 if y + h + 7 * (bar_h + 1) < canvas.shape[0] else y + h - 7 * (bar_h + 1)
    for i, name in enumerate(EMOTIONS):
        y0 = bar_top + i * (bar_h + 1)
        cv2.rectangle(canvas, (x, y0), (x + int(w * face.scores.get(name, 0.0)), y0 + bar_h),
                      COLORS[name], -1)
