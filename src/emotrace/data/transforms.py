"""Image transforms for training and evaluation (torchvision v2, on uint8 grayscale tensors).

Evaluation resizes (and training's plain resize) go through
:func:`emotrace.data.images.resize_face` (OpenCV), the function the exported model's classifier
uses: validation during training and the exported model see the same pixels. Training-only
augmentations (affine zoom, random resized crops) use torchvision's own resampling. Models take ``(N, 1, S, S)`` float images in [0, 1]; the grey-to-RGB expansion and ImageNet
normalisation are part of the network (:class:`emotrace.models.Preprocess`), so the exported
ONNX model and the torch model see exactly the same input.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from emotrace.data.images import equalize_face, resize_face
from emotrace.errors import ConfigError


@dataclass
class AugmentConfig:
    """Augmentation strengths; zero (or False) turns a step off.

    Attributes:
        hflip: mirror half of the faces.
        rotation: largest rotation, in degrees (the papers use up to 45).
        shift: largest shift, as a fraction of the side (the papers use 0.2).
        scale: range of the random zoom of the affine step; ``(1.0, 1.0)`` is off.
        random_resized_crop: smallest area kept by a random resized crop; 0 is off.
        erasing: probability of random erasing.
        brightness_contrast: strength of the brightness and contrast jitter.
        degrade: probability of each real-footage degradation (:class:`LowResolution`,
            :class:`PoorExposure`).
        occlusion: probability of a hand-sized block over the eyes or the mouth
            (:class:`Occlude`).

    Example:
        >>> AugmentConfig(rotation=10.0, erasing=0.25).hflip
        True
    """

    hflip: bool = True
    rotation: float = 15.0          # degrees, the papers use up to 45
    shift: float = 0.1              # fraction of the side, the papers use 0.2
    scale: tuple[float, float] = (1.0, 1.0)  # random zoom of the affine step
    random_resized_crop: float = 0.0  # min area kept; 0 = off
    erasing: float = 0.0            # probability of random erasing
    brightness_contrast: float = 0.0  # jitter strength
    degrade: float = 0.0            # probability of each real-footage degradation (see Degrade)
    occlusion: float = 0.0          # probability of a hand-sized block over the eyes or mouth

    @classmethod
    def from_mapping(cls, options: object) -> AugmentConfig:
        """The ``augment`` block of a recipe (YAML lists become tuples).

        Raises:
            ConfigError: not a mapping, an unknown option, or a value torchvision cannot use.

        Example:
            >>> AugmentConfig.from_mapping({"scale": [0.9, 1.1]}).scale
            (0.9, 1.1)
        """
        if not isinstance(options, dict):
            raise ConfigError(f"augment: expected options such as {{rotation: 10, erasing: 0.25}}"
                              f", got {options!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(map(str, set(options) - set(known)))
        if unknown:
            raise ConfigError(f"unknown augment option(s): {', '.join(unknown)} "
                              f"(known: {', '.join(known)})")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def __post_init__(self) -> None:
        """Refuse, naming the option, what torchvision would fail on mid-run. Numbers are checked,
        not converted (a recipe's options are part of a study run's cache key), except numeric
        text: YAML 1.1 reads ``2e-1`` (no dot) as a string, which never trained before."""
        if not isinstance(self.hflip, bool):
            raise ConfigError(f"augment.hflip: expected true or false, got {self.hflip!r}")
        for name in ("rotation", "shift", "random_resized_crop", "erasing",
                     "brightness_contrast", "degrade", "occlusion"):
            value = getattr(self, name)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = float(value)
                    setattr(self, name, value)
            top = 1.0 if name in _FRACTIONS else math.inf
            if not _is_number(value) or not 0 <= value <= top:
                limits = "between 0 and 1" if top == 1.0 else "0 or more"
                raise ConfigError(f"augment.{name}: expected a number {limits}, got {value!r}")
        scale = self.scale
        if (not isinstance(scale, (tuple, list)) or len(scale) != 2
                or not all(_is_number(v) and 0 < v < math.inf for v in scale)
                or scale[0] > scale[1]):
            raise ConfigError(f"augment.scale: expected [low, high], two numbers above 0 with "
                              f"low <= high (e.g. [0.9, 1.1]; [1.0, 1.0] is off), got {scale!r}")


#: Augmentation options that are a probability or a fraction of the image.
_FRACTIONS = ("shift", "random_resized_crop", "erasing", "degrade", "occlusion")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))


class MinMaxScale(torch.nn.Module):
    """Stretch each image to the full [0, 1] range (per-image min-max scaling).

    Example:
        >>> MinMaxScale()(torch.tensor([[[0.2, 0.6]]])).tolist()
        [[[0.0, 1.0]]]
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Scale one image or a batch.

        Args:
            image: ``(..., H, W)`` float tensor.

        Returns:
            The same shape, each image's minimum at 0 and maximum at 1 (flat images stay 0).
        """
        low, high = image.amin(dim=(-2, -1), keepdim=True), image.amax(dim=(-2, -1), keepdim=True)
        return (image - low) / (high - low).clamp_min(1e-6)


class FaceResize(torch.nn.Module):
    """Resize a ``(1, H, W)`` uint8 tensor with :func:`resize_face` (as at inference).

    Args:
        size: side of the square output.

    Example:
        >>> FaceResize(96)(torch.zeros(1, 48, 48, dtype=torch.uint8)).shape
        torch.Size([1, 96, 96])
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Resize one face.

        Args:
            image: ``(1, H, W)`` uint8 tensor.

        Returns:
            ``(1, size, size)`` uint8 tensor.
        """
        face = resize_face(image[0].numpy(), self.size)
        return torch.from_numpy(np.ascontiguousarray(face)).unsqueeze(0)


class Equalize(torch.nn.Module):
    """CLAHE on a ``(1, S, S)`` uint8 tensor at the model's size (:func:`equalize_face`, as at
    inference).

    Example:
        >>> Equalize()(torch.zeros(1, 96, 96, dtype=torch.uint8)).shape
        torch.Size([1, 96, 96])
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Equalise one face.

        Args:
            image: ``(1, S, S)`` uint8 tensor.

        Returns:
            ``(1, S, S)`` uint8 tensor with its local contrast equalised.
        """
        return torch.from_numpy(equalize_face(image[0].numpy())).unsqueeze(0)


def _uniform(low: float, high: float) -> float:
    """A number drawn from torch's generator (seeded per run, like every other augmentation)."""
    return low + (high - low) * float(torch.rand(()))


class Occlude(torch.nn.Module):
    """With probability ``p``, a flat grey block about the size of a hand or a pair of sunglasses
    over the eyes or the mouth of a tight face crop (people touch their faces, hold cups, wear
    glasses): the model learns to read what is left instead of failing on one missing part.

    Args:
        p: probability that a face gets a block.

    Example:
        >>> face = torch.full((1, 96, 96), 128, dtype=torch.uint8)
        >>> Occlude(0.0)(face) is face, Occlude(1.0)(face).shape
        (True, torch.Size([1, 96, 96]))
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Cover part of one face, or return it unchanged.

        Args:
            image: ``(1, S, S)`` uint8 tensor (a tight face crop).

        Returns:
            A copy with a flat block of one random grey over the eyes or the mouth, or ``image``
            itself.
        """
        if float(torch.rand(())) >= self.p:
            return image
        face = image.clone()
        side = face.shape[-1]
        height, width = _uniform(0.18, 0.35) * side, _uniform(0.35, 0.7) * side
        centre_y = _uniform(0.3, 0.42) if float(torch.rand(())) < 0.5 else _uniform(0.7, 0.85)
        centre_x = _uniform(0.35, 0.65)
        y0, x0 = max(0, int((centre_y * side) - height / 2)), max(0, int(centre_x * side - width / 2))
        face[..., y0:y0 + int(height), x0:x0 + int(width)] = int(torch.randint(0, 256, ()))
        return face


class LowResolution(torch.nn.Module):
    """Each with probability ``p``: defocus / motion blur (Gaussian, sigma up to 3% of the side)
    and a small face (shrunk to 12-40 px and scaled back), as far-away or out-of-focus faces in
    lecture footage are. Runs at the stored size, before the resize to the model's input.

    Args:
        p: probability of each of the two degradations.

    Example:
        >>> LowResolution(1.0)(torch.zeros(1, 48, 48, dtype=torch.uint8)).shape
        torch.Size([1, 48, 48])
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Blur and / or shrink one face.

        Args:
            image: ``(1, S, S)`` uint8 tensor.

        Returns:
            ``(1, S, S)`` uint8 tensor.
        """
        face = image[0].numpy()
        side = face.shape[-1]
        if float(torch.rand(())) < self.p:
            face = cv2.GaussianBlur(face, (0, 0), _uniform(0.3, 0.03 * side + 0.3))
        if float(torch.rand(())) < self.p:
            small = max(8, int(_uniform(12, 40)))
            if small < side:
                face = cv2.resize(cv2.resize(face, (small, small), interpolation=cv2.INTER_AREA),
                                  (side, side), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(np.ascontiguousarray(face)).unsqueeze(0)


class PoorExposure(torch.nn.Module):
    """Each with probability ``p``: heavy JPEG compression (quality 10-60) and bad light (gamma
    0.4-3 with 50-110% contrast: dim rooms, stage light, washed-out webcams). Runs at the model's
    input size.

    Args:
        p: probability of each of the two degradations.

    Example:
        >>> PoorExposure(1.0)(torch.full((1, 96, 96), 128, dtype=torch.uint8)).dtype
        torch.uint8
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Compress and / or re-light one face.

        Args:
            image: ``(1, S, S)`` uint8 tensor.

        Returns:
            ``(1, S, S)`` uint8 tensor.
        """
        face = image[0].numpy()
        if float(torch.rand(())) < self.p:
            ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(_uniform(10, 60))])
            face = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else face
        if float(torch.rand(())) < self.p:
            gamma = float(np.exp(_uniform(np.log(0.4), np.log(3.0))))
            lit = 255.0 * (face / 255.0) ** gamma
            face = np.clip(_uniform(0.5, 1.1) * (lit - lit.mean()) + lit.mean(), 0, 255)
        return torch.from_numpy(np.ascontiguousarray(face, np.uint8)).unsqueeze(0)


def _to_float(scaling: str) -> list[torch.nn.Module]:
    if scaling not in ("fixed", "minmax", "clahe"):
        raise ConfigError(f"unknown scaling {scaling!r}; use fixed (x/255), minmax (per image) "
                          "or clahe (local contrast equalised, then x/255)")
    steps: list[torch.nn.Module] = [Equalize()] if scaling == "clahe" else []
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if scaling == "minmax":
        steps.append(MinMaxScale())
    return steps


def eval_transform(image_size: int, scaling: str = "fixed") -> v2.Compose:
    """Resize a ``(1, H, W)`` uint8 tensor to ``image_size`` and scale it to [0, 1].

    Args:
        image_size: side of the model's input.
        scaling: ``fixed`` (x / 255), ``minmax`` (per image) or ``clahe`` (equalised, then
            x / 255), as the model's card says.

    Returns:
        The transform: ``(1, H, W)`` uint8 in, ``(1, image_size, image_size)`` float out.

    Raises:
        ConfigError: an unknown scaling.

    Example:
        >>> eval_transform(96)(torch.zeros(1, 48, 48, dtype=torch.uint8)).shape
        torch.Size([1, 96, 96])
    """
    return v2.Compose([FaceResize(image_size), *_to_float(scaling)])


def train_transform(image_size: int, augment: AugmentConfig, scaling: str = "fixed") -> v2.Compose:
    """Augment then resize: geometric steps run at the stored (small) size, which is cheaper.

    Args:
        image_size: side of the model's input.
        augment: which augmentations to apply, and how strongly.
        scaling: ``fixed``, ``minmax`` or ``clahe``, as in :func:`eval_transform`.

    Returns:
        The transform: ``(1, H, W)`` uint8 in, ``(1, image_size, image_size)`` float out.

    Raises:
        ConfigError: an unknown scaling.

    Example:
        >>> transform = train_transform(96, AugmentConfig(erasing=0.25))
        >>> transform(torch.zeros(1, 48, 48, dtype=torch.uint8)).shape
        torch.Size([1, 96, 96])
    """
    steps: list[torch.nn.Module] = []
    if augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment.rotation or augment.shift or augment.scale != (1.0, 1.0):
        steps.append(v2.RandomAffine(degrees=augment.rotation,
                                     translate=(augment.shift, augment.shift) if augment.shift else None,
                                     scale=augment.scale if augment.scale != (1.0, 1.0) else None))
    if augment.occlusion:
        steps.append(Occlude(augment.occlusion))
    if augment.degrade:
        steps.append(LowResolution(augment.degrade))
    if augment.random_resized_crop:
        steps.append(v2.RandomResizedCrop((image_size, image_size),
                                          scale=(augment.random_resized_crop, 1.0), antialias=True))
    else:
        steps.append(FaceResize(image_size))
    if augment.degrade:
        steps.append(PoorExposure(augment.degrade))
    if augment.brightness_contrast:
        steps.append(v2.ColorJitter(brightness=augment.brightness_contrast,
                                    contrast=augment.brightness_contrast))
    steps += _to_float(scaling)
    if augment.erasing:
        steps.append(v2.RandomErasing(p=augment.erasing, value=0))
    return v2.Compose(steps)
