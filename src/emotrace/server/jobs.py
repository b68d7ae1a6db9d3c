"""Video jobs: an embedded SQLite table, the files of each job, and the threads that run them.

A job is ``queued`` -> ``running`` -> ``done`` | ``failed``. Jobs survive restarts: queued jobs
run after a restart; a job that was running when the server stopped is queued again (and marked
failed, with the reason, after three such interruptions). Results are written atomically by the
recognition sinks. Finished jobs older than the retention age, or beyond the total size, are
deleted oldest first.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotrace.inference import AnnotatedSink, CsvSink, Recognizer, Sink, SourceInfo
from emotrace.inference.results import Result
from emotrace.inference.sources import NamedSource
from emotrace.server.settings import ServerSettings

MAX_ATTEMPTS = 3
_ID = re.compile(r"^[0-9a-f]{32}$")
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, filename TEXT NOT NULL, input TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER, fps REAL, error TEXT, warning TEXT,
    attempts INTEGER NOT NULL DEFAULT 0)"""


def valid_job_id(job_id: str) -> bool:
    """Job ids are 32 hex digits: nothing else can reach the file system."""
    return bool(_ID.match(job_id))


def safe_stem(filename: str) -> str:
    """A file-name stem made only of letters, digits, ``-`` and ``_`` (the upload's name, for
    the titles of the outputs; never a path)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_")[:60] or "video"


@dataclass
class JobFiles:
    """Where a job's files live: the upload ``STEM.EXT``, ``faces.csv`` and ``out/`` (annotated
    ``STEM.webm``, ``STEM.summary.json``, ``STEM.timeline.png``)."""

    root: Path
    stem: str = "input"

    @property
    def csv(self) -> Path:
        return self.root / "faces.csv"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def result(self, kind: str) -> Path:
        suffixes = {"summary": ".summary.json", "timeline": ".timeline.png", "video": ".webm"}
        return self.out / f"{self.stem}{suffixes[kind]}"


class JobStore:
    """The job table. One connection per call (SQLite serialises writers); all methods are
    thread-safe."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        self.db = self.root / "jobs.sqlite"
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def files(self, job_id: str, job: dict[str, Any] | None = None) -> JobFiles:
        stem = Path(job["input"]).stem if job else "input"
        return JobFiles(self.root / "jobs" / job_id, stem)

    def create(self, filename: str, suffix: str) -> tuple[str, Path]:
        """A new job id and the path its upload should be written to (the job is not queued
        until :meth:`enqueue`)."""
        job_id = uuid.uuid4().hex
        root = self.files(job_id).root
        root.mkdir(parents=True)
        return job_id, root / f"{safe_stem(filename)}{suffix}"

    def enqueue(self, job_id: str, filename: str, input_path: Path) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute("INSERT INTO jobs (id, status, filename, input, created, updated) "
                       "VALUES (?, 'queued', ?, ?, ?, ?)",
                       (job_id, filename, input_path.name, now, now))

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row) if row else None

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))
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
        with self._connect() as db:
            deleted = db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount
        shutil.rmtree(self.files(job_id).root, ignore_errors=True)
        return bool(deleted)

    def recover(self) -> None:
        """After a restart: jobs that were running are queued again, or failed after
        :data:`MAX_ATTEMPTS` interruptions; upload folders that never became jobs are removed."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = 'failed', updated = ?, error = 'the server "
                       f"stopped {MAX_ATTEMPTS} times while this job was running' WHERE "
                       "status = 'running' AND attempts >= ?", (time.time(), MAX_ATTEMPTS))
            db.execute("UPDATE jobs SET status = 'queued', updated = ?, warning = 'restarted "
                       "after a server restart' WHERE status = 'running'", (time.time(),))
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
    """Writes a job's progress (frames done / total, fps) to the table, twice a second at most."""

    def __init__(self, store: JobStore, job_id: str, stop: threading.Event) -> None:
        super().__init__()
        self.store, self.job_id, self.stop = store, job_id, stop
        self.frames, self.total, self.started, self.saved = 0, None, time.monotonic(), 0.0

    def start(self, info: SourceInfo) -> None:
        self.total = info.frames
        self.store.update(self.job_id, frames_total=info.frames, frames_done=0)

    def write(self, result: Result) -> None:
        if self.stop.is_set():
            raise _Stopped
        if result.ok:
            self.frames += 1
        now = time.monotonic()
        if now - self.saved > 0.5:
            self.saved = now
            self.store.update(self.job_id, frames_done=self.frames,
                              fps=round(self.frames / max(now - self.started, 1e-6), 1))


class _Stopped(KeyboardInterrupt):
    """The server is shutting down: the job goes back to the queue."""


class JobRunner:
    """Threads that take queued jobs and run them through the Recognizer's pipeline."""

    def __init__(self, store: JobStore, recognizer: Recognizer, settings: ServerSettings) -> None:
        self.store, self.recognizer, self.settings = store, recognizer, settings
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.threads = [threading.Thread(target=self._loop, name=f"emotrace-job-{i}", daemon=True)
                        for i in range(settings.job_workers)]

    def start(self) -> None:
        self.store.recover()
        self.prune()
        for thread in self.threads:
            thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout)

    def notify(self) -> None:
        self.wake.set()

    def prune(self) -> None:
        self.store.prune(self.settings.retention_days * 86400, self.settings.retention_bytes)

    def _loop(self) -> None:
        while not self.stop.is_set():
            job = self.store.claim()
            if job is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self.run(job)
            self.prune()

    def run(self, job: dict[str, Any]) -> None:
        files = self.store.files(job["id"], job)
        progress = _Progress(self.store, job["id"], self.stop)
        errors: list[str] = []
        try:
            shutil.rmtree(files.out, ignore_errors=True)  # a restarted job starts clean
            with CsvSink(files.csv) as csv, AnnotatedSink(
                    files.out, ".webm", names={job["filename"]: files.stem}) as annotated:
                # results carry the upload's name, never the server's paths
                source = NamedSource(str(files.root / job["input"]), job["filename"])
                for result in self.recognizer.run([source], sinks=[csv, annotated, progress]):
                    if not result.ok:
                        errors.append(result.error)
        except _Stopped:
            self.store.update(job["id"], status="queued", warning="interrupted by a server "
                              "shutdown; it runs again when the server starts")
            return
        except Exception as error:  # a job never takes the server down; its reason is kept
            self.store.update(job["id"], status="failed", error=f"{type(error).__name__}: {error}")
            return
        if progress.frames == 0:
            self.store.update(job["id"], status="failed",
                              error=errors[0] if errors else "no frame could be read")
            return
        self.store.update(job["id"], status="done", frames_done=progress.frames,
                          warning=errors[0] if errors else job["warning"],
                          fps=round(progress.frames / max(time.monotonic() - progress.started,
                                                          1e-6), 1))


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """The API's view of a job row."""
    return {"id": job["id"], "status": job["status"], "filename": job["filename"],
            "created": job["created"],
            "progress": {"frames_done": job["frames_done"], "frames_total": job["frames_total"],
                         "fps": job["fps"]},
            "error": job["error"], "warning": job["warning"]}


def iter_chunks(handle, size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk
