"""``Recognizer``: any source in, per-face emotions out (the package's main API)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from emotrace.inference.classifier import EmotionClassifier
from emotrace.inference.detectors import Detection, FaceDetector, create_detector
from emotrace.inference.framing import Framing
from emotrace.inference.results import Face, Result
from emotrace.inference.sources import (SourceError, expand_sources,
                                        is_video_source, open_video, read_image, to_bgr8,
                                        video_frames)
from emotrace.inference.tracking import FaceTracker, ScoreSmoother

Source = str | os.PathLike | int | np.ndarray
DEFAULT_MIN_FACE = 24

#: Chosen on FER-2013 validation faces re-detected by YuNet (benchmarks/framing.py): the box side,
#: nudged 5% down, matches the training crops; 1.3-1.4x looser crops lose 4-8 accuracy points.
DEFAULT_FRAMING = Framing(scale=1.0, shift_y=0.05)


class Recognizer:
    """Detect faces and classify their emotions.

    >>> rec = Recognizer()                          # shipped model, YuNet detector
    >>> rec.predict("photo.jpg")[0].save("annotated.jpg")
    >>> for r in rec.predict("lecture.mp4", stream=True):
    ...     print(r.time, [(f.track_id, f.emotion) for f in r.faces])

    ``min_face``: faces smaller than this (pixels, shorter side) are ignored: a classifier trained on
    48-px faces reads little from fewer than 24 px, and skipping them lets YuNet run on a smaller
    copy of the frame (3x faster on VGA). ``smooth``: EMA
    factor for per-track scores in video (0 = off). ``track``: keep face ids across frames.
    """

    def __init__(self, model: str | os.PathLike | None = None, detector: str | FaceDetector = "yunet",
                 min_face: int = DEFAULT_MIN_FACE, framing: Framing = DEFAULT_FRAMING, track: bool = True,
                 smooth: float = 0.0, threads: int | None = None) -> None:
        self.classifier = EmotionClassifier(model, threads=threads)
        self.detector = (create_detector(detector, min_face) if isinstance(detector, str)
                         else detector)
        self.min_face, self.framing, self.track, self.smooth = min_face, framing, track, smooth

    # -- one frame ---------------------------------------------------------------------------
    def recognize(self, image: np.ndarray, source: str = "array", frame: int | None = None,
                  time: float | None = None, tracker: FaceTracker | None = None,
                  smoother: ScoreSmoother | None = None) -> Result:
        """Faces and emotions of one BGR (or grey/BGRA) image; the faces are classified in one batch."""
        image = to_bgr8(image)
        detections, crops = self.face_crops(image)
        probs = self.classifier.predict_faces(crops)
        ids = tracker.update([d.box for d in detections]) if tracker else [None] * len(detections)
        faces = []
        for detection, p, track_id in zip(detections, probs, ids):
            if smoother is not None and track_id is not None:
                p = smoother(track_id, p)
            scores = {name: round(float(v), 4) for name, v in zip(self.classifier.classes, p)}
            faces.append(Face(detection.box, max(scores, key=scores.get), scores,
                              None if detection.score is None else round(detection.score, 4),
                              None if detection.landmarks is None
                              else np.round(detection.landmarks, 1).tolist(), track_id))
        return Result(source, faces, frame, time, image=image)

    def face_crops(self, image: np.ndarray) -> tuple[list[Detection], list[np.ndarray]]:
        """The faces of a BGR image at least ``min_face`` wide, and their grey crops framed and
        sized as the classifier expects."""
        detections = [d for d in self.detector.detect(image)
                      if min(d.box[2], d.box[3]) >= max(self.min_face, 1)]
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return detections, [self.framing.crop(gray, d.box, self.classifier.size)
                            for d in detections]

    # -- any source --------------------------------------------------------------------------
    def predict(self, source: Source | Iterable[Source], every: int = 1,
                stream: bool = False) -> list[Result] | Iterator[Result]:
        """Results for an image path, numpy image, folder, glob, video, camera index or URL
        (or a list of these). ``stream=True`` returns a generator, which a long video or a
        camera needs; otherwise a list. Unreadable inputs give a Result with ``error`` set."""
        results = self._iterate(source, every)
        return results if stream else list(results)

    def _iterate(self, source: Source | Iterable[Source], every: int) -> Iterator[Result]:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        single = isinstance(source, (str, os.PathLike, int, np.ndarray))
        for item in expand_sources([source] if single else source):
            if isinstance(item, SourceError):
                yield Result(item.source, error=item.message)
            elif isinstance(item, np.ndarray):
                yield self.recognize(item)
            elif is_video_source(item):
                yield from self.predict_video(item, every)
            else:
                yield self._predict_image(str(item))

    def _predict_image(self, path: str) -> Result:
        try:
            image = read_image(path)
        except ValueError as error:
            return Result(path, error=str(error))
        return self.recognize(image, source=path)

    def predict_video(self, source: str | int, every: int = 1) -> Iterator[Result]:
        """Per-frame results of a video file, camera or stream, with face ids kept across frames."""
        try:
            capture, info = open_video(source)
        except ValueError as error:
            yield Result(str(source), error=str(error))
            return
        tracker = FaceTracker(fps=info.fps / every) if self.track else None
        smoother = ScoreSmoother(self.smooth) if self.smooth and tracker else None
        for item in video_frames(capture, info, every):
            if isinstance(item, SourceError):
                yield Result(item.source, error=item.message)
            else:
                yield self.recognize(item.image, item.source, item.index, item.time, tracker,
                                     smoother)
