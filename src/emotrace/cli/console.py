"""What ``emotrace predict`` shows: the terminal report (a sink like the others) and the live
window. Imported when a prediction runs, so that building the CLI's parser stays light."""

from __future__ import annotations

import sys

import cv2
from tqdm.auto import tqdm

from emotrace.inference.results import Result
from emotrace.inference.sinks import Sink
from emotrace.inference.sources import SourceInfo


class ConsoleReport(Sink):
    """What a person at the terminal sees (stderr; per-photo lines on stdout without --json)."""

    def __init__(self, sources: int, every: int, describe_photos: bool) -> None:
        super().__init__()
        self.every, self.describe_photos = every, describe_photos
        self.failed = self.done = self.warned = 0
        self.bar = tqdm(total=sources, desc="recognising", unit="frame", leave=False,
                        disable=None, file=sys.stderr)

    def start(self, info: SourceInfo) -> None:
        if info.is_video and self.bar.total is not None:
            if info.frames is None:  # a camera or live stream: no end known
                self.bar.total = None
            else:
                self.bar.total += -(-info.frames // self.every) - 1
            self.bar.refresh()

    def write(self, result: Result) -> None:
        if not result.ok:
            self.failed += 1
            self._say(f"emotrace predict: {result.source}: {result.error}")
            return
        self.done += 1
        self.bar.update(1)
        if result.warning:
            self.warned += 1
            if self.warned == 1:
                self._say(f"emotrace predict: {result.source}: {result.warning}")
        if result.frame is None:
            if self.describe_photos:
                tqdm.write(_describe(result), file=sys.stdout)
            elif not result.faces:
                self._say(f"emotrace predict: {result.source}: no face found")

    def _say(self, message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        """Close the bar and let it go now, in this frame: freed later, among the native objects
        torn down after the run, its ``__del__`` was the first Python code to run after a late
        Ctrl-C, which Python then prints as an ignored exception's traceback."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    abort = close

    def summary(self, written: list[str]) -> str:
        text = f"{self.done} image(s)/frame(s) processed, {self.failed} source error(s)"
        if self.warned > 1:
            text += f", {self.warned} image(s) too small for face detection"
        return text + (f"; wrote {', '.join(written)}" if written else "")


class ShowWindow(Sink):
    """A live preview when OpenCV has a GUI and a display; otherwise a one-time notice."""

    def __init__(self) -> None:
        super().__init__()
        self.available, self.stopped = True, False

    def write(self, result: Result) -> None:
        if not self.available or result.image is None:
            return
        try:
            cv2.imshow("emotrace (q to quit)", result.draw())
            self.stopped = cv2.waitKey(1) & 0xFF in (ord("q"), 27)
        except cv2.error:
            self.available = False
            print("emotrace predict: --show: no display available (headless OpenCV or no "
                  "$DISPLAY); processing continues without a window", file=sys.stderr)


def _describe(result: Result) -> str:
    if not result.faces:
        return f"{result.source}: no face found"
    faces = ", ".join(f"{f.emotion} {f.scores[f.emotion]:.0%}" for f in result.faces)
    return f"{result.source}: {len(result.faces)} face(s): {faces}"
