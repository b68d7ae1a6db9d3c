"""Face detectors: YuNet (default, shipped ONNX), the papers' Haar cascade, or none."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emotrace.errors import ConfigError, NotFoundError

YUNET_FILE = "face_detection_yunet_2023mar.onnx"
#: YuNet still finds faces 11-13 px wide (measured on the test photos, scaled down).
YUNET_SMALLEST_FACE = 12
#: YuNet's output on inputs under about 40 px is uninitialised memory (different in every run,
#: sometimes infinite boxes): smaller copies are padded with black to this side first.
YUNET_MIN_INPUT = 64


@dataclass
class Detection:
    """A face box ``(x, y, w, h)`` in image pixels, the detector's confidence (None when the
    detector has none) and five landmarks (eyes, nose, mouth corners) when it gives them.

    Attributes:
        box: ``(x, y, w, h)`` in the image's pixels, clipped to the image.
        score: the detector's confidence, or ``None`` (Haar, no detection).
        landmarks: ``(5, 2)`` points (right eye, left eye, nose tip, mouth corners) in the
            image's pixels, or ``None``.
    """

    box: tuple[int, int, int, int]
    score: float | None = None
    landmarks: np.ndarray | None = None


class FaceDetector(Protocol):
    """What the Recognizer needs of a face detector: a ``name`` and ``detect``.

    Attributes:
        name: the detector's name (``yunet``, ``haar``, ``none``).
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces in one image.

        Args:
            image: ``(H, W, 3)`` BGR uint8 frame.

        Returns:
            One detection per face found.
        """
        ...


class YuNetDetector:
    """OpenCV's YuNet CNN face detector.

    Detection runs on a copy shrunk so that the longer side is at most ``max_side`` and a face of
    ``min_face`` pixels is still 12 px (the smallest YuNet finds), but never below half size;
    boxes and landmarks are scaled back to the frame. With ``min_face`` 24 (the Recognizer's
    default) frames are detected at half size.

    Args:
        model: a YuNet ONNX file (the shipped ``face_detection_yunet_2023mar.onnx`` when
            ``None``).
        score_threshold: the lowest confidence kept.
        nms_threshold: overlap above which non-maximum suppression drops a box.
        max_side: longest side of the copy detection runs on.
        min_face: the smallest face (px) the caller wants; larger values let detection run
            on a smaller copy.

    Raises:
        NotFoundError: the model file does not exist.

    Example:
        >>> from emotrace.data.images import read_image
        >>> faces = YuNetDetector(min_face=24).detect(read_image("src/emotrace/assets/samples/classroom.jpg"))
        >>> len(faces), faces[0].landmarks.shape
        (4, (5, 2))
    """

    name = "yunet"

    def __init__(self, model: str | Path | None = None, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, max_side: int = 960, min_face: int = 0) -> None:
        path = Path(model) if model else Path(str(resources.files("emotrace") / "assets" / YUNET_FILE))
        if not path.is_file():
            raise NotFoundError(f"YuNet model not found: {path}")
        self.detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                                  nms_threshold, 5000)
        self.max_side = max_side
        # Never below half size: boxes found on smaller copies get too coarse.
        self.min_scale = min(1.0, max(0.5, YUNET_SMALLEST_FACE / max(min_face, 1)))
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces in one frame, with confidences and five landmarks each.

        Args:
            image: ``(H, W, 3)`` BGR uint8 frame.

        Returns:
            The detections, boxes and landmarks in the frame's pixels.
        """
        height, width = image.shape[:2]
        # Never shrink below YUNET_MIN_INPUT on the short side: small images keep their pixels.
        floor = min(1.0, YUNET_MIN_INPUT / max(1, min(height, width)))
        scale = max(min(1.0, self.max_side / max(height, width), self.min_scale), floor)
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < YUNET_MIN_INPUT:
            small = cv2.copyMakeBorder(small, 0, max(0, YUNET_MIN_INPUT - small.shape[0]), 0,
                                       max(0, YUNET_MIN_INPUT - small.shape[1]),
                                       cv2.BORDER_CONSTANT)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self.detector.setInputSize(size)
            self._size = size
        _, faces = self.detector.detect(small)
        if faces is None:
            return []
        detections = []
        for row in faces[np.isfinite(faces).all(axis=1)]:  # garbage rows are dropped, not clipped
            x, y, w, h = (row[:4] / scale).tolist()
            box = _clip_box(x, y, w, h, width, height)
            if box[2] > 0 and box[3] > 0:
                detections.append(Detection(box, float(row[14]), (row[4:14] / scale).reshape(5, 2)))
        return detections


class HaarDetector:
    """The Haar cascade of the papers (``haarcascade_frontalface_default.xml`` from OpenCV).
    It gives no confidence, so ``score`` is None.

    Args:
        scale_factor: the image pyramid's step.
        min_neighbors: overlapping hits a face needs.
        min_face: the smallest face (px) searched for (at least 24).

    Raises:
        NotFoundError: OpenCV's cascade file is missing or unreadable.

    Example:
        >>> from emotrace.data.images import read_image
        >>> faces = HaarDetector().detect(read_image("../shared/testdata/face.jpg"))
        >>> faces[0].score is None, faces[0].landmarks is None
        (True, True)
    """

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_face: int = 0) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise NotFoundError(f"Haar cascade not found or unreadable: {path}")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size = max(24, min_face)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces in one frame (boxes only).

        Args:
            image: a BGR or grey uint8 frame.

        Returns:
            The detections, without score or landmarks.
        """
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        return [Detection(tuple(int(v) for v in box)) for box in boxes]


class WholeImageDetector:
    """No detection: the whole image is the face (inputs that are already face crops).

    Args:
        min_face: accepted for a uniform signature and ignored: every image is one face.

    Example:
        >>> WholeImageDetector().detect(np.zeros((48, 64, 3), np.uint8))[0].box
        (0, 0, 64, 48)
    """

    name = "none"

    def __init__(self, min_face: int = 0) -> None:
        pass  # every image is one face, whatever its size

    def detect(self, image: np.ndarray) -> list[Detection]:
        """One detection covering the whole image.

        Args:
            image: any image.

        Returns:
            A single detection ``(0, 0, width, height)`` without score.
        """
        height, width = image.shape[:2]
        return [Detection((0, 0, width, height), None)]


DETECTORS = {"yunet": YuNetDetector, "haar": HaarDetector, "none": WholeImageDetector}


def create_detector(name: str, min_face: int = 0) -> FaceDetector:
    """``yunet``, ``haar`` or ``none``; ``min_face`` (px) lets detectors skip smaller faces.

    Args:
        name: ``yunet`` (the default elsewhere), ``haar`` or ``none``.
        min_face: the smallest face (px) the caller wants.

    Returns:
        The detector, with its default settings.

    Raises:
        ConfigError: an unknown name.

    Example:
        >>> create_detector("haar").name
        'haar'
    """
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; use {', '.join(DETECTORS)}")
    return DETECTORS[name](min_face=min_face)


def _clip_box(x: float, y: float, w: float, h: float, width: int,
              height: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)
