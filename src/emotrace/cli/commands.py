"""Sub-command bodies: turn parsed arguments into API calls and print the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input the user can fix; printed as one line, exit code 2."""


def run(args: argparse.Namespace) -> int:
    """Call the chosen command; known errors become one clear line and a non-zero exit."""
    from emotrace.data import DatasetError

    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("emotrace: interrupted", file=sys.stderr)
        return 130
    except (UsageError, DatasetError, FileNotFoundError, ValueError, ImportError) as error:
        print(f"emotrace {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _overrides(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {pair!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values


def train(args: argparse.Namespace) -> int:
    try:
        from emotrace.training import export_run, list_presets, load_config, train as fit
    except ImportError as error:
        raise UsageError(f"training needs the train extra: pip install 'emotrace[train]' "
                         f"({error})") from None
    if args.list_presets:
        for name in list_presets():
            print(name)
        return EXIT_OK
    overrides = _overrides(args.set)
    if args.data:
        overrides["data"] = args.data
    if args.epochs:
        overrides["epochs"] = args.epochs
    config = load_config(args.preset, **overrides)
    out = Path(args.out or Path("runs") / Path(args.preset).stem)
    best = fit(config, out, resume=not args.no_resume)
    print(f"best checkpoint: {best}")
    if not args.no_export:
        model = export_run(out)
        print(f"exported: {model}")
    return EXIT_OK
