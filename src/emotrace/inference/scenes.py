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
        >>> dark = np.zeros((120, 160, 3), np.uint8)
        >>> green = np.full((120, 160, 3), (40, 200, 90), np.uint8)
        >>> cuts = CutDetector()
        >>> [cuts(frame) for frame in [dark] * 3 + [green] * 3]  # True where a new shot starts
        [False, False, False, True, False, False]
    """

    def __init__(self, content_threshold: float = DEFAULT_CONTENT_THRESHOLD,
                 histogram_threshold: float = DEFAULT_HISTOGRAM_THRESHOLD,
                 min_gap: int = 5, always_histogram: bool = False) -> None:
        if not 0.0 < content_threshold < 255.0:
            raise ConfigError(f"content threshold must be between 0 and 255, got "
                              f"{content_threshold}")
        if not 0.0 <= histogram_threshold < 1.0:
            raise ConfigError(f"histogram threshold must be in [0, 1), got {histogram_threshold}")
        self.content_threshold, self.histogram_threshold = content_threshold, histogram_threshold
        self.min_gap, self.always_histogram = min_gap, always_histogram
        self._previous: np.ndarray | None = None
        self._since_cut = min_gap
        #: The last frame's signals: content change, and histogram distance (measured only
        #: when the content changed enough, or with ``always_histogram``; else 0).
        self.last_content = self.last_distance = 0.0

    def features(self, image: np.ndarray) -> np.ndarray:
        """A small HSV copy of a BGR image."""
        height, width = image.shape[:2]
        small_height = max(1, round(height * SMALL_WIDTH / max(width, 1)))
        # INTER_NEAREST: 20x cheaper than INTER_AREA at 1080p; the benchmark's cuts are found
        # as well.
        small = cv2.resize(image, (SMALL_WIDTH, small_height), interpolation=cv2.INTER_NEAREST)
        return cv2.cvtColor(small, cv2.COLOR_BGR2HSV)

    @staticmethod
    def histogram(hsv: np.ndarray) -> np.ndarray:
        """The normalised colour histogram of a small HSV copy."""
        hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256])
        return cv2.normalize(hist, None, 1.0, 0.0, cv2.NORM_L1)

    def __call__(self, image: np.ndarray) -> bool:
        """True when ``image`` (BGR) starts a new shot; the first frame is not a cut."""
        current = self.features(image)
        previous, self._previous = self._previous, current
        self._since_cut += 1
        self.last_content = self.last_distance = 0.0
        if previous is None or previous.shape != current.shape:
            return previous is not None  # a new frame size is a new shot
        # cv2.absdiff + cv2.mean on uint8: a third of the cost of the float32 numpy version
        self.last_content = sum(cv2.mean(cv2.absdiff(current, previous))[:3]) / 3
        if self.last_content <= self.content_threshold and not self.always_histogram:
            return False  # most frames: the histograms are not needed
        self.last_distance = float(cv2.compareHist(self.histogram(previous),
                                                   self.histogram(current),
                                                   cv2.HISTCMP_BHATTACHARYYA))
        if (self.last_content > self.content_threshold
                and self.last_distance > self.histogram_threshold
                and self._since_cut > self.min_gap):
            self._since_cut = 0
            return True
        return False
