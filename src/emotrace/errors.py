"""Errors a user can act on. The CLI prints them as one line (exit code 2); anything else
escaping emotrace is a bug and is reported as an internal error."""

from __future__ import annotations

from pathlib import Path


class EmotraceError(Exception):
    """A problem with what the user asked for (a file, an option, a recipe), not a bug."""


class ConfigError(EmotraceError, ValueError):
    """An option or recipe value that is not valid; the message names it and the choices."""


class NotFoundError(EmotraceError, FileNotFoundError):
    """A file or folder the user named does not exist (or is not what it should be)."""


class OutputError(EmotraceError, OSError):
    """An output file that cannot be written; names the file and the cause."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason
