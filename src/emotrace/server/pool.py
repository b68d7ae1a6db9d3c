"""Recognition for the routes: the server's recognizers, a bounded pool of worker threads and
a memory budget for decoded pixels.

Decoding, recognition and encoding run in the pool (one thread per core by default), never in
the event loop, and photos wait for their turn when the pixels being decoded would take more
than the memory budget.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import cv2
import numpy as np

from emotrace.data.images import MAX_PIXELS, decode_image
from emotrace.inference import Recognizer
from emotrace.server.settings import ServerSettings

#: Bytes a decoded pixel takes at the peak: OpenCV's decoder (about 6) and the annotated copy (3).
BYTES_PER_PIXEL = 9
T = TypeVar("T")


def build_recognizer(settings: ServerSettings, model: str | None = None) -> Recognizer:
    """The one place the server builds a :class:`Recognizer`: ``model`` (a shipped model's
    name), or the server's when None."""
    return Recognizer(model if model is not None else settings.model)


class MemoryBudget:
    """Bytes of decoded pixels in flight, at most ``limit``: a request waits for its turn instead
    of taking memory that others hold. One larger than the whole budget runs alone."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._changed: anyio.Condition | None = None

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Wait until ``size`` bytes fit in the budget, hold them for the ``async with``."""
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
    return min(width * height, MAX_PIXELS) * BYTES_PER_PIXEL


def label_box(box, shape: tuple[int, ...], label: str) -> tuple[int, int, int, int, float]:
    """Where :func:`number_faces` writes ``label`` for a face ``box``: ``(x0, y0, x1, y1,
    scale)``, under the box (above it at the image's bottom edge)."""
    x, y, w, h = (int(round(v)) for v in box)
    scale = max(0.5, min(2.0, w / 100))
    (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    x0 = max(0, min(x, shape[1] - width - 8))
    y0 = y + h + 14 if y + h + height + 22 < shape[0] else max(0, y - height - 30)  # past the bars
    return x0, y0, x0 + width + 8, y0 + height + 8, scale


def number_faces(image: np.ndarray, boxes) -> np.ndarray:
    """Write ``#1``, ``#2``, ... by each face, as the page's table numbers its rows."""
    for index, box in enumerate(boxes, 1):
        x0, y0, x1, y1, scale = label_box(box, image.shape, f"#{index}")
        cv2.rectangle(image, (x0, y0), (x1, y1), (0, 0, 0), -1)
        cv2.putText(image, f"#{index}", (x0 + 4, y1 - 5), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 2, cv2.LINE_AA)
    return image


class RecognizerPool:
    """The server's recognizer (and those of other shipped models, loaded on first use), the
    worker threads (``settings.workers`` at a time) and the memory budget
    (``settings.decode_budget_bytes``)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.recognizer = build_recognizer(settings)
        self.limiter = anyio.CapacityLimiter(settings.workers)
        self.budget = MemoryBudget(settings.decode_budget_bytes)
        self._others: dict[str, Recognizer] = {}
        self._others_lock = threading.Lock()

    def get(self, model: str | None) -> Recognizer:
        """The server's recognizer, or one for another shipped model (loaded once)."""
        if model is None or model == self.settings.model:
            return self.recognizer
        with self._others_lock:
            if model not in self._others:
                self._others[model] = build_recognizer(self.settings, model)
            return self._others[model]

    async def run(self, data: bytes, work: Callable[..., T], *args: Any) -> T:
        """``work(data, *args)`` in a worker thread once the decoded ``data`` fits the memory
        budget."""
        async with self.budget.hold(decode_cost(data)):
            return await anyio.to_thread.run_sync(work, data, *args, limiter=self.limiter)

    def recognize_photo(self, data: bytes, name: str, annotate: bool) -> dict[str, Any]:
        """Decode, recognise and (optionally) draw a photo: the JSON of one ``emotrace predict
        --json`` line, with ``"annotated"`` (a JPEG data URL) when ``annotate``. Runs in a
        worker thread (:meth:`run`)."""
        result = self.recognizer.recognize(decode_image(data), name)
        answer = result.to_dict()
        if annotate:
            drawn = number_faces(result.draw(), [face.box for face in result.faces])
            _, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
            answer["annotated"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        return answer

    def recognize_frame(self, data: bytes, video) -> dict[str, Any]:
        """A webcam frame of the stream ``video`` (track ids kept), with the frame's size.
        Runs in a worker thread (:meth:`run`)."""
        image = decode_image(data, self.settings.max_frame_pixels)
        result = video.recognize(image, None, "webcam")
        return {**result.to_dict(), "width": image.shape[1], "height": image.shape[0]}
