"""Image transforms for training and evaluation (torchvision v2, on uint8 grayscale tensors).

Evaluation resizes (and training's plain resize) go through
:func:`emotrace.data.images.resize_face` (OpenCV), the function the exported model's classifier
uses: validation during training and the exported model see the same pixels. Training-only
augmentations (affine zoom, random resized crops) use torchvision's own resampling. Models take ``(N, 1, S, S)`` float images in [0, 1]; the grey-to-RGB expansion and ImageNet
normalisation are part of the network (:class:`emotrace.models.Preprocess`), so the exported
ONNX model and the torch model see exactly the same input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2

from emotrace.data.images import resize_face
from emotrace.errors import ConfigError


@dataclass
class AugmentConfig:
    """Augmentation strengths; zero (or False) turns a step off."""

    hflip: bool = True
    rotation: float = 15.0          # degrees, the papers use up to 45
    shift: float = 0.1              # fraction of the side, the papers use 0.2
    scale: tuple[float, float] = (1.0, 1.0)  # random zoom of the affine step
    random_resized_crop: float = 0.0  # min area kept; 0 = off
    erasing: float = 0.0            # probability of random erasing
    brightness_contrast: float = 0.0  # jitter strength


class MinMaxScale(torch.nn.Module):
    """Stretch each image to the full [0, 1] range (per-image min-max scaling)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = image.amin(dim=(-2, -1), keepdim=True), image.amax(dim=(-2, -1), keepdim=True)
        return (image - low) / (high - low).clamp_min(1e-6)


class FaceResize(torch.nn.Module):
    """Resize a ``(1, H, W)`` uint8 tensor with :func:`resize_face` (as at inference)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        face = resize_face(image[0].numpy(), self.size)
        return torch.from_numpy(np.ascontiguousarray(face)).unsqueeze(0)


def _to_float(scaling: str) -> list[torch.nn.Module]:
    steps: list[torch.nn.Module] = [v2.ToDtype(torch.float32, scale=True)]
    if scaling == "minmax":
        steps.append(MinMaxScale())
    elif scaling != "fixed":
        raise ConfigError(f"unknown scaling {scaling!r}; use fixed (x/255) or minmax (per image)")
    return steps


def eval_transform(image_size: int, scaling: str = "fixed") -> v2.Compose:
    """Resize a ``(1, H, W)`` uint8 tensor to ``image_size`` and scale it to [0, 1]."""
    return v2.Compose([FaceResize(image_size), *_to_float(scaling)])


def train_transform(image_size: int, augment: AugmentConfig, scaling: str = "fixed") -> v2.Compose:
    """Augment then resize: geometric steps run at the stored (small) size, which is cheaper."""
    steps: list[torch.nn.Module] = []
    if augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment.rotation or augment.shift or augment.scale != (1.0, 1.0):
        steps.append(v2.RandomAffine(degrees=augment.rotation,
                                     translate=(augment.shift, augment.shift) if augment.shift else None,
                                     scale=augment.scale if augment.scale != (1.0, 1.0) else None))
    if augment.random_resized_crop:
        steps.append(v2.RandomResizedCrop((image_size, image_size),
                                          scale=(augment.random_resized_crop, 1.0), antialias=True))
    else:
        steps.append(FaceResize(image_size))
    if augment.brightness_contrast:
        steps.append(v2.ColorJitter(brightness=augment.brightness_contrast,
                                    contrast=augment.brightness_contrast))
    steps += _to_float(scaling)
    if augment.erasing:
        steps.append(v2.RandomErasing(p=augment.erasing, value=0))
    return v2.Compose(steps)
