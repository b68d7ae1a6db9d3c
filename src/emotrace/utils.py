"""Small helpers shared by every package: atomic writes, output checks, signals, progress bars."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from emotrace.errors import OutputError

T = TypeVar("T")

#: ``.NAME.PID-TOKEN.partial.SUFFIX``: unique per process and per call, so two runs writing the
#: same output never share a temporary file; the PID lets a later run remove the partial files
#: of a process that died (SIGKILL, power loss) without touching those of a live one.
_PARTIAL = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>\d+)-[0-9a-f]{8}\.partial(?P<suffix>\.[^.]*)?$")


def partial_path(path: str | os.PathLike) -> Path:
    """A hidden, unique temporary sibling of ``path`` with the same suffix (writers such as
    OpenCV's pick the container from it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files left next to ``path`` by emotrace processes that no longer run."""
    path = Path(path)
    removed = []
    with contextlib.suppress(OSError):
        for candidate in path.parent.glob(f".{glob_escape(path.stem)}.*.partial*"):
            match = _PARTIAL.match(candidate.name)
            if (match and match["stem"] == path.stem and (match["suffix"] or "") == path.suffix
                    and int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"]))):
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
    return removed


def remove_dead_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete every temporary file in ``folder`` left by an emotrace process that no longer runs
    (a killed run's annotated video, whatever the next run writes there)."""
    removed = []
    with contextlib.suppress(OSError):
        for candidate in Path(folder).glob(".*.partial*"):
            match = _PARTIAL.match(candidate.name)
            if (match and int(match["pid"]) != os.getpid()
                    and not _process_alive(int(match["pid"]))):
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def describe_os_error(error: OSError) -> str:
    """``No space left on device`` rather than ``[Errno 28] ...: '/path'``."""
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    return error.strerror or str(error)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves nothing behind. A write that fails
    raises :class:`OutputError` naming ``path`` and the cause.
    """
    path = Path(path)
    remove_stale_partials(path)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        if isinstance(error, OutputError):
            raise
        raise OutputError(path, f"cannot write it: {describe_os_error(error)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """Fail early (before any work) when ``path`` cannot be written as a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, f"{option} names a folder; give a file name")
    check_output_dir(path.parent if str(path.parent) else Path("."), option)
    return path


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """Fail early when files cannot be created in the folder ``path`` (created if missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, f"{option} names a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = partial_path(path / "write-test")
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OutputError(path, f"{option}: cannot write into this folder "
                                f"({describe_os_error(error)})") from None
    return path


def progress(iterable: Iterable[T], desc: str, total: int | None = None,
             unit: str = "it") -> Iterable[T]:
    """A progress bar on stderr; silent when stderr is not a terminal (logs, CI)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, disable=None)


def save_figure(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG atomically (no pyplot: the user's backend is untouched)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


def new_figure(**kwargs):
    """A matplotlib Figure that is not registered with pyplot (no backend, no global state)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: stop, keep what was written; exit code 128 + signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


def stop_on_signals() -> None:
    """Make SIGTERM (sent by ``timeout``, systemd, container runtimes) stop the program like
    Ctrl-C does: an :class:`Interrupted` exception that lets outputs close whole."""
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_interrupted)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise :class:`Interrupted`: writes that
    belong together (one frame to every output) all happen or none do. A no-op outside the main
    thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: caught.append(signum)) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        if previous[caught[0]] in (signal.SIG_IGN, None):
            return
        raise Interrupted(caught[0])
