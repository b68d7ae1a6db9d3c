"""Shot changes (cuts) in a video, one frame at a time, with OpenCV.

PySceneDetect is not used: its current release (0.7) requires the non-headless ``opencv-python``
wheel, which clashes with ``opencv-python-headless`` (both install ``cv2``), and 0.6 pins
``click<8.3``. This detector does what its content detector does (the mean change of the HSV
pixels between consecutive frames, same default threshold, 27) on a 64-px-wide copy of each
frame (about 0.1 ms a frame), and also asks the colour histograms to change (Bhattacharyya
distance): a fast pan or a person walking close to the camera moves pixels but keeps the
colours. ``benchmarks/identity.py`` measures precision and recall on generated clips and on
cuts spliced into real footage (a new scene, or the same scene from another angle).
"""

from __future__ import annotations

import cv2
import numpy as np

from emotrace.errors import ConfigError

#: PySceneDetect's ContentDetector default (mean HSV change, 0-255).
DEFAULT_CONTENT_THRESHOLD = 27.0
#: Chosen on ``benchmarks/identity.py``: cuts to another angle of the same scene measured
#: 0.33-0.42, frames of one shot at most 0.19.
DEFAULT_HISTOGRAM_THRESHOLD = 0.15
SMALL_WIDTH = 64
BINS = (16, 8, 8)  # hue, saturation, value


class CutDetector:
    """Says whether each frame starts a new shot.

    ``content_threshold``: mean absolute change of the HSV pixels (0-255) between consecutive
    frames above which a frame may be a cut; ``histogram_threshold``: Bhattacharyya distance
    (0 = same colours, 1 = disjoint) of their colour histograms that must be passed too.
    ``min_gap``: frames after a cut during which no other cut is reported (a flash is one cut).

    Example:
        >>> cuts = CutDetector()
        >>> [cuts(frame) for frame in frames]   # True where a new shot starts
    """

    def __init__(self, content_threshold: float = DEFAULT_CONTENT_THRESHOLD,
                 histogram_threshold: float = DEFAULT_HISTOGRAM_THRESHOLD,
                 min_gap: int = 5) -> None:
        if not 0.0 < content_threshold < 255.0:
            raise ConfigError(f"content threshold must be between 0 and 255, got "
                              f"{content_threshold}")
        if not 0.0 <= histogram_threshold < 1.0:
            raise ConfigError(f"histogram threshold must be in [0, 1), got {histogram_threshold}")
        self.content_threshold, self.histogram_threshold = content_threshold, histogram_threshold
        self.min_gap = min_gap
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._since_cut = min_gap
        self.last_content = self.last_distance = 0.0

    def features(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A small HSV copy of a BGR image and its normalised colour histogram."""
        height, width = image.shape[:2]
        small_height = max(1, round(height * SMALL_WIDTH / max(width, 1)))
        # INTER_NEAREST: 20x cheaper than INTER_AREA at 1080p; the benchmark's cuts are found
        # as well.
        small = cv2.resize(image, (SMALL_WIDTH, small_height), interpolation=cv2.INTER_NEAREST)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256])
        return hsv.astype(np.float32), cv2.normalize(hist, None, 1.0, 0.0, cv2.NORM_L1)

    def __call__(self, image: np.ndarray) -> bool:
        """True when ``image`` (BGR) starts a new shot; the first frame is not a cut."""
        current = self.features(image)
        previous, self._previous = self._previous, current
        self._since_cut += 1
        if previous is None or previous[0].shape != current[0].shape:
            self.last_content = self.last_distance = 0.0
            return previous is not None  # a new frame size is a new shot
        self.last_content = float(np.abs(current[0] - previous[0]).mean())
        self.last_distance = float(cv2.compareHist(previous[1], current[1],
                                                   cv2.HISTCMP_BHATTACHARYYA))
        if (self.last_content > self.content_threshold
                and self.last_distance > self.histogram_threshold
                and self._since_cut > self.min_gap):
            self._since_cut = 0
            return True
        return False
