"""``emotrace predict``: a Recognizer run over the sources, feeding the chosen sinks.

The terminal is one more sink (:class:`ConsoleReport`): progress bar, a line per photo, every
source error and warning, the closing summary. The loop itself has no special cases.
"""

from __future__ import annotations

import argparse
import contextlib
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
        self.bar.close()

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


def _check_outputs_spare_inputs(args: argparse.Namespace, sources: list) -> None:
    """Outputs must never replace an input: refuse a --csv that is an input, and a --save
    folder that holds inputs (an annotated copy takes its input's name)."""
    from pathlib import Path

    from emotrace.errors import UsageError

    inputs = {Path(s).resolve(): s for s in sources if isinstance(s, str) and Path(s).is_file()}
    if args.csv and args.csv != "-" and Path(args.csv).resolve() in inputs:
        raise UsageError(f"--csv {args.csv} is one of the inputs; give another file name")
    if args.save:
        folder = Path(args.save).resolve()
        inside = [name for path, name in inputs.items() if path.parent == folder]
        if inside:
            raise UsageError(f"--save {args.save} holds input files ({inside[0]}"
                             + (f" and {len(inside) - 1} more" if len(inside) > 1 else "")
                             + "): their annotated copies would replace them; choose another "
                               "folder")


def _output_sinks(args: argparse.Namespace, stack: contextlib.ExitStack) -> list[Sink]:
    """The sinks the options ask for; their paths are checked here, before any work (the CSV,
    which creates its temporary file at once, comes last)."""
    from emotrace.inference.sinks import AnnotatedSink, CsvSink, JsonLinesSink

    sinks: list[Sink] = []
    if args.json:
        sinks.append(stack.enter_context(JsonLinesSink(sys.stdout)))
    if args.save:
        sinks.append(stack.enter_context(AnnotatedSink(args.save)))
    if args.csv:
        sinks.append(stack.enter_context(CsvSink(args.csv)))
    return sinks


def predict(args: argparse.Namespace) -> int:
    from emotrace.cli.commands import EXIT_FAILED, EXIT_OK
    from emotrace.errors import UsageError
    from emotrace.errors import OutputError
    from emotrace.config import RecognizerConfig
    from emotrace.inference import Recognizer
    from emotrace.inference.sources import expand_sources
    from emotrace.samples import sample_photos

    sources = [*args.sources, *(map(str, sample_photos()) if args.examples else [])]
    if not sources:
        raise UsageError("give at least one SOURCE (image, folder, glob, video, camera index or "
                         "stream URL), or --examples for the sample photos")
    if args.every < 1:
        raise UsageError(f"--every must be 1 or more, got {args.every}")
    for option, value in (("--csv", args.csv), ("--save", args.save)):
        if value is not None and not value.strip():
            raise UsageError(f"{option} needs a name, got an empty one")
    if args.csv == "-" and args.json:
        raise UsageError("--csv - and --json both write to standard output; choose one")
    if args.workers is not None and (args.workers < 1 or args.ray is None):
        raise UsageError("--workers takes a number of 1 or more and goes with --ray")
    config = RecognizerConfig.from_arguments(args)
    recognizer = Recognizer(config=config)
    expanded = expand_sources(sources)
    _check_outputs_spare_inputs(args, expanded)
    run, nodes = _pipeline(args, recognizer, config), set()
    console: ConsoleReport | None = None
    try:
        with contextlib.ExitStack() as stack:
            outputs = _output_sinks(args, stack)
            describe = not args.json and args.csv != "-"  # stdout carries the data then
            console = stack.enter_context(ConsoleReport(len(expanded), args.every, describe))
            window = ShowWindow() if args.show else None
            sinks = [*outputs, console, *([window] if window else [])]
            for _ in run(expanded, args.every, sinks, nodes):
                if window and window.stopped:
                    break
    except OutputError as error:
        if console is None:
            raise  # an output path checked before any work: a usage error (exit 2)
        for failure in [error, *(sink.failed for sink in outputs if sink.failed)]:
            print(f"emotrace predict: error: {failure}", file=sys.stderr)
        print(console.summary(_written(outputs)), file=sys.stderr)
        return EXIT_FAILED
    if not args.json:
        print(console.summary(_written(outputs)), file=sys.stderr)
    if args.ray is not None:
        print(f"emotrace predict: Ray: work done on {len(nodes)} node(s)", file=sys.stderr)
    return EXIT_FAILED if console.failed else EXIT_OK


def _pipeline(args: argparse.Namespace, recognizer, config):
    """The in-process pipeline, or the same on Ray (``--ray``)."""
    if args.ray is None:
        return lambda sources, every, sinks, nodes: recognizer.run(sources, every, sinks)
    from emotrace.errors import requires_extra

    with requires_extra("ray", "--ray"):
        from emotrace.distributed.ray_predict import predict_on_ray
    return lambda sources, every, sinks, nodes: predict_on_ray(
        config, sources, every, sinks, address=args.ray or None, nodes=nodes, workers=args.workers)


def _written(sinks: list[Sink]) -> list[str]:
    return [str(path) for sink in sinks for path in sink.written]
