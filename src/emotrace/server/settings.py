"""The service's settings, validated in one place (``emotrace serve`` options map onto them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from emotrace.errors import ConfigError

MB = 1024 * 1024


@dataclass
class ServerSettings:
    """``data_dir`` holds the job table (SQLite) and each job's files. Limits: upload sizes
    (413 above), queued jobs (429 above), and retention of finished jobs by age and total size."""

    data_dir: Path = Path("emotrace-data")
    model: str | None = None
    token: str | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    job_workers: int = 1
    max_image_bytes: int = 25 * MB
    max_video_bytes: int = 2048 * MB
    max_frame_bytes: int = 5 * MB
    max_queued_jobs: int = 20
    retention_days: float = 7.0
    retention_bytes: int = 20 * 1024 * MB
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        for name in ("workers", "job_workers", "max_image_bytes", "max_video_bytes",
                     "max_frame_bytes", "max_queued_jobs", "retention_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.retention_days <= 0:
            raise ConfigError(f"retention_days must be positive, got {self.retention_days}")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("the token must be at least 8 characters long")
