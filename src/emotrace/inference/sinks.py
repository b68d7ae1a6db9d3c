"""Where results go: JSON lines, a CSV of faces, annotated images / videos, video summaries.

Every sink has the same small protocol (:class:`Sink`): ``start(info)`` when a source opens,
``write(result)`` for each image or frame, ``end(info)`` when the source is done, and it is a
context manager. Leaving the ``with`` block normally, or on Ctrl-C / SIGTERM, closes the sink
with every file whole up to the last finished frame; leaving on an error removes what it had
started. Files are written under a unique hidden temporary name and renamed when complete, so a
final name never holds a partial file; a write that fails raises
:class:`~emotrace.errors.OutputError` naming the file and the cause.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import IO

import cv2

from emotrace.data.labels import EMOTIONS
from emotrace.errors import OutputError
from emotrace.inference.results import Result
from emotrace.inference.sources import SourceInfo
from emotrace.inference.timeline import VideoTimeline
from emotrace.utils import (check_output_dir, check_output_file, deferred_interrupt,
                            describe_os_error, partial_path, remove_dead_partials,
                            remove_stale_partials)

CSV_FIELDS = ("source", "frame", "time", "face", "track_id", "person_id", "x", "y", "w", "h", "score",
              "emotion", *EMOTIONS)


class Sink:
    """Base class of result sinks; subclasses override what they need."""

    def __init__(self) -> None:
        self.written: list[Path] = []
        #: set when closing after another output failed did not work either
        self.failed: OutputError | None = None

    def start(self, info: SourceInfo) -> None:
        """A source was opened (its kind, fps, frame count and size are in ``info``)."""

    def write(self, result: Result) -> None:
        """One image or frame (or a source's error)."""

    def end(self, info: SourceInfo) -> None:
        """The source is finished (or was interrupted)."""

    def close(self) -> None:
        """Finish: every file whole and in place."""

    def abort(self) -> None:
        """Give up: remove what this sink had started."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, (KeyboardInterrupt, OutputError)):
            try:
                self.close()
            except OutputError as error:
                self.abort()
                if exc_type is None:
                    raise
                self.failed = error
        else:
            self.abort()


class Sinks:
    """The fan-out to a run's sinks, used by the in-process pipeline and by Ray alike: a source
    starts, each result goes to every sink, the source ends. Writes happen under the deferred
    interrupt: every output gets a result, or none does (Ctrl-C waits for the last sink).

    Example:
        >>> fan_out = Sinks([JsonLinesSink(sys.stdout)])
        >>> fan_out.write(Result("photo.jpg"))  # doctest: +SKIP
    """

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks = list(sinks)

    def start(self, info: SourceInfo) -> None:
        """Tell every sink that a source was opened."""
        for sink in self.sinks:
            sink.start(info)

    def write(self, result: Result) -> Result:
        """Hand ``result`` to every sink; returns it, so a generator can yield it on."""
        with deferred_interrupt():
            for sink in self.sinks:
                sink.write(result)
        return result

    def end(self, info: SourceInfo) -> None:
        """Tell every sink that the source is finished (or was interrupted)."""
        with deferred_interrupt():
            for sink in self.sinks:
                sink.end(info)


class JsonLinesSink(Sink):
    """One JSON object per result on a text stream (stdout by default)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def write(self, result: Result) -> None:
        try:
            self.stream.write(json.dumps(result.to_dict()) + "\n")
            self.stream.flush()
        except OSError as error:  # e.g. a closed pipe
            raise OutputError(getattr(self.stream, "name", "output stream"),
                              f"cannot write it: {describe_os_error(error)}") from None


class CsvSink(Sink):
    """One row per face per frame (``CSV_FIELDS``). A file is written under a temporary name and
    renamed into place by :meth:`close` (a symbolic link is followed: its target is replaced);
    ``-``, a device (``/dev/null``) or a named pipe is written to directly. The path is checked
    when the sink is made, before any work."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.rows = 0
        self._direct = str(path) == "-" or _is_special(Path(path))
        if self._direct:
            self.path = Path(path)
            self._tmp = None
            try:
                self._handle = sys.stdout if str(path) == "-" else open(path, "w", newline="")
            except OSError as error:
                raise OutputError(path, f"cannot write it: {describe_os_error(error)}") from None
        else:
            self.path = check_output_file(Path(path).resolve() if Path(path).is_symlink()
                                          else path, "CSV file")
            remove_stale_partials(self.path)
            self._tmp = partial_path(self.path)
            try:
                self._handle = open(self._tmp, "w", newline="")
            except OSError as error:
                self._fail(error)
        self._writer = csv.writer(self._handle)
        try:
            self._writer.writerow(CSV_FIELDS)
        except OSError as error:
            self._fail(error)

    def write(self, result: Result) -> None:
        try:
            for number, face in enumerate(result.faces):
                self._writer.writerow([result.source, result.frame, result.time, number,
                                       face.track_id, face.person_id, *face.box, face.score,
                                       face.emotion,
                                       *(face.scores[name] for name in EMOTIONS)])
                self.rows += 1
        except OSError as error:
            self._fail(error)

    def close(self) -> None:
        if self._handle.closed:
            return
        try:
            self._handle.flush()
            if self._tmp is None:  # stdout, a device or a pipe: written as we went
                if self._handle is not sys.stdout:
                    self._handle.close()
                return
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._tmp, self.path)
        except OSError as error:
            self._fail(error)
        self.written.append(self.path)

    def abort(self) -> None:
        if self._handle is not sys.stdout:
            self._handle.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def _fail(self, error: OSError):
        if hasattr(self, "_handle"):
            self.abort()
        raise OutputError(self.path, f"cannot write it: {describe_os_error(error)}") from None


def _is_special(path: Path) -> bool:
    """A character device (``/dev/null``) or a named pipe: written to, never replaced."""
    try:
        return path.is_char_device() or path.is_fifo()
    except OSError:
        return False


@dataclass
class _OpenVideo:
    """An annotated video being written: final path, temporary file, writer, frames, timeline."""

    path: Path
    tmp: Path | None
    writer: cv2.VideoWriter | None
    timeline: VideoTimeline
    frames: int = 0


#: Annotated video containers and their OpenCV codecs: MPEG-4 in MP4 plays in desktop players;
#: WebM plays in browsers. OpenCV's VP9 writer manages about 4 frames/s at 640x480, so WebM goes
#: through PyAV (VP9, realtime settings: about 100 frames/s, ``benchmarks/job_speed.py``) when
#: it is installed, and falls back to OpenCV's VP8 (about 33 frames/s) when it is not.
VIDEO_CODECS = {".mp4": "mp4v", ".webm": "VP80"}
#: PyAV's VP9 encoder options: realtime speed, row multithreading, a bit rate a 640x480 to
#: 1080p annotated video looks right at.
_VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "b": "2M"}


class _PyAVWriter:
    """A WebM (VP9) writer with OpenCV's ``VideoWriter`` methods; raises on write errors (which
    OpenCV's writer does not report)."""

    counts_frames = False

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        self._av = av
        self.container = av.open(str(path), "w", format="webm")
        rate = max(1, round(fps or 30.0))
        self.stream = self.container.add_stream("libvpx-vp9", rate=rate, options=_VP9_OPTIONS)
        self.stream.width, self.stream.height = size[0] // 2 * 2, size[1] // 2 * 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.thread_count = min(4, os.cpu_count() or 1)
        self.size = size

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def write(self, image) -> None:
        if image.shape[1] != self.stream.width or image.shape[0] != self.stream.height:
            image = image[:self.stream.height, :self.stream.width]
        frame = self._av.VideoFrame.from_ndarray(image, format="bgr24")
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except self._av.FFmpegError as error:
            raise OSError(str(error)) from None

    def release(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        except self._av.FFmpegError as error:
            raise OSError(str(error)) from None
        finally:
            self.container.close()


def _video_writer(path: Path, suffix: str, fps: float, size: tuple[int, int]):
    """PyAV's VP9 for WebM when PyAV is installed, else OpenCV's writer for the suffix."""
    if suffix == ".webm":
        try:
            return _PyAVWriter(path, fps, size)
        except ImportError:
            pass
    return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[suffix]),
                           fps or 30.0, size)


class AnnotatedSink(Sink):
    """Annotated copies in ``out_dir``: images as ``<name>.jpg``-like files (same suffix), each
    video as ``<stem>.mp4`` (or ``video_suffix``) plus ``<stem>.timeline.png`` and
    ``<stem>.summary.json``. ``video=False`` writes a video's timeline and summary only (the
    annotated video is most of the cost of a video run)."""

    def __init__(self, out_dir: str | os.PathLike, video_suffix: str = ".mp4",
                 names: dict[str, str] | None = None, video: bool = True) -> None:
        super().__init__()
        self.video = video
        if video_suffix not in VIDEO_CODECS:
            raise ValueError(f"video_suffix must be one of {', '.join(VIDEO_CODECS)}")
        self.video_suffix = video_suffix
        self.out_dir = check_output_dir(out_dir, "output folder")
        remove_dead_partials(self.out_dir)  # a killed run's video, whatever is written now
        self._names: dict[str, str] = dict(names or {})  # source -> output stem
        self._info: SourceInfo | None = None
        self._video: _OpenVideo | None = None

    def _name(self, source: str, suffix: str) -> Path:
        if source not in self._names:
            stem = Path(source).stem if not source.isdigit() and "://" not in source else (
                f"camera{source}" if source.isdigit() else "stream")
            name, n = stem, 1
            while name in self._names.values():
                name, n = f"{stem}_{n}", n + 1
            self._names[source] = name
        return self.out_dir / f"{self._names[source]}{suffix}"

    def adopt(self, paths: Sequence[str | os.PathLike]) -> None:
        """Files a worker elsewhere wrote for this sink (a Ray task's annotated video, under the
        name :meth:`reserve` gave it): reported as this sink's own."""
        self.written += [Path(p) for p in paths]

    def reserve(self, source: str) -> str:
        """The output stem of ``source``, chosen now (in source order, as a local run would):
        another process can then write that source's files under the same names."""
        return self._name(source, "").name

    def start(self, info: SourceInfo) -> None:
        self._info = info

    def write(self, result: Result) -> None:
        if result.image is None:
            return
        if self._info is None or not self._info.is_video:
            suffix = Path(result.source).suffix.lower()
            path = self._name(result.source, suffix if suffix in (".jpg", ".jpeg", ".png") else ".jpg")
            self.written.append(result.save(path))
            return
        if self._video is None:
            self._video = self._open_video(self._info, result)
        if self._video.writer is not None:
            try:
                self._video.writer.write(result.draw())
            except (OSError, ValueError) as error:  # PyAV's errors (a full disk) say why
                raise OutputError(self._video.path, f"cannot write it ({error})") from None
        self._video.frames += 1
        self._video.timeline.add(result)

    def _open_video(self, info: SourceInfo, first: Result) -> _OpenVideo:
        path = self._name(info.source, self.video_suffix)
        if not self.video:
            return _OpenVideo(path, None, None, VideoTimeline(info.source))
        remove_stale_partials(path)
        tmp = partial_path(path)
        height, width = first.image.shape[:2]
        try:
            writer = _video_writer(tmp, self.video_suffix, info.fps or 30.0, (width, height))
        except (OSError, ValueError) as error:
            tmp.unlink(missing_ok=True)
            raise OutputError(path, f"cannot write it ({error})") from None
        if not writer.isOpened():
            tmp.unlink(missing_ok=True)
            raise OutputError(path, "cannot write it (the MP4 writer did not open)")
        return _OpenVideo(path, tmp, writer, VideoTimeline(info.source))

    def end(self, info: SourceInfo) -> None:
        video, self._video, self._info = self._video, None, None
        if video is None:
            return
        if video.writer is None:
            self.written += video.timeline.save(self.out_dir, self._names[info.source])
            return
        try:
            video.writer.release()
        except (OSError, ValueError):
            video.tmp.unlink(missing_ok=True)
            raise OutputError(video.path, "the video could not be written whole (is the disk "
                                          "full?); nothing was left under this name") from None
        if getattr(video.writer, "counts_frames", True) and _count_frames(video.tmp) != video.frames:
            # OpenCV's writer reports no write errors: count what reached the file
            video.tmp.unlink(missing_ok=True)
            raise OutputError(video.path, "the video could not be written whole (is the disk "
                                          "full?); nothing was left under this name")
        try:
            os.replace(video.tmp, video.path)
        except OSError as error:
            video.tmp.unlink(missing_ok=True)
            raise OutputError(video.path, f"cannot write it: {describe_os_error(error)}") from None
        self.written += [video.path, *video.timeline.save(self.out_dir, self._names[info.source])]

    def close(self) -> None:
        if self._info is not None:
            self.end(self._info)

    def abort(self) -> None:
        if self._video is not None and self._video.writer is not None:
            try:
                self._video.writer.release()
            except OSError:  # giving up anyway
                pass
            self._video.tmp.unlink(missing_ok=True)
        self._video = None
        self._info = None


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else -1
    finally:
        capture.release()
