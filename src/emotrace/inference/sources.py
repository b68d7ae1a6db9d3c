"""Turn any source into frames: image file, numpy array, folder, glob, video, camera, stream.

Sources are expanded once (:func:`expand_sources`: folders and globs become their files) and
each is opened once (:func:`open_source`): its :class:`SourceInfo` (kind, fps, frame count, size)
travels with every :class:`Frame` it yields. A source that cannot be read raises
:class:`SourceError` naming it, at opening or after the frames that could be read, so a batch
goes on with the other inputs.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotrace.config import DEFAULT_TIMEOUT_S  # declared with the Recognizer's options
from emotrace.data.images import MAX_PIXELS, ImageError, check_pixels, read_image, to_bgr8

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
#: Video containers emotrace reads (through OpenCV's FFmpeg), one list for the CLI and the
#: service: (the suffix an upload is stored under, other suffixes, (offset, first bytes), ...).
#: Folders and globs pick files by suffix; uploads are recognised by their bytes.
VIDEO_FORMATS: tuple[tuple[str, tuple[str, ...], tuple[tuple[int, bytes], ...]], ...] = (
    (".mp4", (".mov", ".m4v", ".3gp"), ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"wide"),
                                         (4, b"free"))),
    (".mkv", (".webm",), ((0, b"\x1a\x45\xdf\xa3"),)),
    (".avi", (), ((0, b"RIFF"),)),  # and "AVI " at 8, checked in sniff_video
    (".mpg", (".mpeg",), ((0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"))),
    (".ts", (".mts", ".m2ts"), ((0, b"\x47"), (4, b"\x47"))),  # sync bytes every 188/192 bytes
    (".wmv", (".asf",), ((0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"),)),
    (".flv", (), ((0, b"FLV\x01"),)),
    (".ogv", (), ((0, b"OggS"),)),
    (".gif", (), ((0, b"GIF87a"), (0, b"GIF89a"))),
)
VIDEO_SUFFIXES = {suffix for main, others, _ in VIDEO_FORMATS for suffix in (main, *others)}
#: The containers of :data:`VIDEO_FORMATS` as users know them (in the service's 415 answer).
VIDEO_FORMAT_NAMES = "MP4/MOV, MKV/WebM, AVI, MPEG/MPEG-TS, WMV/ASF, FLV, GIF"
#: Bytes of a file's head :func:`sniff_video` looks at.
SNIFF_BYTES = 4096


def sniff_video(head: bytes) -> str | None:
    """The suffix of the video container whose first bytes ``head`` are (4 kB is plenty), or
    None: an upload's declared name and type are not trusted.

    Example:
        >>> sniff_video(b"\\x00\\x00\\x00\\x18ftypmp42")
        '.mp4'
    """
    for suffix, _, signatures in VIDEO_FORMATS:
        for offset, magic in signatures:
            if head[offset:offset + len(magic)] != magic:
                continue
            if suffix == ".avi" and head[8:12] != b"AVI ":
                continue
            if suffix == ".ts":  # one sync byte proves nothing: the next two packets must agree
                packet = 188 if offset == 0 else 192
                if any(head[offset + k * packet:offset + k * packet + 1] != b"\x47"
                       for k in (1, 2)):
                    continue
            return suffix
    return None


def sniffs_as_video(path: str | os.PathLike) -> bool:
    """Whether the regular file ``path``, whose suffix names no image or video format, holds a
    video container (:func:`sniff_video` on its head): a clip saved without its suffix is read
    as the video it is, not refused as "not a readable image". Never reads a pipe or a device.

    Example:
        >>> sniffs_as_video("/dev/zero")
        False
    """
    if not isinstance(path, (str, os.PathLike)):
        return False
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        return False
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            return sniff_video(handle.read(SNIFF_BYTES)) is not None
    except OSError:  # unreadable: reading it as an image says why
        return False


#: Longest wait, when a video is closed early, for its reader thread to leave OpenCV.
CLOSE_WAIT_S = 3.0


class SourceError(Exception):
    """An input that could not be read (or stopped part-way); ``message`` says why."""

    def __init__(self, source: object, message: str) -> None:
        super().__init__(message)
        self.source, self.message = str(source), message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class SourceInfo:
    """What is known of an opened source. ``kind``: image, array, video, camera or stream;
    for the last three ``fps``, ``frames`` (None when unknown: cameras, live streams) and the
    frame size."""

    source: str
    kind: str
    width: int
    height: int
    fps: float | None = None
    frames: int | None = None

    @property
    def is_video(self) -> bool:
        return self.kind in ("video", "camera", "stream")


@dataclass
class Frame:
    """One BGR uint8 image of a source; ``index``/``time`` (seconds) are set for video."""

    image: np.ndarray
    info: SourceInfo
    index: int | None = None
    time: float | None = None

    @property
    def source(self) -> str:
        return self.info.source


def is_live_source(source: object) -> bool:
    """A camera index or a stream URL."""
    if isinstance(source, int):
        return True
    return isinstance(source, str) and (source.isdigit() or "://" in source)


def is_video_source(source: object) -> bool:
    if isinstance(source, NamedSource):
        return is_video_source(source.path)
    if is_live_source(source):
        return True
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in VIDEO_SUFFIXES


class ExpandedSources(list):
    """The result of :func:`expand_sources`; expanding it again returns it unchanged."""


@dataclass(frozen=True)
class NamedSource:
    """A file read from ``path`` but reported as ``name`` (a service shows an upload's name,
    never its own paths)."""

    path: str
    name: str


def _wanted(path: Path) -> bool:
    """Image/video suffixes; broken links and special files too (they are reported, not
    silently skipped); never folders."""
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and not path.is_dir()


def _glob(pattern: str) -> list[str]:
    """Files matching ``pattern`` (``**`` recursive). Symbolic links to folders are not followed
    (a link loop would never end), and each file is listed once."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    found, seen = [], set()
    for path in sorted(root.glob(str(Path(*parts[fixed:])))):
        key = os.path.realpath(path)
        if _wanted(path) and key not in seen:
            seen.add(key)
            found.append(str(path) if fixed or not str(path).startswith("./") else str(path)[2:])
    return found


def expand_sources(sources: object | Iterable[object]) -> ExpandedSources:
    """One source or a list of them -> a flat list: folders (recursively, sorted) and globs become
    their image/video files; a folder or glob with no usable file becomes a :class:`SourceError`;
    paths, URLs, camera indices and arrays pass through."""
    if isinstance(sources, ExpandedSources):
        return sources
    single = isinstance(sources, (str, os.PathLike, int, np.ndarray))
    expanded = ExpandedSources()
    for source in [sources] if single else sources:
        if isinstance(source, (np.ndarray, int, NamedSource)):
            expanded.append(source)
            continue
        text = os.fspath(source)
        if "://" in text or text.isdigit():
            expanded.append(text)
        elif Path(text).is_dir():
            files = sorted(str(p) for p in Path(text).rglob("*") if _wanted(p))
            expanded += files or [SourceError(text, "folder has no image or video files")]
        elif any(c in text for c in "*?[") and not Path(text).exists():
            files = _glob(text)
            expanded += files or [SourceError(text, "no file matches this pattern")]
        else:
            expanded.append(text)
    return expanded


class OpenSource:
    """A source opened once: :attr:`info` and :meth:`frames`. Close it (or use ``with``)."""

    info: SourceInfo

    def frames(self, every: int = 1) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> OpenSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StillSource(OpenSource):
    """An image file (decoded when opened) or an array."""

    def __init__(self, image: np.ndarray, name: str, kind: str) -> None:
        self.image = image
        self.info = SourceInfo(name, kind, image.shape[1], image.shape[0])

    def frames(self, every: int = 1) -> Iterator[Frame]:
        yield Frame(self.image, self.info)


#: Frames a reader thread decodes ahead of the pipeline, so that decoding (about 11 ms for a
#: 1080p frame) overlaps detection and classification; two keep a camera's delay short.
PREFETCH = 2


class VideoSource(OpenSource):
    """A video file, camera or stream read with OpenCV; failures are raised as
    :class:`SourceError` after the frames that could be read. Frames are decoded by a reader
    thread (OpenCV releases the GIL) that owns the capture from then on."""

    def __init__(self, source: str | int, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.capture, self.info = _open_capture(source, timeout)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def frames(self, every: int = 1) -> Iterator[Frame]:
        decoded: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self._reader = threading.Thread(target=self._read, args=(every, decoded), daemon=True,
                                        name=f"emotrace-decode-{self.info.source}")
        self._reader.start()
        try:
            while not isinstance(item := decoded.get(), _End):
                yield item
        finally:
            self.close()
            while not decoded.empty():  # unblock the reader if it waits to hand over a frame
                decoded.get_nowait()
        if item.error:
            raise SourceError(self.info.source, f"decoding failed after frame {item.count}: "
                                                f"{item.error}")
        self._check_end(item.count, item.stalled)

    def _read(self, every: int, decoded: queue.Queue) -> None:
        """The reader thread: grab every frame, decode the wanted ones, hand them over."""
        index, stalled, error = 0, False, None
        try:
            while not self._stop.is_set():
                started, wanted = time.monotonic(), index % every == 0
                ok, image = self.capture.grab(), None
                if ok and wanted:
                    ok, image = self.capture.retrieve()
                    ok = ok and image is not None
                if not ok:
                    stalled = time.monotonic() - started >= 0.9 * self.timeout
                    break
                if wanted:
                    self._hand_over(decoded, Frame(image, self.info, index,
                                                   round(index / self.info.fps, 3)))
                index += 1
        except Exception as failure:  # noqa: BLE001 - reported to the pipeline, not lost in a thread
            error = failure
        finally:
            self.capture.release()
            self._hand_over(decoded, _End(index, stalled, error))

    def _hand_over(self, decoded: queue.Queue, item: object) -> None:
        while not self._stop.is_set():
            try:
                decoded.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _check_end(self, count: int, stalled: bool) -> None:
        info = self.info
        if count == 0:
            raise SourceError(info.source, "no frame could be decoded (corrupt or empty video, "
                                           "or a stream that sends nothing)" if not stalled else
                              f"no frame arrived within {self.timeout:g} s (the stream stalled)")
        if stalled:
            raise SourceError(info.source, f"the stream stalled after frame {count}: no frame "
                                           f"for {self.timeout:g} s; results cover the frames read")
        if info.frames and count < info.frames - 1 and count < 0.98 * info.frames:
            why = ("the stream stalled or was cut off" if info.kind == "stream"
                   else "truncated or corrupt")
            raise SourceError(info.source, f"video ended at frame {count} of {info.frames} "
                                           f"({why}); results cover the frames read")

    def close(self) -> None:
        """Stop reading and wait for the reader thread, when there is one, to release the
        capture."""
        self._stop.set()
        if self._reader is None:
            self.capture.release()
        elif self._reader is not threading.current_thread():
            # A thread still inside OpenCV when the interpreter exits (Ctrl-C) aborts the whole
            # process ("terminate called without an active exception"). A file's grab takes
            # milliseconds; a stalled stream's is bounded by the read timeout, a camera's by
            # nothing: wait a few seconds at most, so Ctrl-C never hangs for long.
            self._reader.join(timeout=min(self.timeout, CLOSE_WAIT_S))


@dataclass(frozen=True)
class _End:
    """The reader thread's last message: frames read, whether the source stalled, an error."""

    count: int
    stalled: bool
    error: Exception | None = None


def _open_capture(source: str | int, timeout: float) -> tuple[cv2.VideoCapture, SourceInfo]:
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout * 1000)]
    if isinstance(source, int) or str(source).isdigit():
        kind, capture = "camera", cv2.VideoCapture(int(source))
        what = f"camera {source}: cannot open it (no such device, busy, or no permission)"
    elif "://" in str(source):
        kind, capture = "stream", cv2.VideoCapture(str(source), cv2.CAP_FFMPEG, timeouts)
        what = "cannot open the stream (check the URL and that it is reachable)"
    else:
        if not Path(source).exists():
            raise SourceError(source, "file not found")
        if not Path(source).is_file():
            raise SourceError(source, "not a regular file (a device, a pipe or a folder)")
        if Path(source).stat().st_size == 0:
            raise SourceError(source, "empty file (0 bytes)")
        kind, capture = "video", cv2.VideoCapture(str(source), cv2.CAP_ANY, timeouts)
        what = "cannot open the video (corrupt, truncated or an unsupported codec)"
    if not capture.isOpened():
        capture.release()
        raise SourceError(source, what)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = SourceInfo(str(source), kind, width, height,
                      fps if fps and 0 < fps < 1000 else 30.0,
                      count if kind != "camera" and count > 0 else None)
    try:
        check_pixels(width, height)
    except ImageError as error:
        capture.release()
        raise SourceError(source, f"video frames {error}") from None
    return capture, info


def open_source(source: object, timeout: float = DEFAULT_TIMEOUT_S) -> OpenSource:
    """Open one expanded source (path, URL, camera index or array); :class:`SourceError` if it
    cannot be read."""
    if isinstance(source, SourceError):
        raise source
    if isinstance(source, NamedSource):
        try:
            opened = open_source(source.path, timeout)
        except SourceError as error:
            raise SourceError(source.name, error.message) from None
        opened.info = dataclasses.replace(opened.info, source=source.name)
        return opened
    if isinstance(source, np.ndarray):
        return StillSource(to_bgr8(source), "array", "array")
    if is_video_source(source) or sniffs_as_video(source):
        return VideoSource(source if isinstance(source, int) else str(source), timeout)
    try:
        return StillSource(read_image(str(source)), str(source), "image")
    except ImageError as error:
        raise SourceError(source, str(error)) from None


__all__ = ["DEFAULT_TIMEOUT_S", "ExpandedSources", "Frame", "NamedSource", "IMAGE_SUFFIXES", "MAX_PIXELS", "OpenSource",
           "SourceError", "SourceInfo", "VIDEO_FORMATS", "VIDEO_FORMAT_NAMES", "VIDEO_SUFFIXES", "expand_sources", "is_live_source",
           "is_video_source", "open_source", "sniff_video", "sniffs_as_video", "read_image", "to_bgr8"]
