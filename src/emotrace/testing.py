"""Synthetic inputs for tests, benchmarks and demos: a panning video of real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_panning_video(photo: str | Path, path: str | Path, frames: int = 30,
                        size: tuple[int, int] = (640, 480), tiles: int = 2, step: int = 1,
                        fps: float = 30.0) -> Path:
    """Tile ``photo`` ``tiles`` x ``tiles`` and pan a ``size`` window over it by ``step`` pixels
    per frame (faces move, so trackers have work to do). Writes an MP4 (mp4v)."""
    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"{photo}: not a readable image")
    width, height = size
    canvas = np.tile(image, (tiles, tiles, 1))
    scale = max(height / canvas.shape[0], (width + frames * step) / canvas.shape[1], 1.0)
    if scale > 1.0:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for index in range(frames):
        x = index * step
        writer.write(np.ascontiguousarray(canvas[:height, x:x + width]))
    writer.release()
    return Path(path)
