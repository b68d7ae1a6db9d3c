"""``emotrace predict``: a Recognizer run over the sources, feeding the chosen sinks.

The terminal is one more sink (:class:`~emotrace.cli.console.ConsoleReport`): progress bar, a
line per photo, every source error and warning, the closing summary. The loop itself has no
special cases.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from emotrace.config import RecognizerConfig

if TYPE_CHECKING:
    from emotrace.cli.console import ConsoleReport
    from emotrace.inference.sinks import Sink


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


def add_predict_parser(sub: argparse._SubParsersAction) -> None:
    """``emotrace predict``: its options, beside its body."""
    parser = sub.add_parser(
        "predict", help="recognise emotions in images, folders, videos, cameras, streams",
        description="Detect faces and classify their emotions. SOURCE is an image, a folder "
                   "(recursive), a glob, a video file, a camera index (0) or a stream URL. "
                   "Exit code 1 when a source could not be read.")
    parser.add_argument("sources", nargs="*", metavar="SOURCE")
    parser.add_argument("--examples", action="store_true",
                        help="add the sample photos shipped with emotrace to the sources")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per image / frame")
    parser.add_argument("--save", metavar="DIR",
                        help="write annotated images / videos, and per-video timeline + summary")
    parser.add_argument("--csv", metavar="FILE", help="write one row per face per frame")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="process every N-th video frame (default: %(default)s)")
    parser.add_argument("--show", action="store_true", help="show a live window when a display exists")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="spread the work over Ray: no ADDRESS starts a local Ray for the "
                             "run; 'auto' or HOST:PORT or ray://HOST:PORT joins a cluster "
                             "(needs the ray extra; --save must be a folder every node reaches)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="with --ray: at most N image actors (and N CPUs for a local Ray)")
    RecognizerConfig.add_arguments(parser)  # --model, --detector, --min-face, ...
    parser.set_defaults(run=predict)


def predict(args: argparse.Namespace) -> int:
    from emotrace.cli.commands import EXIT_FAILED, EXIT_OK
    from emotrace.errors import UsageError
    from emotrace.errors import OutputError
    from emotrace.cli.console import ConsoleReport, ShowWindow
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
