"""Video jobs: an embedded SQLite table, the files of each job, and the threads that run them.

A job is ``queued`` -> ``running`` -> ``done`` | ``failed`` (``uploading`` while its file is
copied: it already holds a place in the queue). Jobs survive restarts: queued jobs run after a
restart. A clean stop (Ctrl-C, SIGTERM) puts a running job back in the queue at no cost; a job
that was running when the server died (killed, crashed) is queued again and marked failed, with
the reason, the third time. Results are written atomically by the recognition sinks. Finished
jobs older than the retention age, or beyond the total size, are deleted oldest first, on a
timer. One server at a time uses a data folder (an exclusive lock); the folder and its files are
readable by their owner only, and deleted jobs leave no trace in the table's files.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotrace.errors import EmotraceError
from emotrace.inference import AnnotatedSink, CsvSink, Sink, SourceInfo
from emotrace.inference.results import Result
from emotrace.inference.sources import NamedSource
from emotrace.inference.timeline import VideoTimeline
from emotrace.server.pool import RecognizerPool
from emotrace.server.schemas import Job
from emotrace.server.settings import ServerSettings

#: A job that was running when the server died this many times is failed, not retried.
MAX_ATTEMPTS = 3
_ID = re.compile(r"[0-9a-f]{32}")
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, filename TEXT NOT NULL, input TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER, fps REAL, error TEXT, warning TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, options TEXT)"""
#: Columns added after the first release: (name, declaration), added to older tables on open.
_ADDED_COLUMNS = (("options", "TEXT"),)
#: Job options and their defaults: the annotated video costs the most (it is encoded frame by
#: frame); ``every`` processes every N-th frame; ``model`` None is the server's model.
DEFAULT_OPTIONS = {"annotate": True, "every": 1, "model": None}


class DataDirInUse(EmotraceError):
    """Another server holds the data folder's lock."""


def valid_job_id(job_id: str) -> bool:
    """Job ids are exactly 32 hex digits (no trailing newline): nothing else can reach the file
    system."""
    return bool(_ID.fullmatch(job_id))


def safe_stem(filename: str) -> str:
    """A file-name stem made only of letters, digits, ``-`` and ``_`` (the upload's name, for
    the titles of the outputs; never a path)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_")[:60] or "video"


def _private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the owner only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def restrict_files(folder: Path) -> None:
    """Make every file under ``folder`` 0600 and every folder 0700 (writers such as OpenCV's
    create files with the process umask)."""
    for path in folder.rglob("*"):
        try:
            path.chmod(0o700 if path.is_dir() else 0o600)
        except OSError:  # removed meanwhile
            pass


@dataclass(frozen=True)
class ResultFile:
    """One of a job's result files: where it is (``name`` in the job's folder, ``STEM`` the
    upload's stored stem), the route that serves it (``/v1/jobs/{id}/ROUTE``), its media type
    and the name a download gets (``DOWNLOAD`` with the upload's stem)."""

    route: str
    name: str
    media_type: str
    download: str
    description: str

    @property
    def inline(self) -> bool:
        """Shown by the browser (a CSV is saved instead)."""
        return self.media_type != "text/csv"


#: A job's result files, the one place their names are written. The annotated sink writes
#: ``out/STEM.webm``, ``.summary.json`` and ``.timeline.png``; the CSV sink ``faces.csv``.
RESULT_FILES = {
    "summary": ResultFile("summary", "out/{stem}.summary.json", "application/json",
                          "{stem}.summary.json", "Per tracked person: emotion shares and mean "
                                                 "scores (the CLI's summary.json)."),
    "csv": ResultFile("faces.csv", "faces.csv", "text/csv", "{stem}.faces.csv",
                      "One row per face per frame (the CLI's --csv)."),
    "timeline": ResultFile("timeline.png", "out/{stem}.timeline.png", "image/png",
                           "{stem}.timeline.png", "Emotion scores over time, one panel per "
                                                  "person."),
    "video": ResultFile("video", "out/{stem}.webm", "video/webm", "{stem}.annotated.webm",
                        "The annotated video (WebM, plays in browsers); 404 when the job was "
                        "posted with annotate=false."),
}
#: The annotated video's suffix, as :data:`RESULT_FILES` names it.
VIDEO_SUFFIX = ".webm"


@dataclass
class JobFiles:
    """Where a job's files live: the upload ``STEM.EXT`` and the :data:`RESULT_FILES`
    (``faces.csv``; in ``out/`` the annotated video, summary, timeline and the people's
    thumbnails, named by :meth:`VideoTimeline.thumbnail_name`)."""

    root: Path
    stem: str = "input"

    @property
    def csv(self) -> Path:
        return self.result("csv")

    @property
    def out(self) -> Path:
        return self.root / "out"

    def thumbnail(self, person_id: str) -> Path | None:
        """``out/STEM.person-ID.jpg`` for a person id of digits (no sign, no zero), else None."""
        if not re.fullmatch(r"[1-9][0-9]{0,8}", person_id):
            return None
        return self.out / VideoTimeline.thumbnail_name(self.stem, int(person_id))

    def result(self, kind: str) -> Path:
        """The path of the result file ``kind`` (a key of :data:`RESULT_FILES`)."""
        return self.root / RESULT_FILES[kind].name.format(stem=self.stem)


class DataDirLock:
    """An exclusive lock (``flock``) on ``DATA_DIR/server.lock`` holding the owner's process id:
    a second server on the same folder is refused before it touches a job."""

    def __init__(self, root: Path) -> None:
        self.root, self.path = root, root / "server.lock"
        self._handle = None

    def acquire(self) -> None:
        """Take the lock (a no-op when held); :class:`DataDirInUse` names the holder."""
        if self._handle is not None:
            return
        handle = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirInUse(f"{self.root}: this data folder is in use by another emotrace "
                               f"serve (process {holder}); stop it, or give this one another "
                               "--data-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None


class JobStore:
    """The job table. One connection per call (SQLite serialises writers); all methods are
    thread-safe. Deleted rows are overwritten (``secure_delete``) and the write-ahead log is
    emptied after each delete, so a deleted job's name is gone from the files."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created:
            self.root.chmod(0o700)
        _private_dir(self.root / "jobs")
        self.db = self.root / "jobs.sqlite"
        # SQLite gives its -wal and -shm files the database file's mode: create it 0600 first
        os.close(os.open(self.db, os.O_RDWR | os.O_CREAT, 0o600))
        self.db.chmod(0o600)
        self.lock = DataDirLock(self.root)
        self._reserve = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, declaration in _ADDED_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA secure_delete=ON")
        return db

    def files(self, job_id: str, job: dict[str, Any] | None = None) -> JobFiles:
        stem = Path(job["input"]).stem if job else "input"
        return JobFiles(self.root / "jobs" / job_id, stem)

    def reserve(self, filename: str, suffix: str, max_queued: int,
                options: dict[str, Any] | None = None) -> tuple[str, Path] | None:
        """A place in the queue for a new upload, or None when ``max_queued`` jobs are queued or
        uploading. Counting and inserting are one transaction, so concurrent uploads cannot
        overshoot. Returns the job id and the path to write the upload to; :meth:`enqueue` when
        it is written, :meth:`delete` if it fails."""
        job_id = uuid.uuid4().hex
        path = self.files(job_id).root / f"{safe_stem(filename)}{suffix}"
        now = time.time()
        with self._reserve, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            inserted = db.execute(
                "INSERT INTO jobs (id, status, filename, input, created, updated, options) "
                "SELECT ?, 'uploading', ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM jobs WHERE "
                "status IN ('queued', 'uploading')) < ?",
                (job_id, filename, path.name, now, now, json.dumps({**DEFAULT_OPTIONS,
                                                                     **(options or {})}),
                 max_queued)).rowcount
            db.execute("COMMIT")
        if not inserted:
            return None
        _private_dir(path.parent)
        return job_id, path

    def enqueue(self, job_id: str) -> None:
        """The upload is written: the job may run."""
        self.update(job_id, status="queued")

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row) if row else None

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status != 'uploading' "
                              "ORDER BY created DESC LIMIT ?", (limit,))
            return [dict(row) for row in rows]

    def count(self, status: str) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    def claim(self) -> dict[str, Any] | None:
        """The oldest queued job, now marked running (atomically: one runner gets it)."""
        with self._connect() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated = ?, "
                "frames_done = 0 WHERE id = (SELECT id FROM jobs WHERE status = 'queued' "
                "ORDER BY created LIMIT 1) RETURNING *", (time.time(),)).fetchone()
        return dict(row) if row else None

    def update(self, job_id: str, **values: Any) -> None:
        values["updated"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*values.values(), job_id))

    def delete(self, job_id: str) -> bool:
        """Remove the job's row and files; the row's bytes are overwritten and the write-ahead
        log emptied, so nothing of it stays in ``jobs.sqlite*``."""
        with self._connect() as db:
            deleted = db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.rmtree(self.files(job_id).root, ignore_errors=True)
        return bool(deleted)

    def recover(self) -> None:
        """After a restart: jobs that were running when the server died are queued again, or
        failed after :data:`MAX_ATTEMPTS` such deaths; uploads that never finished, and folders
        that never became jobs, are removed."""
        now = time.time()
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'failed', updated = ?, warning = NULL, "
                       f"error = 'the server died {MAX_ATTEMPTS} times while this job was "
                       "running (killed or crashed); it is not retried' WHERE "
                       "status = 'running' AND attempts >= ?", (now, MAX_ATTEMPTS))
            db.execute("UPDATE jobs SET status = 'queued', updated = ?, warning = 'the server "
                       "died while this job was running; it ran again from the start' WHERE "
                       "status = 'running'", (now,))
            db.execute("DELETE FROM jobs WHERE status = 'uploading'")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            known = {row[0] for row in db.execute("SELECT id FROM jobs")}
        for folder in (self.root / "jobs").iterdir():
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)

    def prune(self, max_age_s: float, max_bytes: int) -> list[str]:
        """Delete finished jobs older than ``max_age_s``, then the oldest finished ones until
        the jobs' files take at most ``max_bytes``."""
        with self._connect() as db:
            finished = [dict(r) for r in db.execute(
                "SELECT id, updated FROM jobs WHERE status IN ('done', 'failed') "
                "ORDER BY updated")]
        removed = [j["id"] for j in finished if time.time() - j["updated"] > max_age_s]
        for job_id in removed:
            self.delete(job_id)
        total = sum(f.stat().st_size for f in (self.root / "jobs").rglob("*") if f.is_file())
        for job in finished:
            if total <= max_bytes:
                break
            if job["id"] in removed:
                continue
            total -= sum(f.stat().st_size for f in self.files(job["id"]).root.rglob("*")
                         if f.is_file())
            self.delete(job["id"])
            removed.append(job["id"])
        return removed


class _Progress(Sink):
    """Writes a job's progress (frames done / total, fps) to the table, twice a second at most;
    stops the job when the server stops or the job is cancelled."""

    def __init__(self, store: JobStore, job_id: str, every: int, stop: threading.Event,
                 cancelled: set[str]) -> None:
        super().__init__()
        self.store, self.job_id, self.every = store, job_id, every
        self.stop, self.cancelled = stop, cancelled
        self.frames, self.total, self.started, self.saved = 0, None, time.monotonic(), 0.0

    def start(self, info: SourceInfo) -> None:
        self.total = math.ceil(info.frames / self.every) if info.frames else None
        self.started = time.monotonic()
        self.store.update(self.job_id, frames_total=self.total, frames_done=0)

    def write(self, result: Result) -> None:
        if self.job_id in self.cancelled:
            raise _Cancelled
        if self.stop.is_set():
            raise _Stopped
        if result.ok:
            self.frames += 1
        now = time.monotonic()
        if now - self.saved > 0.5:
            self.saved = now
            self.store.update(self.job_id, frames_done=self.frames, fps=self.fps())

    def fps(self) -> float:
        return round(self.frames / max(time.monotonic() - self.started, 1e-6), 1)


class _Stopped(KeyboardInterrupt):
    """The server is shutting down: the job goes back to the queue."""


class _Cancelled(KeyboardInterrupt):
    """The job was deleted while it ran."""


class JobRunner:
    """Threads that take queued jobs and run them through the Recognizer's pipeline, and one
    that applies the retention rules every ``settings.prune_every_s``."""

    def __init__(self, store: JobStore, pool: RecognizerPool, settings: ServerSettings) -> None:
        self.store, self.pool, self.settings = store, pool, settings
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.cancelled: set[str] = set()
        self.finished = threading.Condition()
        self.threads = [threading.Thread(target=self._loop, name=f"emotrace-job-{i}", daemon=True)
                        for i in range(settings.job_workers)]
        self.threads.append(threading.Thread(target=self._prune_loop, name="emotrace-retention",
                                             daemon=True))

    def start(self) -> None:
        """Lock the data folder (:class:`DataDirInUse` if another server has it), then recover
        interrupted jobs, apply retention and start the threads."""
        self.store.lock.acquire()
        self.store.recover()
        self.prune()
        for thread in self.threads:
            thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self.wake.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout)
        self.store.lock.release()

    def notify(self) -> None:
        self.wake.set()

    def cancel(self, job_id: str, timeout: float = 30.0) -> bool:
        """Stop a running job and delete it; True once it is gone."""
        self.cancelled.add(job_id)
        deadline = time.monotonic() + timeout
        with self.finished:
            while self.store.get(job_id) is not None and time.monotonic() < deadline:
                job = self.store.get(job_id)
                if job is not None and job["status"] != "running":
                    self.store.delete(job_id)
                    break
                self.finished.wait(0.2)
        self.cancelled.discard(job_id)
        return self.store.get(job_id) is None

    def prune(self) -> None:
        self.store.prune(self.settings.retention_days * 86400, self.settings.retention_bytes)

    def _prune_loop(self) -> None:
        while not self.stop.wait(self.settings.prune_every_s):
            self.prune()

    def _loop(self) -> None:
        while not self.stop.is_set():
            job = self.store.claim()
            if job is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                self.run(job)
            finally:
                with self.finished:
                    self.finished.notify_all()
            self.prune()

    def _public_error(self, message: str, files: JobFiles) -> str:
        """The message without the server's paths (a job's files are named by their name)."""
        for folder in (files.out, files.root, self.store.root):
            message = message.replace(f"{folder}{os.sep}", "").replace(str(folder), "")
        return message

    def run(self, job: dict[str, Any]) -> None:
        files = self.store.files(job["id"], job)
        options = {**DEFAULT_OPTIONS, **json.loads(job.get("options") or "{}")}
        progress = _Progress(self.store, job["id"], options["every"], self.stop, self.cancelled)
        errors: list[str] = []
        try:
            shutil.rmtree(files.out, ignore_errors=True)  # a restarted job starts clean
            recognizer = self.pool.get(options["model"])
            with CsvSink(files.csv) as csv, AnnotatedSink(
                    files.out, VIDEO_SUFFIX, names={job["filename"]: files.stem},
                    video=options["annotate"]) as annotated:
                # results carry the upload's name, never the server's paths
                source = NamedSource(str(files.root / job["input"]), job["filename"])
                for result in recognizer.run([source], every=options["every"],
                                             sinks=[csv, annotated, progress]):
                    if not result.ok:
                        errors.append(result.error)
        except _Cancelled:
            self.store.delete(job["id"])
            return
        except _Stopped:  # a clean stop does not count as one of the job's attempts
            self.store.update(job["id"], status="queued", attempts=job["attempts"] - 1,
                              warning="interrupted by a server shutdown; it runs again when "
                                      "the server starts")
            return
        except Exception as error:  # a job never takes the server down; its reason is kept
            self.store.update(job["id"], status="failed", error=self._public_error(
                f"{type(error).__name__}: {error}", files))
            return
        finally:
            restrict_files(files.root)
        if progress.frames == 0:
            self.store.update(job["id"], status="failed", error=self._public_error(
                errors[0] if errors else "no frame could be read", files))
            return
        # the container's frame count is an estimate (MPEG, some AVIs): the count read is true
        self.store.update(job["id"], status="done", frames_done=progress.frames,
                          frames_total=progress.frames,
                          warning=self._public_error(errors[0], files) if errors else job["warning"],
                          fps=progress.fps())


def public_job(job: dict[str, Any]) -> Job:
    """The API's view of a job row: progress with an estimate of the seconds left while it
    runs (from the frames per second so far)."""
    done, total, fps = job["frames_done"], job["frames_total"], job["fps"]
    if total is not None:
        total = max(total, done)
    eta = None
    if job["status"] == "running" and total and fps:
        eta = round((total - done) / fps, 1)
    options = {**DEFAULT_OPTIONS, **json.loads(job.get("options") or "{}")}
    return Job.model_validate(
        {"id": job["id"], "status": job["status"], "filename": job["filename"],
         "created": job["created"], "options": options,
         "progress": {"frames_done": done, "frames_total": total, "fps": fps, "eta_s": eta},
         "error": job["error"], "warning": job["warning"]})
