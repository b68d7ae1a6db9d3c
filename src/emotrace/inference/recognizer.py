"""``Recognizer``: any source in, per-face emotions out (the package's main API).

One generator (:meth:`Recognizer.run`) with fixed stages: sources are expanded once, each is
opened once, its frames go through detection, framing and classification, video frames through
the stream's own tracker and smoother (:class:`VideoStream`), and every result is handed to the
sinks (JSON lines, CSV, annotated media...) before it is yielded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence

import cv2
import numpy as np

from emotrace.errors import ConfigError
from emotrace.inference.classifier import EmotionClassifier
from emotrace.inference.detectors import Detection, FaceDetector, create_detector
from emotrace.inference.framing import Framing
from emotrace.inference.results import Face, Result
from emotrace.inference.sinks import Sink
from emotrace.inference.sources import (DEFAULT_TIMEOUT_S, Frame, SourceError, SourceInfo,
                                        expand_sources, open_source, to_bgr8)
from emotrace.inference.tracking import FaceTracker, ScoreSmoother
from emotrace.utils import deferred_interrupt

Source = str | os.PathLike | int | np.ndarray
DEFAULT_MIN_FACE = 24
MAX_TIMEOUT_S = 86_400  # OpenCV takes the timeout in milliseconds as a 32-bit integer
#: Below this side (pixels) face detection is unreliable; such images get a warning that
#: suggests the whole-image detector for face crops.
SMALL_IMAGE = 64

#: Chosen on FER-2013 validation faces re-detected by YuNet (benchmarks/framing.py): the box side,
#: nudged 5% down, matches the training crops; 1.3-1.4x looser crops lose 4-8 accuracy points.
DEFAULT_FRAMING = Framing(scale=1.0, shift_y=0.05)


class Recognizer:
    """Detect faces and classify their emotions.

    >>> rec = Recognizer()                          # shipped model, YuNet detector
    >>> rec.predict("photo.jpg")[0].save("annotated.jpg")
    >>> for r in rec.predict("lecture.mp4", stream=True):
    ...     print(r.time, [(f.track_id, f.emotion) for f in r.faces])

    ``min_face``: faces smaller than this (pixels, shorter side) are ignored: a classifier trained
    on 48-px faces reads little from fewer than 24 px, and skipping them lets YuNet run on a
    smaller copy of the frame (3x faster on VGA). ``smooth``: EMA factor for per-track scores in
    video (0 = off). ``track``: keep face ids across frames. ``timeout``: seconds without a frame
    after which a stream or camera is reported as stalled.
    """

    def __init__(self, model: str | os.PathLike | None = None, detector: str | FaceDetector = "yunet",
                 min_face: int = DEFAULT_MIN_FACE, framing: Framing = DEFAULT_FRAMING, track: bool = True,
                 smooth: float = 0.0, threads: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not 0.0 <= smooth < 1.0:
            raise ConfigError(f"smoothing must be in [0, 1), got {smooth}")
        if not 0 < timeout <= MAX_TIMEOUT_S:  # also refuses nan
            raise ConfigError(f"timeout must be between 0 and {MAX_TIMEOUT_S} seconds, got "
                              f"{timeout}")
        if min_face < 0:
            raise ConfigError(f"the smallest face must be 0 or more pixels, got {min_face}")
        self.classifier = EmotionClassifier(model, threads=threads)
        self.min_face, self.framing, self.track, self.smooth = min_face, framing, track, smooth
        self.timeout = timeout
        # OpenCV's detectors keep per-call state: each thread gets its own (onnxruntime's session
        # is thread-safe), so one Recognizer serves a pool of threads (the HTTP service).
        self._detector_name = detector if isinstance(detector, str) else None
        self._shared_detector = None if isinstance(detector, str) else detector
        self._local = threading.local()
        self.detector  # noqa: B018 - create it now: a bad detector name fails here, not later

    @property
    def detector(self) -> FaceDetector:
        """The face detector of the calling thread."""
        if self._shared_detector is not None:
            return self._shared_detector
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = create_detector(self._detector_name, self.min_face)
        return detector

    @property
    def whole_image(self) -> bool:
        """True when each image is taken as one face crop (``detector='none'``)."""
        return self.detector.name == "none"

    # -- one image ----------------------------------------------------------------------------
    def recognize(self, image: np.ndarray, source: str = "array") -> Result:
        """Faces and emotions of one BGR (or grey/BGRA) image; the faces are classified in one
        batch. For video frames use :meth:`stream` so face ids carry across frames."""
        return self._recognize(to_bgr8(image), source)

    def stream(self, fps: float = 30.0) -> VideoStream:
        """A :class:`VideoStream`: frames given to it one by one share face ids and smoothing."""
        return VideoStream(self, fps)

    def _recognize(self, image: np.ndarray, source: str, frame: int | None = None,
                   time: float | None = None, stream: VideoStream | None = None) -> Result:
        detections, crops = self.face_crops(image)
        probs = self.classifier.predict_faces(crops)
        ids = stream.track([d.box for d in detections]) if stream else [None] * len(detections)
        faces = []
        for detection, p, track_id in zip(detections, probs, ids):
            if stream is not None and track_id is not None:
                p = stream.smooth(track_id, p)
            scores = {name: round(float(v), 4) for name, v in zip(self.classifier.classes, p)}
            faces.append(Face(detection.box, max(scores, key=scores.get), scores,
                              None if detection.score is None else round(detection.score, 4),
                              None if detection.landmarks is None
                              else np.round(detection.landmarks, 1).tolist(), track_id))
        return Result(source, faces, frame, time, image=image, warning=self._size_warning(image))

    def _size_warning(self, image: np.ndarray) -> str | None:
        height, width = image.shape[:2]
        if self.whole_image or min(height, width) >= SMALL_IMAGE:
            return None
        return (f"image is only {width}x{height} px, too small for reliable face detection; "
                "if the images are face crops, use the detector 'none' (--detector none)")

    def face_crops(self, image: np.ndarray) -> tuple[list[Detection], list[np.ndarray]]:
        """The faces of a BGR image at least ``min_face`` wide, and their grey crops framed and
        sized as the classifier expects. With the whole-image detector the image is classified
        exactly as given (resized, no framing)."""
        if self.whole_image:
            return self.detector.detect(image), [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)]
        detections = [d for d in self.detector.detect(image)
                      if min(d.box[2], d.box[3]) >= max(self.min_face, 1)]
        return detections, [self.framing.crop(image, d.box, self.classifier.size)
                            for d in detections]

    # -- any source ---------------------------------------------------------------------------
    def predict(self, source: Source | Iterable[Source], every: int = 1, stream: bool = False,
                sinks: Sequence[Sink] = ()) -> list[Result] | Iterator[Result]:
        """Results for an image path, numpy image, folder, glob, video, camera index or URL
        (or a list of these). ``stream=True`` returns a generator, which a long video or a
        camera needs; otherwise a list. Unreadable inputs give a Result with ``error`` set.
        ``sinks`` receive every result (see :mod:`emotrace.inference.sinks`)."""
        results = self.run(source, every, sinks)
        return results if stream else list(results)

    def run(self, source: Source | Iterable[Source], every: int = 1,
            sinks: Sequence[Sink] = ()) -> Iterator[Result]:
        """The pipeline as a generator: expand -> open -> frames -> recognise -> sinks."""
        if every < 1:
            raise ConfigError(f"every must be >= 1, got {every}")
        for item in expand_sources(source):
            try:
                opened = open_source(item, self.timeout)
            except SourceError as error:
                yield self._emit(Result(error.source, error=error.message), sinks)
                continue
            with opened:
                yield from self._run_source(opened.info, opened.frames(every), every, sinks)

    def _run_source(self, info: SourceInfo, frames: Iterator[Frame], every: int,
                    sinks: Sequence[Sink]) -> Iterator[Result]:
        stream = self.stream(info.fps / every) if info.is_video else None
        for sink in sinks:
            sink.start(info)
        try:
            for frame in frames:
                result = self._recognize(frame.image, info.source, frame.index, frame.time, stream)
                yield self._emit(result, sinks)
        except SourceError as error:
            yield self._emit(Result(info.source, error=error.message), sinks)
        except (GeneratorExit, KeyboardInterrupt):  # stopped early: keep what was written
            self._end(info, sinks)
            raise
        self._end(info, sinks)

    @staticmethod
    def _end(info: SourceInfo, sinks: Sequence[Sink]) -> None:
        with deferred_interrupt():
            for sink in sinks:
                sink.end(info)

    @staticmethod
    def _emit(result: Result, sinks: Sequence[Sink]) -> Result:
        with deferred_interrupt():  # every output gets this result, or none does
            for sink in sinks:
                sink.write(result)
        return result


class VideoStream:
    """The state of one video, camera or stream: face ids (tracker) and smoothed scores follow
    each person across its frames. Made by :meth:`Recognizer.stream`; one per stream."""

    def __init__(self, recognizer: Recognizer, fps: float = 30.0) -> None:
        self.recognizer = recognizer
        self.tracker = FaceTracker(fps=fps) if recognizer.track else None
        self.smoother = (ScoreSmoother(recognizer.smooth)
                         if recognizer.smooth and self.tracker else None)
        self.frames = 0

    def recognize(self, image: np.ndarray, time: float | None = None,
                  source: str = "stream") -> Result:
        """Faces and emotions of the stream's next frame."""
        result = self.recognizer._recognize(to_bgr8(image), source, self.frames, time, self)
        self.frames += 1
        return result

    def track(self, boxes: list[tuple[int, int, int, int]]) -> list[int | None]:
        return self.tracker.update(boxes) if self.tracker else [None] * len(boxes)

    def smooth(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        return self.smoother(track_id, probs) if self.smoother else probs
