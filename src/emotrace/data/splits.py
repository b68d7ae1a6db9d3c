"""Train / validation / test splits: FER-2013's official one and a stratified random one."""

from __future__ import annotations

import numpy as np

from emotrace.data.datasets import DatasetError, FaceSet
from emotrace.errors import ConfigError

SPLITS = ("train", "val", "test")
_OFFICIAL = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
_SPLIT_ALIASES = {"training": "train", "publictest": "val", "validation": "val",
                  "valid": "val", "privatetest": "test"}


def canonical_split(name: str) -> str:
    """``PublicTest`` -> ``val``, ``PrivateTest`` -> ``test``, ``Training`` -> ``train``.

    Args:
        name: a split name: ``train``/``val``/``test``/``all`` or a FER-2013 usage (any case).

    Returns:
        ``train``, ``val``, ``test`` or ``all``.

    Raises:
        ConfigError: the name is not a split.

    Example:
        >>> canonical_split("PublicTest"), canonical_split("test")
        ('val', 'test')
    """
    key = name.strip().lower()
    key = _SPLIT_ALIASES.get(key, key)
    if key not in (*SPLITS, "all"):
        raise ConfigError(f"unknown split {name!r}; use train, val (PublicTest), test "
                         "(PrivateTest) or all")
    return key


def official_split(faces: FaceSet) -> dict[str, FaceSet]:
    """Training / PublicTest (validation) / PrivateTest (test), recovered from the usage column.

    Args:
        faces: a dataset whose ``usage`` holds FER-2013's usages.

    Returns:
        ``{"train", "val", "test"}`` -> the faces of each usage.

    Raises:
        DatasetError: the dataset has no Training images (no official split).

    Example:
        >>> from emotrace.data import load_dataset
        >>> parts = official_split(load_dataset("../shared/data/fer2013"))
        >>> len(parts["val"]), len(parts["test"])
        (3589, 3589)
    """
    parts = {name: faces.subset(np.flatnonzero(faces.usage == usage))
             for name, usage in _OFFICIAL.items()}
    if len(parts["train"]) == 0:
        raise DatasetError("this dataset has no official split (no Training/PublicTest/PrivateTest "
                           "usage): evaluate it whole (no --split), or train on it with the "
                           "stratified split (split: stratified)")
    return parts


def stratified_split(faces: FaceSet, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                     seed: int = 42) -> dict[str, FaceSet]:
    """A per-class random split (70/10/20 with seed 42 by default, as in the papers).

    Args:
        faces: the dataset to split.
        fractions: train, validation and test fractions of each class; they must sum to 1.
        seed: seed of the permutation (the same seed gives the same split).

    Returns:
        ``{"train", "val", "test"}`` -> the faces of each part, in their original order.

    Raises:
        ConfigError: the fractions do not sum to 1.

    Example:
        >>> faces = FaceSet(np.zeros((10, 48, 48), np.uint8), np.zeros(10, np.int64), np.full(10, ""))
        >>> {name: len(part) for name, part in stratified_split(faces).items()}
        {'train': 7, 'val': 1, 'test': 2}
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ConfigError(f"split fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(faces.labels):
        members = rng.permutation(np.flatnonzero(faces.labels == label))
        n_train = int(round(fractions[0] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        for name, chunk in zip(SPLITS, np.split(members, [n_train, n_train + n_val])):
            parts[name].append(chunk)
    return {name: faces.subset(np.sort(np.concatenate(chunks))) for name, chunks in parts.items()}


def split_dataset(faces: FaceSet, scheme: str = "official", seed: int = 42) -> dict[str, FaceSet]:
    """Split by ``scheme``: ``official`` or ``stratified`` (70/10/20).

    Args:
        faces: the dataset to split.
        scheme: ``official`` (FER-2013's usages) or ``stratified`` (per class, 70/10/20).
        seed: seed of the stratified split.

    Returns:
        ``{"train", "val", "test"}`` -> the faces of each part.

    Raises:
        ConfigError: an unknown scheme.
        DatasetError: ``official`` on a dataset without usages.

    Example:
        >>> faces = FaceSet(np.zeros((10, 48, 48), np.uint8), np.zeros(10, np.int64), np.full(10, ""))
        >>> len(split_dataset(faces, "stratified")["train"])
        7
    """
    if scheme == "official":
        return official_split(faces)
    if scheme == "stratified":
        return stratified_split(faces, seed=seed)
    raise ConfigError(f"unknown split scheme {scheme!r}; use official or stratified")


def select_split(faces: FaceSet, split: str | None) -> FaceSet:
    """The images of one official split, or all of them (``None``/``all``, or no usage info).

    Args:
        faces: the dataset.
        split: ``train``, ``val``, ``test`` (or a FER-2013 usage), ``all`` or ``None``.

    Returns:
        The faces of that split, with the skipped images of that split only.

    Raises:
        ConfigError: an unknown split name.
        DatasetError: the split has no images.

    Example:
        >>> from emotrace.data import load_dataset
        >>> len(select_split(load_dataset("../shared/data/fer2013"), "val"))
        3589
    """
    if split is None or canonical_split(split) == "all":
        return faces
    if (faces.usage != "").any():
        part = official_split(faces)[canonical_split(split)]
        part.skipped = [s for s in faces.skipped if s[2] == _OFFICIAL[canonical_split(split)]]
    else:
        part = faces
    if len(part) == 0:
        raise DatasetError(f"the dataset has no images in split {split!r}")
    return part
