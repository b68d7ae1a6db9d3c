"""The ``emotrace`` command: argument parsing only; every sub-command calls the Python API.

This module imports nothing heavy: Ctrl-C or SIGTERM from the first moment end the program with
one line, and the process-wide settings a command line tool wants (quiet OpenCV/FFmpeg logs) are
made here, never on ``import emotrace``.
"""

from __future__ import annotations

if __name__ == "__main__":  # `python -m`: hold Ctrl-C and SIGTERM from our first statement (the
    import os as _os        # imports below take 50 ms, and a Ctrl-C there printed a traceback);
    import signal as _signal  # main() replaces these with handlers that close outputs whole

    _signal.signal(_signal.SIGINT, lambda *_: _os._exit(130))
    _signal.signal(_signal.SIGTERM, lambda *_: _os._exit(143))

import argparse
import os
import sys
from collections.abc import Sequence



def build_parser() -> argparse.ArgumentParser:
    """The ``emotrace`` parser: each command adds its own options (next to its body)."""
    from emotrace.cli import commands, predict

    parser = argparse.ArgumentParser(
        prog="emotrace",
        description="Facial emotion recognition: recognise emotions in faces, train and "
                    "evaluate models.",
        epilog="Run 'emotrace COMMAND --help' for the options of one command.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of internal errors (or EMOTRACE_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"emotrace {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in (commands.add_train_parser, predict.add_predict_parser,
                       commands.add_evaluate_parser, commands.add_calibrate_parser,
                       commands.add_export_parser, commands.add_curves_parser,
                       commands.add_ensemble_parser, commands.add_soup_parser,
                       commands.add_explain_parser, commands.add_serve_parser,
                       commands.add_study_parser):
        add_parser(sub)
    return parser


def _version() -> str:
    from emotrace import __version__

    return __version__


def _quiet_native_logs() -> None:
    """Our messages name the failing source; OpenCV's and FFmpeg's console logs only add noise."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn interruptions and errors into one line + exit code."""
    try:
        from emotrace.utils import stop_on_signals

        stop_on_signals()  # SIGTERM stops like Ctrl-C: outputs closed whole, exit 143
        args = build_parser().parse_args(argv)
        _quiet_native_logs()
        from emotrace.cli.commands import run

        return run(args, command_line=list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as stop:  # also utils.Interrupted (Ctrl-C, SIGTERM)
        print("emotrace: interrupted", file=sys.stderr)
        return getattr(stop, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
