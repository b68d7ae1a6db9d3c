"""Where results go: JSON lines, a CSV of faces, annotated images / videos, video summaries.

Every file is written under a temporary name and renamed when complete, so an interrupted or
failed run never leaves a half-written file behind.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO

import cv2

from emotrace.data.labels import EMOTIONS
from emotrace.inference.results import Result
from emotrace.inference.sources import is_video_source
from emotrace.inference.timeline import VideoTimeline

CSV_FIELDS = ("source", "frame", "time", "face", "track_id", "x", "y", "w", "h", "score",
              "emotion", *EMOTIONS)


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class JsonLinesSink:
    """One JSON object per result on a text stream (stdout by default)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, result: Result) -> None:
        self.stream.write(json.dumps(result.to_dict()) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class CsvSink:
    """One row per face per frame (``CSV_FIELDS``); renamed into place on :meth:`close`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _partial(self.path)
        self._handle = open(self._tmp, "w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(CSV_FIELDS)
        self.rows = 0

    def write(self, result: Result) -> None:
        for number, face in enumerate(result.faces):
            self._writer.writerow([result.source, result.frame, result.time, number, face.track_id,
                                   *face.box, face.score, face.emotion,
                                   *(face.scores[name] for name in EMOTIONS)])
            self.rows += 1

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (used when the run fails)."""
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


class AnnotatedSink:
    """Annotated copies in ``out_dir``: images as ``<name>.jpg``-like files (same suffix), each
    video as ``<stem>.mp4``; videos also get ``<stem>.timeline.png`` and ``<stem>.summary.json``."""

    def __init__(self, out_dir: str | os.PathLike, fps: dict[str, float] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fps = fps or {}
        self._names: dict[str, str] = {}
        self._video: tuple[str, cv2.VideoWriter, Path, VideoTimeline] | None = None
        self.written: list[Path] = []

    def _name(self, source: str, suffix: str) -> Path:
        if source not in self._names:
            stem = Path(source).stem if not source.isdigit() and "://" not in source else (
                f"camera{source}" if source.isdigit() else "stream")
            name, n = stem, 1
            while name in self._names.values():
                name, n = f"{stem}_{n}", n + 1
            self._names[source] = name
        return self.out_dir / f"{self._names[source]}{suffix}"

    def write(self, result: Result) -> None:
        if result.image is None:
            return
        if result.frame is None and not is_video_source(result.source):
            suffix = Path(result.source).suffix.lower()
            path = self._name(result.source, suffix if suffix in (".jpg", ".jpeg", ".png") else ".jpg")
            self.written.append(result.save(path))
            return
        if self._video is None or self._video[0] != result.source:
            self._finish_video()
            path = self._name(result.source, ".mp4")
            height, width = result.image.shape[:2]
            writer = cv2.VideoWriter(str(_partial(path)), cv2.VideoWriter_fourcc(*"mp4v"),
                                     self.fps.get(result.source, 30.0), (width, height))
            self._video = (result.source, writer, path, VideoTimeline(result.source))
        self._video[1].write(result.draw())
        self._video[3].add(result)

    def _finish_video(self) -> None:
        if self._video is None:
            return
        source, writer, path, timeline = self._video
        writer.release()
        os.replace(_partial(path), path)
        self.written += [path, *timeline.save(self.out_dir, self._names[source])]
        self._video = None

    def close(self) -> None:
        self._finish_video()

    def abort(self) -> None:
        if self._video is not None:
            self._video[1].release()
            _partial(self._video[2]).unlink(missing_ok=True)
            self._video = None
