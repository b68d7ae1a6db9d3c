"""The classification head and the input preprocessing shared by every backbone."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """Grey ``(N, 1, H, W)`` in [0, 1] -> 3 channels, normalised as the backbone was trained
    (ImageNet statistics by default).

    Part of the network so the exported ONNX model takes plain [0, 1] grey faces.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Broadcasting against the 3-channel statistics makes the 3 channels: unlike expand(), it
        # exports as one Sub node that onnx2torch converts back and forth (ensembles, Grad-CAM).
        return (x - self.mean) / self.std


class Head(nn.Module):
    """Global average pooling, optional hidden FC layers (batch norm, ReLU, dropout), logits."""

    def __init__(self, in_features: int, num_classes: int = 7, hidden: Sequence[int] = (),
                 dropout: float = 0.2, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        if not hidden and dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class EmotionNet(nn.Module):
    """Preprocess -> backbone feature map -> head. ``blocks`` lists the backbone's layers in
    order, so two-phase fine-tuning can unfreeze "the top N"."""

    def __init__(self, backbone: nn.Module, blocks: Sequence[nn.Module], head: Head,
                 preprocess: nn.Module | None = None) -> None:
        super().__init__()
        self.preprocess = preprocess or Preprocess()
        self.backbone = backbone
        self.head = head
        self._blocks = list(blocks)

    @property
    def blocks(self) -> list[nn.Module]:
        return self._blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.preprocess(x)))
