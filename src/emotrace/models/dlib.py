"""The dlib ResNet face descriptor (face-recognition features) as a frozen feature extractor.

dlib's network runs in dlib, not torch, so its 128-D descriptors are computed once per image,
cached by image content, and a torch head is trained on them (``model: dlib_resnet``)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from emotrace.data.module import FERDataModule
from emotrace.utils import atomic_path, progress

CHIP_SIZE = 150       # dlib's aligned face chip
DESCRIPTOR_SIZE = 128


def dlib_model_file() -> Path:
    """``dlib_face_recognition_resnet_model_v1.dat`` from the ``face-recognition-models`` package.

    Returns:
        The model file's path inside the installed package.

    Raises:
        ImportError: the package is not installed (the message says what to install).

    Example:
        >>> dlib_model_file().name
        'dlib_face_recognition_resnet_model_v1.dat'
    """
    spec = importlib.util.find_spec("face_recognition_models")  # no import: it needs pkg_resources
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the dlib face descriptor needs: pip install dlib-bin "
                          "face-recognition-models (or pip install 'emotrace[train]')")
    return Path(spec.submodule_search_locations[0]) / "models" / \
        "dlib_face_recognition_resnet_model_v1.dat"


class DlibFaceDescriptor:
    """128-D dlib descriptors of grey face crops, cached on disk by image content.

    Args:
        cache_dir: folder of the cache (``$EMOTRACE_CACHE`` or ``~/.cache/emotrace`` when
            ``None``); descriptors go to ``dlib/descriptors.npz`` under it.
        chunk: faces per dlib call; the cache is saved after each chunk, so a long first pass
            can resume.

    Raises:
        ImportError: dlib (``dlib-bin``) or ``face-recognition-models`` is missing.

    Example:
        >>> import tempfile
        >>> from emotrace.data import read_face_image
        >>> describe = DlibFaceDescriptor(cache_dir=tempfile.mkdtemp())
        >>> describe(np.stack([read_face_image("../shared/testdata/face.jpg", 48)])).shape
        (1, 128)
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, chunk: int = 256) -> None:
        try:
            import dlib
        except ImportError as error:
            raise ImportError("the dlib face descriptor needs: pip install dlib-bin") from error
        self.model = dlib.face_recognition_model_v1(str(dlib_model_file()))
        base = Path(cache_dir or os.environ.get("EMOTRACE_CACHE",
                                                Path.home() / ".cache" / "emotrace"))
        self.cache_file = base / "dlib" / "descriptors.npz"
        self.chunk = chunk
        self._cache: dict[bytes, np.ndarray] = self._load_cache()

    def _load_cache(self) -> dict[bytes, np.ndarray]:
        if not self.cache_file.exists():
            return {}
        with np.load(self.cache_file) as stored:
            return dict(zip(map(bytes, stored["keys"]), stored["descriptors"]))

    def _save_cache(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._cache), dtype="S20")
        descriptors = np.stack(list(self._cache.values())).astype(np.float32)
        with atomic_path(self.cache_file) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=keys, descriptors=descriptors)

    @staticmethod
    def chip(face: np.ndarray) -> np.ndarray:
        """A grey crop as the 150x150 RGB chip dlib expects (FER crops are already aligned-ish).

        Args:
            face: ``(H, W)`` uint8 grey face crop.

        Returns:
            ``(150, 150, 3)`` uint8 RGB chip.

        Example:
            >>> DlibFaceDescriptor.chip(np.zeros((48, 48), np.uint8)).shape
            (150, 150, 3)
        """
        return cv2.cvtColor(cv2.resize(face, (CHIP_SIZE, CHIP_SIZE),
                                       interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` uint8 grey crops -> ``(N, 128)`` float32 descriptors.

        Args:
            faces: grey face crops; identical crops are described once.

        Returns:
            ``(N, 128)`` float32 descriptors, in the order of ``faces``.
        """
        keys = [hashlib.sha1(np.ascontiguousarray(face).tobytes()).digest() for face in faces]
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        todo = [key for key in first if key not in self._cache]
        for start in progress(range(0, len(todo), self.chunk), desc="dlib descriptors",
                              total=-(-len(todo) // self.chunk), unit="chunk"):
            batch = todo[start:start + self.chunk]
            chips = [self.chip(faces[first[key]]) for key in batch]
            for key, vector in zip(batch, self.model.compute_face_descriptor(chips)):
                self._cache[key] = np.asarray(vector, np.float32)
            self._save_cache()  # resumable: a long first pass keeps what it computed
        if not len(faces):
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        return np.stack([self._cache[key] for key in keys])


def seconds_per_face(faces: np.ndarray) -> float:
    """Time dlib's descriptor on ``faces`` (uncached): what a first pass costs per face.

    Args:
        faces: ``(N, H, W)`` uint8 grey face crops.

    Returns:
        Seconds per face on this machine.

    Example:
        >>> seconds_per_face(np.zeros((4, 48, 48), np.uint8)) > 0
        True
    """
    import time

    import dlib

    model = dlib.face_recognition_model_v1(str(dlib_model_file()))
    chips = [DlibFaceDescriptor.chip(face) for face in faces]
    start = time.perf_counter()
    model.compute_face_descriptor(chips)
    return (time.perf_counter() - start) / max(len(faces), 1)


class DescriptorDataModule(FERDataModule):
    """The same splits and subsets as :class:`FERDataModule`, served as dlib descriptors shaped
    ``(N, 128, 1, 1)`` so the usual pooled head trains on them.

    Takes the arguments of :class:`FERDataModule`; augmentation and the balanced sampler do not
    apply (the descriptors are computed once per image).

    Example:
        >>> module = DescriptorDataModule("../shared/data/fer2013", subset=0.01)  # doctest: +SKIP
        >>> module.setup()  # doctest: +SKIP
        >>> module.features["val"].shape[1:]  # doctest: +SKIP
        torch.Size([128, 1, 1])
    """

    def setup(self, stage: str | None = None) -> None:
        """Split the dataset, then describe the training and validation faces (once).

        Args:
            stage: Lightning's stage name; every stage gets the same parts.
        """
        super().setup(stage)
        if not hasattr(self, "features"):
            describe = DlibFaceDescriptor()
            self.features = {name: torch.from_numpy(describe(part.images))[:, :, None, None]
                             for name, part in self.parts.items() if name in ("train", "val")}

    def _loader(self, name: str, train: bool) -> DataLoader:
        if name not in self.features:
            self.features[name] = torch.from_numpy(
                DlibFaceDescriptor()(self.parts[name].images))[:, :, None, None]
        labels = torch.as_tensor(self.parts[name].labels, dtype=torch.long)
        return DataLoader(TensorDataset(self.features[name], labels), batch_size=self.batch_size,
                          shuffle=train, drop_last=self.drops_last_batch(len(labels), train))
