"""Face detectors: YuNet (default, shipped ONNX), the papers' Haar cascade, or none."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

YUNET_FILE = "face_detection_yunet_2023mar.onnx"


@dataclass
class Detection:
    """A face box ``(x, y, w, h)`` in image pixels, the detector's confidence (None when the
    detector has none) and five landmarks (eyes, nose, mouth corners) when it gives them."""

    box: tuple[int, int, int, int]
    score: float | None = None
    landmarks: np.ndarray | None = None


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class YuNetDetector:
    """OpenCV's YuNet CNN face detector. Large frames are detected on a copy shrunk to
    ``max_side`` (boxes are scaled back), which keeps huge photos fast."""

    name = "yunet"

    def __init__(self, model: str | Path | None = None, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, max_side: int = 960) -> None:
        path = Path(model) if model else Path(str(resources.files("emotrace") / "assets" / YUNET_FILE))
        if not path.is_file():
            raise FileNotFoundError(f"YuNet model not found: {path}")
        self.detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold,
                                                  nms_threshold, 5000)
        self.max_side = max_side
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self.detector.setInputSize(size)
            self._size = size
        _, faces = self.detector.detect(small)
        if faces is None:
            return []
        detections = []
        for row in faces:
            x, y, w, h = (row[:4] / scale).tolist()
            detections.append(Detection(_clip_box(x, y, w, h, width, height), float(row[14]),
                                        (row[4:14] / scale).reshape(5, 2)))
        return [d for d in detections if d.box[2] > 0 and d.box[3] > 0]


class HaarDetector:
    """The Haar cascade of the papers (``haarcascade_frontalface_default.xml`` from OpenCV).
    It gives no confidence, so ``score`` is None."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FileNotFoundError(f"Haar cascade not found or unreadable: {path}")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors,
                                              minSize=(24, 24))
        return [Detection(tuple(int(v) for v in box)) for box in boxes]


class WholeImageDetector:
    """No detection: the whole image is the face (inputs that are already face crops)."""

    name = "none"

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        return [Detection((0, 0, width, height), None)]


DETECTORS = {"yunet": YuNetDetector, "haar": HaarDetector, "none": WholeImageDetector}


def create_detector(name: str) -> FaceDetector:
    """``yunet``, ``haar`` or ``none``."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; use {', '.join(DETECTORS)}")
    return DETECTORS[name]()


def _clip_box(x: float, y: float, w: float, h: float, width: int,
              height: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)
