"""The ``emotrace`` command: argument parsing only; every sub-command calls the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emotrace.cli import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotrace",
        description="Facial emotion recognition: recognise emotions in faces, train and "
                    "evaluate models.",
        epilog="Run 'emotrace COMMAND --help' for the options of one command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="fine-tune a model from a preset (resumable)",
                           description="Train a model from a preset or YAML recipe. Re-running "
                                       "with the same --out resumes from its last checkpoint.")
    train.add_argument("--preset", default="mobilenetv2-fer2013-cpu",
                       help="preset name or YAML file (default: %(default)s; see --list-presets)")
    train.add_argument("--data", help="dataset path (overrides the preset's)")
    train.add_argument("--out", help="run folder (default: runs/PRESET)")
    train.add_argument("--epochs", type=int, help="override the preset's epoch count")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any recipe option, e.g. --set lr=3e-4 (YAML values)")
    train.add_argument("--no-resume", action="store_true", help="start over even if --out has a run")
    train.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    train.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    train.set_defaults(run=commands.train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
