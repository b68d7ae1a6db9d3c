"""Robustness slices of a face photo: the ways real footage degrades a face (numpy + OpenCV only,
so the `fer` peer's environment imports this file too).

Every slice is deterministic given the image's index, so two models, and two runs, see the same
pixels. The slices work on the BGR photo *before* greying, as a camera would: a warm stage light
tints the colours, and the classifier's grey conversion then sees the tint.

    from realworld_slices import SLICES, degrade
    bad = degrade(image_bgr, "low_light", index=17)
"""

from __future__ import annotations

import cv2
import numpy as np

#: name -> what it imitates (the benchmark's rows, in this order).
SLICES = {
    "clean": "the photo as given",
    "low_light": "dim room: gamma 2-3 and 60% contrast",
    "warm_cast": "tungsten / stage light: blue down 45%, green down 20%, then 75% brightness",
    "blur": "out of focus / motion: Gaussian blur, sigma 2.5% of the face side",
    "jpeg20": "heavy compression: JPEG at quality 20",
    "small48": "a face 48 px wide, scaled back up",
    "small24": "a face 24 px wide, scaled back up",
    "rotate20": "head tilt: in-plane rotation of +20 or -20 degrees (alternating)",
    "occlude_mouth": "a hand over the mouth: a skin-grey block over the lower middle third",
    "occlude_eyes": "a hand / glasses glare over the eyes: a block over the upper middle band",
}


def _low_light(image: np.ndarray, index: int) -> np.ndarray:
    gamma = 2.0 + (index % 11) / 10.0  # 2.0 .. 3.0, spread over the images
    table = (255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.float32)
    dark = table[image]
    return np.clip(0.6 * (dark - dark.mean()) + dark.mean(), 0, 255).astype(np.uint8)


def _warm_cast(image: np.ndarray, index: int) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    gains = np.array([0.55, 0.8, 1.0], np.float32) * 0.75  # B, G, R
    return np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def _blur(image: np.ndarray, index: int) -> np.ndarray:
    sigma = 0.025 * min(image.shape[:2])
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _jpeg(image: np.ndarray, index: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _small(side: int):
    def shrink(image: np.ndarray, index: int) -> np.ndarray:
        height, width = image.shape[:2]
        scale = side / max(height, width)
        small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return shrink


def _rotate(image: np.ndarray, index: int) -> np.ndarray:
    height, width = image.shape[:2]
    angle = 20.0 if index % 2 == 0 else -20.0
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def _block(image: np.ndarray, index: int, top: float, bottom: float) -> np.ndarray:
    """A flat, slightly noisy block between ``top`` and ``bottom`` (fractions of the height),
    over the middle 60% of the width: about a hand's size on a tight face crop."""
    out = image.copy()
    height, width = image.shape[:2]
    y0, y1 = int(top * height), int(bottom * height)
    x0, x1 = int(0.2 * width), int(0.8 * width)
    rng = np.random.default_rng(index)
    tone = 90 + (index * 37) % 120  # skin-to-sleeve greys, varied across images
    patch = np.clip(tone + rng.normal(0, 6, (y1 - y0, x1 - x0)), 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = patch if image.ndim == 2 else patch[:, :, None]
    return out


_APPLY = {
    "clean": lambda image, index: image,
    "low_light": _low_light,
    "warm_cast": _warm_cast,
    "blur": _blur,
    "jpeg20": _jpeg,
    "small48": _small(48),
    "small24": _small(24),
    "rotate20": _rotate,
    "occlude_mouth": lambda image, index: _block(image, index, 0.62, 0.95),
    "occlude_eyes": lambda image, index: _block(image, index, 0.25, 0.5),
}


def degrade(image: np.ndarray, name: str, index: int = 0) -> np.ndarray:
    """The photo ``image`` (BGR or grey uint8) under slice ``name``; ``index`` varies the
    parameters that vary across images (gamma, rotation sign, block tone)."""
    if name not in _APPLY:
        raise KeyError(f"unknown slice {name!r}; the slices are {', '.join(SLICES)}")
    return _APPLY[name](image, index)
