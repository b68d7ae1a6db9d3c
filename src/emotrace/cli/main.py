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
    """Entry point: parse, run, and turn interruptions and errors into one line + exit code.

    Args:
        argv: the arguments after ``emotrace``; None reads ``sys.argv`` and means this process is
            the program, so a Ctrl-C after the work is done no longer changes its exit code.

    Returns:
        The exit code: 0 done, 1 some sources failed, 2 usage error, 130/143 interrupted.
    """
    try:
        from emotrace.utils import stop_on_signals

        stop_on_signals()  # SIGTERM stops like Ctrl-C: outputs closed whole, exit 143
        args = build_parser().parse_args(argv)
        _quiet_native_logs()
        from emotrace.cli.commands import run

        code = run(args, command_line=list(sys.argv[1:] if argv is None else argv))
        return _hold_late_signals(code) if argv is None else code  # in the try: no gap
    except KeyboardInterrupt as stop:  # also utils.Interrupted (Ctrl-C, SIGTERM)
        print("emotrace: interrupted", file=sys.stderr)
        code = getattr(stop, "exit_code", 130)
        return _hold_late_signals(code) if argv is None else code


def _hold_late_signals(code: int) -> int:
    """Flush, then ignore Ctrl-C and SIGTERM for the rest of the process: the work is done and
    every output closed. CPython resets its handlers to the default while it shuts down, so a
    Ctrl-C there killed a finished run (SIGINT 0.6 s into ``predict face.jpg``: all output
    written, exit -2 instead of 0). It leaves ignored signals ignored; blocking them instead
    would hold only this thread, and ONNX Runtime's threads would still take the signal."""
    try:
        sys.stdout.flush()  # with handlers still on: a stalled pipe can still be interrupted
        sys.stderr.flush()
    except KeyboardInterrupt as stop:
        code = getattr(stop, "exit_code", 130)
    except (OSError, ValueError):  # closed or broken pipe: the interpreter reports it as before
        pass
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
