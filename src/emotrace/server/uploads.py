"""Uploads: read within a limit, named for display only, written into a job's folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, UploadFile, status

from emotrace.server.settings import MB


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """The upload's bytes; 413 when it has more than ``limit``."""
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"the file is larger than {limit // MB} MB")
    return data


def display_name(filename: str | None, default: str) -> str:
    """The upload's base name, for display only (never used as a path).

    Example:
        >>> display_name("C:\\\\Users\\\\me\\\\talk.mp4", "video.mp4")
        'talk.mp4'
    """
    name = Path((filename or "").replace("\\", "/")).name
    return name[:200] or default


def copy_upload(source: BinaryIO, target: Path) -> None:
    """Write the upload to ``target``: a new file, readable by the owner only."""
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        shutil.copyfileobj(source, handle, 1024 * 1024)
