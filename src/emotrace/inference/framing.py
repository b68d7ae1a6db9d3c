"""Cut face crops framed like the training data.

FER-2013 faces are tight, centred squares from the eyebrows to the chin. A detector box is
turned into a square of side ``scale * max(w, h)`` around the box centre (moved by ``shift_y``
of the side, positive = down); parts outside the frame are filled by edge replication. The default
``scale`` was chosen on FER-2013 validation faces (``benchmarks/framing.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Framing:
    scale: float = 1.0
    shift_y: float = 0.0

    def square(self, box: tuple[int, int, int, int]) -> tuple[int, int, int]:
        """``(x0, y0, side)`` of the square crop for a detector box."""
        x, y, w, h = box
        side = max(1, int(round(self.scale * max(w, h))))
        cx, cy = x + w / 2, y + h / 2 + self.shift_y * side
        return int(round(cx - side / 2)), int(round(cy - side / 2)), side

    def crop(self, image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
        """The square crop of a grey or BGR frame as a grey ``size`` square (area-averaged when
        shrinking). Only the crop is converted to grey: a whole grey copy of a 100 MP frame
        would cost 100 MB."""
        x0, y0, side = self.square(box)
        height, width = image.shape[:2]
        top, left = max(0, -y0), max(0, -x0)
        bottom, right = max(0, y0 + side - height), max(0, x0 + side - width)
        crop = image[max(0, y0):min(height, y0 + side), max(0, x0):min(width, x0 + side)]
        if crop.size == 0:
            crop = np.zeros((side, side), np.uint8)
        elif top or bottom or left or right:
            crop = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
        if crop.ndim == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        return cv2.resize(crop, (size, size), interpolation=interpolation)
