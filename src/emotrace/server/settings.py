"""The service's settings, validated in one place (:class:`ServerSettings`, on pydantic-settings).

``emotrace serve`` maps its options onto the fields; a library user (``create_app()``) may also
set them from the environment as ``EMOTRACE_<FIELD>`` (``EMOTRACE_TOKEN``, ``EMOTRACE_DATA_DIR``,
...). A bad value raises :class:`~emotrace.errors.ConfigError` with one line naming it.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emotrace.errors import ConfigError

MB = 1024 * 1024
#: Host names a server bound to a loopback address answers to (DNS rebinding defence).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Minimum length of an access token.
MIN_TOKEN_LENGTH = 8

AtLeastOne = Annotated[int, Field(ge=1)]
Positive = Annotated[float, Field(gt=0)]


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.1``, ``::1``, ``localhost`` and the rest of 127.0.0.0/8.

    Args:
        host: a host name or address (IPv6 with or without brackets).

    Returns:
        Whether ``host`` is a loopback address.

    Example:
        >>> is_loopback("127.0.0.2"), is_loopback("0.0.0.0")
        (True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseSettings):
    """``data_dir`` holds the job table (SQLite) and each job's files. Limits: upload sizes
    (413 above), queued jobs (429 above), retention of finished jobs by age and total size
    (checked every ``prune_every_s``), decoded pixels in flight (``decode_budget_bytes``: photos
    wait for their turn instead of taking the memory together) and a webcam frame's pixels.
    ``host`` is the bound address: on a loopback address only requests naming a local host are
    answered (``Host`` header), and cross-site POSTs and WebSockets are refused unless
    ``cors_origins`` allows their origin.

    Example:
        >>> ServerSettings(data_dir="data", max_queued_jobs=5).max_queued_jobs
        5
        >>> ServerSettings(workers=0)
        Traceback (most recent call last):
        ...
        emotrace.errors.ConfigError: workers must be at least 1, got 0
    """

    model_config = SettingsConfigDict(env_prefix="EMOTRACE_", extra="forbid",
                                      validate_default=True)

    data_dir: Path = Path("emotrace-data")
    model: str | None = None
    token: str | None = None
    host: str = "127.0.0.1"
    workers: AtLeastOne = Field(default_factory=lambda: os.cpu_count() or 1)
    job_workers: AtLeastOne = 1
    max_image_bytes: AtLeastOne = 25 * MB
    max_video_bytes: AtLeastOne = 2048 * MB
    max_frame_bytes: AtLeastOne = 5 * MB
    #: A webcam frame is at most 4K UHD; photos may have up to 100 MP (the CLI's limit).
    max_frame_pixels: AtLeastOne = 3840 * 2160
    #: Decoding a photo peaks at about 9 bytes a pixel (decoder + annotated copy): 1 GB lets one
    #: 100-MP photo, or many small ones, be decoded at a time.
    decode_budget_bytes: AtLeastOne = 1024 * MB
    max_queued_jobs: AtLeastOne = 20
    retention_days: Positive = 7.0
    retention_bytes: AtLeastOne = 20 * 1024 * MB
    prune_every_s: Positive = 600.0
    #: A request body that sends nothing for this long is cut (slow clients hold a connection).
    body_timeout_s: Positive = 30.0
    cors_origins: tuple[str, ...] = ()

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(_one_line(error)) from None

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: str | None) -> str | None:
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the token must be at least {MIN_TOKEN_LENGTH} characters long")
        return token

    @field_validator("cors_origins")
    @classmethod
    def _no_trailing_slash(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(origin.rstrip("/") for origin in origins)

    @property
    def allowed_hosts(self) -> tuple[str, ...] | None:
        """The host names requests may name, or None (any) when bound to a public address."""
        return LOCAL_HOSTS if is_loopback(self.host) else None


def _one_line(error: ValidationError) -> str:
    """The first problem of ``error`` as the one line the CLI prints: the setting, what is
    wrong, the value given."""
    first = error.errors(include_url=False)[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    given = first.get("input")
    if first["type"] == "greater_than_equal":
        return f"{name} must be at least {first['ctx']['ge']}, got {given}"
    if first["type"] == "greater_than":
        return f"{name} must be positive, got {given}"
    if first["type"] == "value_error":
        return str(first["ctx"]["error"])
    if first["type"] == "extra_forbidden":
        return f"{name}: no such server setting"
    return f"{name}: {first['msg'].lower()}, got {given!r}"
