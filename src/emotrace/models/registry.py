"""One factory for every backbone: ``create_model(name, pretrained=..., num_classes=7)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm

from emotrace.models.heads import EmotionNet, Head
from emotrace.models.weights import load_state_dict, resolve_weights


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone: the full torchvision-style network (whose state dict the
    weights file holds), how to cut its feature extractor out, and the weights' cache name."""

    build: Callable[[], nn.Module]
    features: Callable[[nn.Module], tuple[nn.Module, list[nn.Module], int]]
    weights_file: str | None = None
    min_size: int = 32


def _mobilenet_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    return net.features, list(net.features), net.last_channel


def _resnet_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    blocks = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
              net.layer4]
    return nn.Sequential(*blocks), blocks, net.fc.in_features


def _inception_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    blocks = [module for name, module in net.named_children()
              if name not in ("AuxLogits", "avgpool", "dropout", "fc")]
    return nn.Sequential(*blocks), blocks, net.fc.in_features


class PlainCNN(nn.Module):
    """The papers' baseline: four conv blocks (conv-BN-ReLU x2, max-pool), trained from scratch."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        blocks, channels = [], 3
        for width in widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True), nn.MaxPool2d(2)))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _plain_cnn_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    return net, list(net.blocks), net.out_features


BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v2": BackboneSpec(tvm.mobilenet_v2, _mobilenet_features,
                                 "mobilenet_v2-b0353104.pth"),
    "resnet50": BackboneSpec(tvm.resnet50, _resnet_features),
    "inception_v3": BackboneSpec(lambda: tvm.inception_v3(weights=None, aux_logits=True,
                                                          init_weights=True),
                                 _inception_features, min_size=75),
    "plain_cnn": BackboneSpec(PlainCNN, _plain_cnn_features),
}


def list_models() -> list[str]:
    return sorted(BACKBONES)


def create_model(name: str, pretrained: bool = True, num_classes: int = 7,
                 weights: str | None = None, head_hidden: Sequence[int] = (),
                 dropout: float = 0.2, batch_norm: bool = False) -> EmotionNet:
    """Build backbone ``name`` with an emotion head.

    ``pretrained`` loads ImageNet weights: from ``weights`` (a file path) when given, else from the
    torch hub cache (``~/.cache/torch/hub/checkpoints/<file>``); nothing is downloaded.
    ``plain_cnn`` has no pretrained weights and is always trained from scratch.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    spec = BACKBONES[name]
    net = spec.build()
    if pretrained and name == "plain_cnn":
        raise ValueError("plain_cnn has no pretrained weights; use pretrained=False")
    if pretrained:
        state = load_state_dict(resolve_weights(name, spec.weights_file, weights), name)
        missing, unexpected = net.load_state_dict(state, strict=False)
        wanted = [k for k in missing if not k.startswith(("fc.", "classifier.", "AuxLogits."))]
        if wanted or len(unexpected) > len(state) // 2:
            raise ValueError(f"weights file does not fit {name}: {len(wanted)} missing keys "
                             f"(e.g. {wanted[:3]}), {len(unexpected)} unexpected")
    backbone, blocks, width = spec.features(net)
    head = Head(width, num_classes, hidden=head_hidden, dropout=dropout, batch_norm=batch_norm)
    return EmotionNet(backbone, blocks, head)
