"""Torch datasets and the Lightning data module over a :class:`FaceSet` split."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from emotrace.errors import ConfigError
from emotrace.data.datasets import FaceSet, load_dataset
from emotrace.data.splits import split_dataset
from emotrace.data.transforms import AugmentConfig, eval_transform, train_transform


class FaceTensorDataset(Dataset):
    """Serves ``(image (1, S, S) float, label)`` pairs from an in-memory :class:`FaceSet`, and
    ``(image, label, soft target)`` triples when a teacher's probabilities are given.

    Args:
        faces: the faces to serve (kept in memory as one uint8 tensor).
        transform (Callable[[torch.Tensor], torch.Tensor]): applied to each ``(1, S, S)`` uint8 image as it is served
            (:func:`~emotrace.data.transforms.eval_transform` or
            :func:`~emotrace.data.transforms.train_transform`).
        soft_targets: ``(N, 7)`` probabilities of a teacher for each face (distillation), or
            ``None``.

    Example:
        >>> from emotrace.data.transforms import eval_transform
        >>> faces = FaceSet(np.zeros((2, 48, 48), np.uint8), np.array([3, 6]), np.full(2, ""))
        >>> image, label = FaceTensorDataset(faces, eval_transform(96))[1]
        >>> image.shape, int(label)
        (torch.Size([1, 96, 96]), 6)
    """

    def __init__(self, faces: FaceSet, transform, soft_targets: np.ndarray | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(faces.images)).unsqueeze(1)
        self.labels = torch.from_numpy(faces.labels)
        self.soft = None if soft_targets is None else torch.from_numpy(
            np.asarray(soft_targets, np.float32))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image, label = self.transform(self.images[index]), self.labels[index]
        return (image, label) if self.soft is None else (image, label, self.soft[index])


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency class weights, scaled so that the mean weight per sample is 1.

    Args:
        labels: the class of each training sample.
        num_classes: number of classes (a class with no sample gets weight 0).

    Returns:
        ``(num_classes,)`` float weights.

    Example:
        >>> class_weights(np.array([0, 0, 0, 1]), 3).round(3).tolist()
        [0.667, 2.0, 0.0]
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return weights / weights[labels].mean()


def stratified_fraction(faces: FaceSet, fraction: float, rng: np.random.Generator) -> FaceSet:
    """A random ``fraction`` of each class (at least one image per class).

    Args:
        faces: the faces to draw from.
        fraction: share of each class to keep, in (0, 1].
        rng: the random generator (seeded by the caller).

    Returns:
        The kept faces, in their original order.

    Example:
        >>> faces = FaceSet(np.zeros((20, 48, 48), np.uint8), np.repeat([0, 3], 10), np.full(20, ""))
        >>> stratified_fraction(faces, 0.3, np.random.default_rng(0)).class_counts().tolist()
        [3, 0, 0, 3, 0, 0, 0]
    """
    keep = []
    for label in np.unique(faces.labels):
        members = rng.permutation(np.flatnonzero(faces.labels == label))
        keep.append(members[: max(1, int(round(fraction * len(members))))])
    return faces.subset(np.sort(np.concatenate(keep)))


class FERDataModule(L.LightningDataModule):
    """Loads a dataset once (cached), splits it and serves augmented / plain loaders.

    ``balance``: ``none``, ``sampler`` (weighted sampling, each class equally likely) or
    ``weights`` (class weights in the loss; read by the training module from ``loss_weights``).

    Args:
        data: the dataset path (anything :func:`~emotrace.data.load_dataset` reads).
        image_size: side of the model's input.
        batch_size: faces per batch.
        split: ``official`` or ``stratified``.
        seed: seed of the split and of the subset.
        sample_seed: seed of the balanced sampler (``seed`` when ``None``).
        augment: training augmentations (the defaults of :class:`AugmentConfig` when ``None``).
        scaling: ``fixed``, ``minmax`` or ``clahe``.
        balance: ``none``, ``sampler`` or ``weights``.
        subset: fraction of each class to keep (1.0 keeps everything).
        subset_splits: ``all`` (the subset applies to every split) or ``train``.
        num_workers: data loader worker processes.
        cache_size: side at which the dataset is decoded and cached (FER-2013's own is 48).

    Raises:
        ConfigError: an unknown ``balance`` or ``subset_splits``.

    Example:
        >>> module = FERDataModule("../shared/data/fer2013", image_size=64, subset=0.05)
        >>> module.setup()
        >>> len(module.parts["val"])
        180
    """

    def __init__(self, data: str, image_size: int = 96, batch_size: int = 64,
                 split: str = "official", seed: int = 42, sample_seed: int | None = None,
                 augment: AugmentConfig | None = None,
                 scaling: str = "fixed", balance: str = "none", subset: float = 1.0,
                 subset_splits: str = "all",
                 num_workers: int = 0, cache_size: int = 48) -> None:
        super().__init__()
        if balance not in ("none", "sampler", "weights"):
            raise ConfigError(f"unknown balance {balance!r}; use none, sampler or weights")
        self.data, self.image_size, self.batch_size = data, image_size, batch_size
        self.split, self.seed, self.scaling, self.balance = split, seed, scaling, balance
        self.sample_seed = seed if sample_seed is None else sample_seed
        self.augment = augment or AugmentConfig()
        self.subset, self.num_workers, self.cache_size = subset, num_workers, cache_size
        if subset_splits not in ("all", "train"):
            raise ConfigError(f"subset_splits must be 'all' or 'train', not {subset_splits!r}")
        self.subset_splits = subset_splits
        self.parts: dict[str, FaceSet] = {}
        #: a teacher's probabilities for each training face (distillation), set after setup
        self.soft_targets: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load (or read from the cache) and split the dataset, once.

        Args:
            stage: Lightning's stage name; every stage gets the same parts.
        """
        if self.parts:
            return
        parts = split_dataset(load_dataset(self.data, self.cache_size), self.split, self.seed)
        if self.subset < 1.0:  # budgets and tests train on a fraction of every split
            rng = np.random.default_rng(self.seed)
            parts = {name: stratified_fraction(part, self.subset, rng)
                     if name == "train" or self.subset_splits == "all" else part
                     for name, part in parts.items()}
        self.parts = parts

    @property
    def loss_weights(self) -> torch.Tensor | None:
        """Class weights for the loss with ``balance="weights"``, else ``None``."""
        if self.balance != "weights":
            return None
        labels = self.parts["train"].labels
        return torch.tensor(class_weights(labels, 7), dtype=torch.float32)

    def _loader(self, name: str, train: bool) -> DataLoader:
        transform = (train_transform(self.image_size, self.augment, self.scaling) if train
                     else eval_transform(self.image_size, self.scaling))
        dataset = FaceTensorDataset(self.parts[name], transform,
                                    self.soft_targets if train and name == "train" else None)
        sampler = None
        if train and self.balance == "sampler":
            labels = self.parts[name].labels
            weights = 1.0 / np.bincount(labels, minlength=7)[labels]
            sampler = WeightedRandomSampler(torch.as_tensor(weights), len(labels),
                                            generator=torch.Generator().manual_seed(self.sample_seed))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train and sampler is None,
                          sampler=sampler, num_workers=self.num_workers,
                          drop_last=self.drops_last_batch(len(dataset), train),
                          persistent_workers=self.num_workers > 0)

    def drops_last_batch(self, size: int, train: bool) -> bool:
        """Training leaves out its last, smaller batch (a batch of a few faces gives batch norm
        noisy statistics), unless the split is smaller than one batch: dropping it left no
        step at all and the one-cycle schedule stopped with "total_steps 0"."""
        return train and size >= self.batch_size

    def train_dataloader(self) -> DataLoader:
        """The training split, augmented and shuffled (or balanced by the sampler)."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """The validation split (PublicTest in the official split), not augmented."""
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """The test split (PrivateTest in the official split), not augmented."""
        return self._loader("test", train=False)

    def train_eval_dataloader(self) -> DataLoader:
        """The training split as validation sees it: no augmentation, no sampling."""
        return self._loader("train", train=False)
