"""Readers for labelled face datasets, decoded once into a cached uint8 array.

Three layouts are understood, detected from the path:

* FER-2013 Kaggle folders: ``train/<class>/Training_*.jpg``, ``test/<class>/PublicTest_*.jpg``
  and ``PrivateTest_*.jpg`` (the usage is recovered from the file-name prefix);
* the original Kaggle CSV with columns ``emotion,pixels,Usage``;
* any class-folder dataset: one sub-folder per emotion (``angry/``, ``Happy/``, ``0/``...).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emotrace.data.images import ImageError, read_gray
from emotrace.data.labels import EMOTIONS, emotion_index
from emotrace.errors import EmotraceError
from emotrace.utils import atomic_path, progress

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}
USAGES = ("Training", "PublicTest", "PrivateTest")
_DIR_USAGE = {"train": "Training", "training": "Training", "val": "PublicTest",
              "valid": "PublicTest", "validation": "PublicTest", "test": "PrivateTest"}


class DatasetError(EmotraceError, ValueError):
    """A dataset that cannot be read; the message says which file and what to do."""


@dataclass
class FaceSet:
    """Grayscale face images with emotion labels.

    ``images`` is ``(N, S, S)`` uint8, ``labels`` the FER codes, ``usage`` the official split of
    each image (``Training``/``PublicTest``/``PrivateTest``, or ``""`` when the layout has none).

    Attributes:
        images: ``(N, S, S)`` uint8 grey faces.
        labels: ``(N,)`` int64 emotion codes, indices into ``EMOTIONS``.
        usage: ``(N,)`` official split of each image, ``""`` when the layout has none.
        sources: where each image came from (a file, or ``CSV:line``); may be empty.
        skipped: ``(file, reason, usage)`` of the images left out because they could not be read.

    Example:
        >>> faces = load_dataset("../shared/data/fer2013")
        >>> faces.images.shape[1:], len(faces) == len(faces.labels)
        ((48, 48), True)
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    sources: list[str] = field(default_factory=list)
    #: ``(file, reason, usage)`` of the images that could not be read and were left out
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FaceSet:
        """The faces at ``index``, in that order (``skipped`` is kept whole).

        Args:
            index: integer positions (or a boolean mask) into this set.

        Returns:
            A new :class:`FaceSet` holding those faces.

        Example:
            >>> faces = FaceSet(np.zeros((3, 48, 48), np.uint8), np.array([3, 6, 3]),
            ...                 np.array(["Training", "PublicTest", "Training"]))
            >>> faces.subset(np.flatnonzero(faces.usage == "Training")).labels.tolist()
            [3, 3]
        """
        index = np.asarray(index)
        return FaceSet(self.images[index], self.labels[index], self.usage[index],
                       [self.sources[i] for i in index] if self.sources else [], self.skipped)

    def class_counts(self) -> np.ndarray:
        """Number of faces per emotion.

        Returns:
            ``(7,)`` int array in ``EMOTIONS`` order (0 for a class with no face).

        Example:
            >>> faces = FaceSet(np.zeros((3, 48, 48), np.uint8), np.array([3, 6, 3]),
            ...                 np.array(["Training", "PublicTest", "Training"]))
            >>> faces.class_counts().tolist()
            [0, 0, 0, 2, 0, 0, 1]
        """
        return np.bincount(self.labels, minlength=len(EMOTIONS))


def load_dataset(path: str | os.PathLike, image_size: int = 48, cache: bool = True,
                 strict: bool = False) -> FaceSet:
    """Read any supported dataset at ``path`` into a :class:`FaceSet` of ``image_size`` squares.

    Images that cannot be read (corrupt, truncated, over the pixel limit) are left out and listed
    in ``FaceSet.skipped``; ``strict=True`` raises :class:`DatasetError` at the first one instead.

    The decoded array is cached under ``~/.cache/emotrace/datasets`` (``EMOTRACE_CACHE``
    overrides) keyed on the files' names, sizes and times, so later runs load in a second.

    Args:
        path: a FER-2013 folder (``train/``, ``test/``), the Kaggle CSV, or a folder with one
            sub-folder per emotion.
        image_size: side of the square every face is resized to (FER-2013's own is 48).
        cache: read and write the decoded array in the cache.
        strict: raise at the first unreadable image instead of skipping it.

    Returns:
        The faces, labels and official usage of every readable image.

    Raises:
        DatasetError: the path is missing, the layout or a class name is not understood, no image
            can be read, or (with ``strict``) one image cannot be read.

    Example:
        >>> faces = load_dataset("../shared/data/fer2013", image_size=48)
        >>> sorted(set(faces.usage.tolist()))
        ['PrivateTest', 'PublicTest', 'Training']
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset not found: {path} (give a FER-2013 folder, a Kaggle CSV, "
                           "or a folder with one sub-folder per emotion)")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DatasetError(f"{path}: a dataset file must be the Kaggle CSV "
                               "(columns emotion,pixels,Usage)")
        return _cached(path, [path], image_size, cache, lambda: _read_csv(path, image_size))
    files = _labelled_files(path)
    faces = _cached(path, [f for f, _, _ in files], image_size, cache,
                    lambda: _decode_files(files, image_size))
    if strict and faces.skipped:
        file, reason, _ = faces.skipped[0]
        raise DatasetError(f"{file}: {reason}; remove it from the dataset or replace it")
    if not len(faces):
        raise DatasetError(f"{path}: none of its {len(files)} images could be read "
                           f"(first: {faces.skipped[0][0]}: {faces.skipped[0][1]})")
    return faces


def _labelled_files(root: Path) -> list[tuple[Path, int, str]]:
    """(file, label, usage) for a FER-2013 folder layout or a class-folder dataset."""
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    split_dirs = [d for d in subdirs if d.name.lower() in _DIR_USAGE]
    if split_dirs and len(split_dirs) == len(subdirs):
        files = []
        for split_dir in split_dirs:
            files += _class_folder_files(split_dir, _DIR_USAGE[split_dir.name.lower()])
    else:
        files = _class_folder_files(root, "")
    if not files:
        raise DatasetError(f"{root}: no images found (expected sub-folders named by emotion "
                           f"containing {', '.join(sorted(IMAGE_SUFFIXES))} files)")
    return files


def _class_folder_files(root: Path, default_usage: str) -> list[tuple[Path, int, str]]:
    files = []
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        try:
            label = emotion_index(class_dir.name)
        except ValueError as error:
            raise DatasetError(f"{class_dir}: {error}") from None
        for file in sorted(class_dir.rglob("*")):
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                files.append((file, label, _usage_from_name(file.name, default_usage)))
    return files


def _usage_from_name(name: str, default: str) -> str:
    prefix = name.split("_", 1)[0]
    return prefix if prefix in USAGES else default


def read_face_image(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """Decode one image file as a grayscale ``image_size`` square (pixel limit checked before
    decoding, EXIF orientation applied); :class:`DatasetError` naming the file if unreadable.

    Args:
        path: the image file.
        image_size: side of the returned square.

    Returns:
        ``(image_size, image_size)`` uint8 grey image.

    Raises:
        DatasetError: the file cannot be read as an image; the message names it.

    Example:
        >>> read_face_image("../shared/testdata/face.jpg", 48).shape
        (48, 48)
    """
    try:
        image = read_gray(path)
    except ImageError as error:
        raise DatasetError(f"{path}: {error}; remove it from the dataset or replace it") from None
    if image.shape != (image_size, image_size):
        interpolation = cv2.INTER_AREA if image.shape[0] > image_size else cv2.INTER_LINEAR
        image = cv2.resize(image, (image_size, image_size), interpolation=interpolation)
    return image


def _decode_files(files: list[tuple[Path, int, str]], image_size: int) -> FaceSet:
    images = np.empty((len(files), image_size, image_size), np.uint8)
    kept: list[int] = []
    skipped: list[tuple[str, str, str]] = []
    for i, (file, _, usage) in enumerate(progress(files, desc="decoding images", unit="img")):
        try:
            images[len(kept)] = read_face_image(file, image_size)
            kept.append(i)
        except DatasetError as error:
            skipped.append((str(file), str(error).removeprefix(f"{file}: ")
                            .removesuffix("; remove it from the dataset or replace it"), usage))
    return FaceSet(images[:len(kept)], np.array([files[i][1] for i in kept], np.int64),
                   np.array([files[i][2] for i in kept]), [str(files[i][0]) for i in kept],
                   skipped)


def _read_csv(path: Path, image_size: int) -> FaceSet:
    """The Kaggle CSV; rows that cannot be used are left out and listed in ``skipped`` with
    their line number and the reason."""
    images, labels, usage, sources, skipped = [], [], [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in reader.fieldnames or []}
            if not {"emotion", "pixels"} <= columns.keys():
                raise DatasetError(f"{path}: expected the Kaggle FER-2013 columns "
                                   f"emotion,pixels,Usage; found {reader.fieldnames}")
            for line, row in enumerate(progress(reader, desc="reading CSV", unit="row"), 2):
                row_usage = (row.get(columns.get("usage", ""), "") or "").strip()
                try:
                    image, label = _csv_face(row[columns["pixels"]], row[columns["emotion"]])
                except ValueError as error:
                    skipped.append((f"{path}:{line}", str(error), row_usage))
                    continue
                if image.shape[0] != image_size:
                    image = cv2.resize(image, (image_size, image_size),
                                       interpolation=cv2.INTER_LINEAR)
                images.append(image)
                labels.append(label)
                usage.append(row_usage)
                sources.append(f"{path}:{line}")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a UTF-8 text file ({error.reason} at byte "
                           f"{error.start}); give the Kaggle CSV") from None
    if not images:
        raise DatasetError(f"{path}: the CSV has no usable rows"
                           + (f" (first problem: {skipped[0][0]}: {skipped[0][1]})" if skipped
                              else ""))
    return FaceSet(np.stack(images), np.array(labels, np.int64), np.array(usage), sources,
                   skipped)


def _csv_face(pixels: str | None, emotion: str | None) -> tuple[np.ndarray, int]:
    """One row's square grey image and label; ``ValueError`` saying what is wrong."""
    values = np.array((pixels or "").split(), dtype=np.int64) if pixels else np.zeros(0)
    side = int(round(np.sqrt(values.size)))
    if values.size == 0 or side * side != values.size:
        raise ValueError(f"{values.size} pixel values do not make a square image")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixel values must be 0-255")
    if emotion is None:
        raise ValueError("no emotion label")
    return values.astype(np.uint8).reshape(side, side), emotion_index(emotion)


def _cache_file(root: Path, files: list[Path], image_size: int) -> Path:
    digest = hashlib.sha1(f"{root.resolve()}|{image_size}".encode())
    for file in files:  # named from the root: '../shared/x' and '/work/shared/x' share one entry
        stat = file.stat()
        digest.update(f"{file.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    base = Path(os.environ.get("EMOTRACE_CACHE", Path.home() / ".cache" / "emotrace"))
    return base / "datasets" / f"{root.name}-{image_size}-{digest.hexdigest()[:16]}.npz"


def _cached(root: Path, files: list[Path], image_size: int, cache: bool, read) -> FaceSet:
    if not cache:
        return read()
    cache_file = _cache_file(root, files, image_size)
    if cache_file.exists():
        with np.load(cache_file) as stored:
            # file names as this call spells the root, not as the call that filled the cache did
            written_as = str(stored["root"])

            def here(name: str) -> str:
                return str(root) + name[len(written_as):] if name.startswith(written_as) else name

            skipped = stored["skipped"].tolist() if "skipped" in stored else []
            return FaceSet(stored["images"], stored["labels"], stored["usage"],
                           [here(name) for name in stored["sources"].tolist()],
                           [(here(file), reason, usage) for file, reason, usage in skipped])
    faces = read()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, images=faces.images, labels=faces.labels, usage=faces.usage,
                     sources=np.array(faces.sources), root=np.array(str(root)),
                     skipped=np.array(faces.skipped, dtype=str).reshape(-1, 3))
    return faces
