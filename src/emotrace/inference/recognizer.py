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
from typing import Any

import cv2
import numpy as np

from emotrace.errors import ConfigError
from emotrace.inference.classifier import EmotionClassifier
from emotrace.config import DEFAULT_MIN_FACE, MAX_TIMEOUT_S, RecognizerConfig  # noqa: F401
from emotrace.inference.detectors import Detection, FaceDetector, create_detector
from emotrace.inference.framing import Framing
from emotrace.inference.identity import FaceEmbedder, PersonGallery
from emotrace.inference.results import Face, Result
from emotrace.inference.scenes import CutDetector
from emotrace.inference.sinks import Sink, Sinks
from emotrace.inference.sources import (Frame, SourceError, SourceInfo,
                                        expand_sources, open_source, to_bgr8)
from emotrace.inference.tracking import FaceTracker, ScoreSmoother

Source = str | os.PathLike | int | np.ndarray
#: Chosen on FER-2013 validation faces re-detected by YuNet (benchmarks/framing.py): the box side,
#: nudged 5% down, matches the training crops; 1.3-1.4x looser crops lose 4-8 accuracy points.
DEFAULT_FRAMING = Framing(scale=1.0, shift_y=0.05)
#: Below this side (pixels) face detection is unreliable; such images get a warning that
#: suggests the whole-image detector for face crops.
SMALL_IMAGE = 64


class Recognizer:
    """Detect faces and classify their emotions.

    Options: see :class:`RecognizerConfig` (``Recognizer(detect_every=2)``, or
    ``Recognizer(config=RecognizerConfig(...))``).

    Example:
        >>> from emotrace import sample_photos
        >>> rec = Recognizer()                          # shipped model, YuNet detector
        >>> [face.emotion for face in rec.predict(sample_photos()[1])[0].faces]
        ['neutral']
        >>> for r in rec.predict("lecture.mp4", stream=True):  # doctest: +SKIP
        ...     print(r.time, [(f.person_id, f.emotion) for f in r.faces])
    """

    def __init__(self, model: str | os.PathLike | None = None,
                 config: RecognizerConfig | None = None, **options: Any) -> None:
        """Args:
            model: a shipped model's name or an exported ``.onnx`` file (overrides
                ``config.model``).
            config: all options at once (:class:`RecognizerConfig`); default: its defaults.
            **options: single :class:`RecognizerConfig` fields, e.g. ``detect_every=2``
                (override ``config``'s).

        Raises:
            ConfigError: an option out of range.
        """
        if model is not None:
            options["model"] = os.fspath(model)
        self.config = (config or RecognizerConfig()).replace(**options)
        config = self.config
        self.classifier = EmotionClassifier(config.model, threads=config.threads)
        self.min_face, self.track, self.smooth = config.min_face, config.track, config.smooth
        self.framing = config.framing or DEFAULT_FRAMING
        self.classify_every, self.detect_every = config.classify_every, config.detect_every
        self.identify = config.identifies
        self.timeout = config.timeout
        detector = config.detector
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
    def embedder(self) -> FaceEmbedder:
        """The face embedder (SFace) of the calling thread, made on first use."""
        embedder = getattr(self._local, "embedder", None)
        if embedder is None:
            embedder = self._local.embedder = FaceEmbedder()
        return embedder

    @property
    def whole_image(self) -> bool:
        """True when each image is taken as one face crop (``detector='none'``)."""
        return self.detector.name == "none"

    # -- one image ----------------------------------------------------------------------------
    def recognize(self, image: np.ndarray, source: str = "array") -> Result:
        """Faces and emotions of one BGR (or grey/BGRA) image; the faces are classified in one
        batch. For video frames use :meth:`video_stream` so face ids carry across frames."""
        return self._recognize(to_bgr8(image), source, state=StillImage(self))

    def video_stream(self, fps: float = 30.0) -> VideoStream:
        """A :class:`VideoStream`: frames given to it one by one share face ids and smoothing."""
        return VideoStream(self, fps)

    def _recognize(self, image: np.ndarray, source: str, frame: int | None = None,
                   time: float | None = None, *, state: StillImage | VideoStream) -> Result:
        """One image: ``state`` says which faces it has and which are due for classification
        (a still image: all; a video frame: its stream's tracked faces)."""
        detections, ids, people = state.faces(image)
        due = [state.due(track_id) for track_id in ids]
        crops = [self.crop(image, d) for d, fresh in zip(detections, due) if fresh]
        fresh_probs = iter(self.classifier.predict_faces(crops))
        faces = []
        for detection, track_id, person_id, fresh in zip(detections, ids, people, due):
            p = state.scores(track_id, next(fresh_probs) if fresh else None)
            scores = {name: round(float(v), 4) for name, v in zip(self.classifier.classes, p)}
            faces.append(Face(detection.box, max(scores, key=scores.get), scores,
                              None if detection.score is None else round(detection.score, 4),
                              None if detection.landmarks is None
                              else np.round(detection.landmarks, 1).tolist(), track_id,
                              person_id))
        return Result(source, faces, frame, time, image=image, warning=self._size_warning(image),
                      thumbnails=state.end_frame(ids))

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
        detections = self.detect(image)
        return detections, [self.crop(image, d) for d in detections]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces of a BGR image at least ``min_face`` wide (the whole image with the
        detector 'none')."""
        if self.whole_image:
            return self.detector.detect(image)
        return [d for d in self.detector.detect(image)
                if min(d.box[2], d.box[3]) >= max(self.min_face, 1)]

    def crop(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        """One face as the classifier expects it: framed like FER-2013 and grey (the whole
        image, unframed, with the detector 'none')."""
        if self.whole_image:
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return self.framing.crop(image, detection.box, self.classifier.size)

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
                yield Sinks(sinks).write(Result(error.source, error=error.message))
                continue
            with opened:
                yield from self._run_source(opened.info, opened.frames(every), every, sinks)

    def _run_source(self, info: SourceInfo, frames: Iterator[Frame], every: int,
                    sinks: Sequence[Sink]) -> Iterator[Result]:
        state = self.video_stream(info.fps / every) if info.is_video else StillImage(self)
        fan_out = Sinks(sinks)
        fan_out.start(info)
        try:
            for frame in frames:
                result = self._recognize(frame.image, info.source, frame.index, frame.time,
                                         state=state)
                yield fan_out.write(result)
        except SourceError as error:
            yield fan_out.write(Result(info.source, error=error.message))
        except (GeneratorExit, KeyboardInterrupt):  # stopped early: keep what was written
            fan_out.end(info)
            raise
        fan_out.end(info)


class StillImage:
    """The per-image state of a photo: every face is detected and classified afresh, with no ids
    (the same calls as :class:`VideoStream`, so the pipeline has no special case for photos)."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def faces(self, image: np.ndarray
              ) -> tuple[list[Detection], list[int | None], list[int | None]]:
        """The image's faces, without track or person ids."""
        detections = self.recognizer.detect(image)
        return detections, [None] * len(detections), [None] * len(detections)

    def due(self, track_id: int | None) -> bool:
        """Every face of a photo is classified."""
        return True

    def scores(self, track_id: int | None, probs: np.ndarray | None) -> np.ndarray:
        """The classifier's own scores."""
        return probs

    def end_frame(self, ids: list[int | None]) -> dict[int, np.ndarray]:
        """A photo keeps no people, so it has no thumbnails."""
        return {}


class VideoStream:
    """The state of one video, camera or stream: face ids (tracker), person ids (cuts and a
    gallery of the people seen so far), smoothed scores, and which faces are due for
    classification follow each person across its frames. Made by :meth:`Recognizer.video_stream`;
    one per stream."""

    def __init__(self, recognizer: Recognizer, fps: float = 30.0) -> None:
        self.recognizer = recognizer
        self.tracker = FaceTracker(fps=fps) if recognizer.track else None
        self.gallery = (PersonGallery(lambda image, d: recognizer.embedder.embed(image, d))
                        if recognizer.identify else None)
        self.cuts = CutDetector() if self.gallery else None
        self.cut_frames: list[int] = []  # frames where a new shot started
        self.smoother = (ScoreSmoother(recognizer.smooth)
                         if recognizer.smooth and self.tracker else None)
        self.every, self.detect_every = recognizer.classify_every, recognizer.detect_every
        self.frames = 0
        self._last: dict[int, np.ndarray] = {}  # each visible track's latest scores
        self._detected: dict[int, Detection] = {}  # each track's face at the last detection

    def recognize(self, image: np.ndarray, time: float | None = None,
                  source: str = "stream") -> Result:
        """Faces and emotions of the stream's next frame."""
        return self.recognizer._recognize(to_bgr8(image), source, self.frames, time, state=self)

    def faces(self, image: np.ndarray
              ) -> tuple[list[Detection], list[int | None], list[int | None]]:
        """This frame's faces, their track ids and person ids: detected, or on frames between
        two detections (``detect_every``) the last detected faces moved to where the tracker
        predicts them. A new shot ends every track and is always detected."""
        cut = self.cuts is not None and self.cuts(image)
        if cut:
            self.cut_frames.append(self.frames)
            self.tracker.reset()
            self.gallery.forget_tracks()
            self._detected = {}
        if self.frames % self.detect_every and not cut:
            detections, ids = self._predicted(image)
            return detections, ids, self._people(ids)
        detections = self.recognizer.detect(image)
        ids = self.track([d.box for d in detections])
        if self.detect_every > 1:
            self._detected = dict(zip(ids, detections))
        if self.gallery is None:
            return detections, ids, ids
        return detections, ids, self.gallery.update(image, detections, ids, self.frames)

    def _people(self, ids: list[int | None]) -> list[int | None]:
        """Person ids of tracks seen before (frames without detection)."""
        if self.gallery is None:
            return ids
        return [self.gallery.person_of(t) for t in ids]

    def _predicted(self, image: np.ndarray) -> tuple[list[Detection], list[int | None]]:
        height, width = image.shape[:2]
        detections, ids = [], []
        for track_id, (x1, y1, x2, y2) in self.tracker.predict():
            last = self._detected.get(track_id)
            x, y = max(0, round(x1)), max(0, round(y1))
            box = (x, y, min(width, round(x2)) - x, min(height, round(y2)) - y)
            if last is None or min(box[2], box[3]) <= 0:
                continue
            shift = (box[0] - last.box[0], box[1] - last.box[1])
            detections.append(Detection(box, last.score, None if last.landmarks is None
                                        else last.landmarks + shift))
            ids.append(track_id)
        return detections, ids

    def track(self, boxes: list[tuple[int, int, int, int]]) -> list[int | None]:
        """Ids for this frame's face boxes."""
        return self.tracker.update(boxes) if self.tracker else [None] * len(boxes)

    def due(self, track_id: int | None) -> bool:
        """Whether this frame classifies the face: always for a face without id or without
        scores yet; otherwise every k-th frame, staggered by id so each frame does 1/k of them."""
        if track_id is None or self.every == 1 or track_id not in self._last:
            return True
        return (self.frames + track_id) % self.every == 0

    def scores(self, track_id: int | None, probs: np.ndarray | None) -> np.ndarray:
        """The scores to report: fresh ``probs`` (smoothed per track), or the track's last ones
        when this frame did not classify it."""
        if probs is None:
            return self._last[track_id]
        if track_id is None:
            return probs
        if self.smoother:
            probs = self.smoother(track_id, probs)
        self._last[track_id] = probs
        return probs

    def end_frame(self, ids: list[int | None]) -> dict[int, np.ndarray]:
        """Forget the scores of faces that left the frame (a returning face is classified at
        once) and count the frame. Returns the thumbnails of the people whose best crop this
        frame improved (person id -> BGR crop)."""
        visible = set(ids)
        for track_id in [t for t in self._last if t not in visible]:
            del self._last[track_id]
        self.frames += 1
        if self.gallery is None or not self.gallery.improved:
            return {}
        improved, self.gallery.improved = self.gallery.improved, set()
        people = self.gallery.people
        return {p: people[p].thumbnail for p in improved if p in people}
