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

    Args:
        mean: per-channel mean the backbone was trained with.
        std: per-channel standard deviation the backbone was trained with.

    Example:
        >>> Preprocess()(torch.zeros(1, 1, 96, 96)).shape
        torch.Size([1, 3, 96, 96])
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a batch of grey faces.

        Args:
            x: ``(N, 1, H, W)`` grey faces in [0, 1].

        Returns:
            ``(N, 3, H, W)`` normalised 3-channel input.
        """
        # Broadcasting against the 3-channel statistics makes the 3 channels: unlike expand(), it
        # exports as one Sub node that onnx2torch converts back and forth (ensembles, Grad-CAM).
        return (x - self.mean) / self.std


class Head(nn.Module):
    """Global average pooling, optional hidden FC layers (batch norm, ReLU, dropout), logits.

    Args:
        in_features: channels of the backbone's feature map.
        num_classes: number of outputs.
        hidden: widths of hidden fully connected layers (none by default).
        dropout: dropout before each linear layer after the pooling (0 turns it off).
        batch_norm: batch norm after each hidden layer.

    Example:
        >>> Head(1280)(torch.zeros(2, 1280, 3, 3)).shape
        torch.Size([2, 7])
    """

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
        """Logits from a feature map.

        Args:
            features: ``(N, C, h, w)`` backbone features (or ``(N, C)`` descriptors).

        Returns:
            ``(N, num_classes)`` logits.
        """
        return self.layers(features)


class EmotionNet(nn.Module):
    """Preprocess -> backbone feature map -> head. ``blocks`` lists the backbone's layers in
    order, so two-phase fine-tuning can unfreeze "the top N".

    Args:
        backbone: the feature extractor.
        blocks: the backbone's layers in order (for unfreezing the top ones).
        head: the classification head.
        preprocess: input preprocessing (:class:`Preprocess` with ImageNet statistics when
            ``None``).

    Example:
        >>> from emotrace.models import create_model
        >>> net = create_model("mobilenet_v2", pretrained=False)
        >>> net(torch.zeros(2, 1, 96, 96)).shape, len(net.blocks)
        (torch.Size([2, 7]), 19)
    """

    def __init__(self, backbone: nn.Module, blocks: Sequence[nn.Module], head: Head,
                 preprocess: nn.Module | None = None) -> None:
        super().__init__()
        self.preprocess = preprocess or Preprocess()
        self.backbone = backbone
        self.head = head
        self._blocks = list(blocks)

    @property
    def blocks(self) -> list[nn.Module]:
        """The backbone's layers, input side first."""
        return self._blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of grey faces.

        Args:
            x: ``(N, 1, S, S)`` grey faces in [0, 1].

        Returns:
            ``(N, num_classes)`` logits.
        """
        return self.head(self.backbone(self.preprocess(x)))
