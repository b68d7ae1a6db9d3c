"""Sample photos shipped inside the package (provenance and licences in assets/samples/README.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_photos() -> list[Path]:
    """The shipped sample photos: ``classroom.jpg`` (4 faces) and ``grace_hopper.jpg`` (1 face).

    Returns:
        Their paths inside the installed package, sorted by name.

    Example:
        >>> [photo.name for photo in sample_photos()]
        ['classroom.jpg', 'grace_hopper.jpg']
    """
    folder = Path(str(resources.files("emotrace") / "assets" / "samples"))
    return sorted(folder.glob("*.jpg"))
