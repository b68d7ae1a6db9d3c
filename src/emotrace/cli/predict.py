"""``emotrace predict``: run a Recognizer over the sources and feed the chosen sinks."""

from __future__ import annotations

import argparse
import sys

import cv2

from emotrace.utils import deferred_interrupt, progress


class _Window:
    """A live preview when OpenCV has a GUI and a display; otherwise a one-time notice."""

    def __init__(self) -> None:
        self.available = True

    def show(self, image) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        if not self.available:
            return True
        try:
            cv2.imshow("emotrace (q to quit)", image)
            return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
        except cv2.error:
            self.available = False
            print("emotrace predict: --show: no display available (headless OpenCV or no "
                  "$DISPLAY); processing continues without a window", file=sys.stderr)
            return True


def _describe(result) -> str:
    if not result.faces:
        return f"{result.source}: no face found"
    faces = ", ".join(f"{f.emotion} {f.scores[f.emotion]:.0%}" for f in result.faces)
    return f"{result.source}: {len(result.faces)} face(s): {faces}"


def predict(args: argparse.Namespace) -> int:
    from emotrace.cli.commands import EXIT_FAILED, EXIT_OK
    from emotrace.inference import Recognizer, probe_video
    from emotrace.inference.sinks import AnnotatedSink, CsvSink, JsonLinesSink
    from emotrace.inference.sources import SourceError, expand_sources, is_live_source

    if args.every < 1:
        raise ValueError("--every must be >= 1")
    recognizer = Recognizer(args.model, detector=args.detector, min_face=args.min_face,
                            track=not args.no_track, smooth=args.smooth)
    sources = list(expand_sources(args.sources))
    live = any(is_live_source(s) for s in sources)
    # Files only: probing a camera or stream would open it twice.
    videos = {str(s): probe_video(s) for s in sources
              if not isinstance(s, SourceError) and not is_live_source(s)}
    total = None if live else sum(-(-info.frames // args.every) if info and info.frames else 1
                                  for info in videos.values())
    sinks = []
    if args.json:
        sinks.append(JsonLinesSink(sys.stdout))
    if args.csv:
        sinks.append(CsvSink(args.csv))
    if args.save:
        sinks.append(AnnotatedSink(args.save, {s: i.fps for s, i in videos.items() if i}))
    window = _Window() if args.show else None
    failed = frames = 0
    results = recognizer.predict(sources, every=args.every, stream=True)
    try:
        for result in progress(results, desc="recognising", total=total, unit="frame"):
            if not result.ok:
                failed += 1
                print(f"emotrace predict: {result.source}: {result.error}", file=sys.stderr)
            elif result.frame is None and not result.faces:
                print(f"emotrace predict: {result.source}: no face found", file=sys.stderr)
            frames += result.ok
            with deferred_interrupt():  # every output gets this frame, or none does
                for sink in sinks:
                    sink.write(result)
            if not args.json and result.ok and result.frame is None:
                print(_describe(result))
            if window and result.image is not None and not window.show(result.draw()):
                break
    except KeyboardInterrupt:
        print("emotrace predict: interrupted; outputs keep what was processed", file=sys.stderr)
        for sink in sinks:
            sink.close()
        return 130
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    for sink in sinks:
        sink.close()
    if not args.json:
        written = [str(p) for s in sinks for p in getattr(s, "written", [])]
        if args.csv:
            written.insert(0, args.csv)
        print(f"{frames} image(s)/frame(s) processed, {failed} source error(s)"
              + (f"; wrote {', '.join(written)}" if written else ""), file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
