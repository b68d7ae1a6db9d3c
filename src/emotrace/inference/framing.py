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
    """How a detector box becomes the square crop the model sees.

    Attributes:
        scale: side of the square as a multiple of the box's longer side.
        shift_y: vertical move of the square's centre, as a fraction of its side (positive is
            down).

    Example:
        >>> Framing(scale=1.0, shift_y=0.05).square((10, 20, 100, 120))
        (0, 26, 120)
    """

    scale: float = 1.0
    shift_y: float = 0.0

    def square(self, box: tuple[int, int, int, int]) -> tuple[int, int, int]:
        """``(x0, y0, side)`` of the square crop for a detector box.

        Args:
            box: ``(x, y, w, h)`` from the detector.

        Returns:
            Top-left corner and side of the square (may reach outside the frame).

        Example:
            >>> Framing(scale=1.2).square((0, 0, 100, 100))
            (-10, -10, 120)
        """
        x, y, w, h = box
        side = max(1, int(round(self.scale * max(w, h))))
        cx, cy = x + w / 2, y + h / 2 + self.shift_y * side
        return int(round(cx - side / 2)), int(round(cy - side / 2)), side

    def crop(self, image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
        """The square crop of a grey or BGR frame as a grey ``size`` square (area-averaged when
        shrinking). Only the crop is converted to grey: a whole grey copy of a 100 MP frame
        would cost 100 MB.

        Args:
            image: ``(H, W)`` grey or ``(H, W, 3)`` BGR uint8 frame.
            box: ``(x, y, w, h)`` from the detector.
            size: side of the model's input.

        Returns:
            ``(size, size)`` uint8 grey face; parts outside the frame repeat its edge.

        Example:
            >>> Framing().crop(np.zeros((480, 640, 3), np.uint8), (600, 400, 80, 100), 96).shape
            (96, 96)
        """
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
