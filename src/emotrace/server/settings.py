"""The service's settings, validated in one place (``emotrace serve`` options map onto them)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from emotrace.errors import ConfigError

MB = 1024 * 1024
#: Host names a server bound to a loopback address answers to (DNS rebinding defence).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.1``, ``::1``, ``localhost`` and the rest of 127.0.0.0/8."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerSettings:
    """``data_dir`` holds the job table (SQLite) and each job's files. Limits: upload sizes
    (413 above), queued jobs (429 above), retention of finished jobs by age and total size
    (checked every ``prune_every_s``), decoded pixels in flight (``decode_budget_bytes``: photos
    wait for their turn instead of taking the memory together) and a webcam frame's pixels.
    ``host`` is the bound address: on a loopback address only requests naming a local host are
    answered (``Host`` header), and cross-site POSTs and WebSockets are refused unless
    ``cors_origins`` allows their origin."""

    data_dir: Path = Path("emotrace-data")
    model: str | None = None
    token: str | None = None
    host: str = "127.0.0.1"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    job_workers: int = 1
    max_image_bytes: int = 25 * MB
    max_video_bytes: int = 2048 * MB
    max_frame_bytes: int = 5 * MB
    #: A webcam frame is at most 4K UHD; photos may have up to 100 MP (the CLI's limit).
    max_frame_pixels: int = 3840 * 2160
    #: Decoding a photo peaks at about 9 bytes a pixel (decoder + annotated copy): 1 GB lets one
    #: 100-MP photo, or many small ones, be decoded at a time.
    decode_budget_bytes: int = 1024 * MB
    max_queued_jobs: int = 20
    retention_days: float = 7.0
    retention_bytes: int = 20 * 1024 * MB
    prune_every_s: float = 600.0
    #: A request body that sends nothing for this long is cut (slow clients hold a connection).
    body_timeout_s: float = 30.0
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        for name in ("workers", "job_workers", "max_image_bytes", "max_video_bytes",
                     "max_frame_bytes", "max_frame_pixels", "decode_budget_bytes",
                     "max_queued_jobs", "retention_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("retention_days", "prune_every_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("the token must be at least 8 characters long")
        self.cors_origins = tuple(origin.rstrip("/") for origin in self.cors_origins)

    @property
    def allowed_hosts(self) -> tuple[str, ...] | None:
        """The host names requests may name, or None (any) when bound to a public address."""
        return LOCAL_HOSTS if is_loopback(self.host) else None
