"""Errors a user can act on. The CLI prints them as one line (exit code 2); anything else
escaping emotrace is a bug and is reported as an internal error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


class UsageError(EmotraceError, ValueError):
    """Bad input the user can fix (an option, a missing extra); one line, exit code 2."""


@contextmanager
def requires_extra(extra: str, what: str) -> Iterator[None]:
    """Imports inside the block need ``emotrace[extra]``; without it, a :class:`UsageError`
    says what to install.

    Args:
        extra: the optional dependency group (``train``, ``serve``, ``ray``).
        what: what needs it, as the message starts (``training``, ``--ray``).

    Example:
        >>> with requires_extra("train", "export"):
        ...     from emotrace.training import export_run  # doctest: +SKIP
    """
    try:
        yield
    except ImportError as error:
        raise UsageError(f"{what} needs the {extra} extra: pip install 'emotrace[{extra}]' "
                         f"({error})") from None
