"""Turn any source into frames: image file, numpy array, folder, glob, video, camera, stream.

Problems with one input (unreadable file, truncated video, camera that will not open) come out as
:class:`SourceError` items in the stream, so a batch goes on with the other inputs.
"""

from __future__ import annotations

import glob as globlib
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# Our messages name the failing source; OpenCV's and FFmpeg's own console logs only add noise.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".gif"}
MAX_PIXELS = 200_000_000  # ~14000 x 14000; larger images are refused before decoding
STREAM_TIMEOUT_MS = 10_000


@dataclass
class Frame:
    """One BGR uint8 image; ``index``/``time`` (seconds) are set for video, camera and stream."""

    image: np.ndarray
    source: str
    index: int | None = None
    time: float | None = None


@dataclass
class SourceError:
    """An input that could not be read, with a message saying why and what to do."""

    source: str
    message: str


@dataclass
class VideoInfo:
    source: str
    fps: float
    frames: int | None  # None for cameras and live streams
    width: int
    height: int


def is_live_source(source: object) -> bool:
    """A camera index or a stream URL (no length known in advance)."""
    if isinstance(source, int):
        return True
    return isinstance(source, str) and (source.isdigit() or "://" in source)


def is_video_source(source: object) -> bool:
    if is_live_source(source):
        return True
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in VIDEO_SUFFIXES


def expand_sources(sources: Iterable[object]) -> Iterator[object]:
    """Folders (recursively, sorted) and globs become their image/video files; other sources
    pass through. A folder or glob with no usable file yields a :class:`SourceError`."""
    for source in sources:
        if isinstance(source, (np.ndarray, int)):
            yield source
            continue
        text = str(source)
        if "://" in text or text.isdigit():
            yield text
        elif Path(text).is_dir():
            files = sorted(p for p in Path(text).rglob("*") if p.is_file()
                           and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            yield from (str(f) for f in files) if files else [
                SourceError(text, "folder has no image or video files")]
        elif any(c in text for c in "*?[") and not Path(text).exists():
            files = sorted(globlib.glob(text, recursive=True))
            yield from files if files else [SourceError(text, "no file matches this pattern")]
        else:
            yield text


def read_image(path: str) -> np.ndarray:
    """Decode an image file to BGR uint8 (grey, RGBA and 16-bit images are converted).

    Raises ``ValueError`` with a message naming the file when it cannot be used."""
    file = Path(path)
    if not file.is_file():
        raise ValueError("file not found")
    if file.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():  # our own MAX_PIXELS check replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(file)
        with header:  # reads the header only: size check before decoding
            width, height = header.size
    except Exception:
        width = height = 0  # not a format Pillow knows; let OpenCV try
    if width * height > MAX_PIXELS:
        raise ValueError(f"image too large ({width}x{height}, {width * height / 1e6:.0f} MP; "
                         f"limit {MAX_PIXELS / 1e6:.0f} MP): downscale it first")
    image = cv2.imdecode(np.fromfile(file, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a readable image (corrupt, truncated or not an image file)")
    return to_bgr8(image)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any grey / BGR / BGRA image of uint8, uint16 or float to 3-channel BGR uint8."""
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def open_video(source: str | int) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video file, camera index or stream URL; ``ValueError`` if it cannot be opened."""
    if isinstance(source, int) or str(source).isdigit():
        capture = cv2.VideoCapture(int(source))
        what = f"camera {source}: cannot open it (no such device, busy, or no permission)"
    elif "://" in str(source):
        capture = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
        what = "cannot open the stream (check the URL and that it is reachable)"
    else:
        if not Path(source).is_file():
            raise ValueError("file not found")
        capture = cv2.VideoCapture(str(source))
        what = "cannot open the video (corrupt, truncated or an unsupported codec)"
    if not capture.isOpened():
        capture.release()
        raise ValueError(what)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    live = is_live_source(source)
    info = VideoInfo(str(source), capture.get(cv2.CAP_PROP_FPS) or 30.0,
                     None if live or count <= 0 else count,
                     int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return capture, info


def video_frames(capture: cv2.VideoCapture, info: VideoInfo,
                 every: int = 1) -> Iterator[Frame | SourceError]:
    """Every ``every``-th frame; a file that ends well before its announced length yields a
    :class:`SourceError` after the frames that could be read."""
    index = 0
    try:
        while True:
            if index % every:
                if not capture.grab():
                    break
            else:
                ok, image = capture.read()
                if not ok or image is None:
                    break
                yield Frame(image, info.source, index, round(index / info.fps, 3))
            index += 1
    finally:
        capture.release()
    if info.frames and index < info.frames - 1 and index < 0.98 * info.frames:
        yield SourceError(info.source, f"video ended at frame {index} of {info.frames} "
                                       "(truncated or corrupt); results cover the frames read")
    elif info.frames is not None and index == 0:
        yield SourceError(info.source, "no frame could be decoded (corrupt or empty video)")


def probe_video(source: object) -> VideoInfo | None:
    """A video source's :class:`VideoInfo` (fps, frame count), or None for images and for
    sources that cannot be opened (reading them reports the error)."""
    if not is_video_source(source):
        return None
    try:
        capture, info = open_video(source)
    except ValueError:
        return None
    capture.release()
    return info
