"""Start training from an exported single model (an ``.onnx`` file with its card, or ``fast``)
when its run folder and checkpoint are gone, e.g. to fine-tune the shipped model further.

The exporter folds each BatchNorm into the convolution before it, so the file holds one weight
and one bias per such convolution. They go into the network's convolutions, and each BatchNorm
is rebuilt so that it computes ``z + bias`` in eval mode (the file's function, checked against
ONNX Runtime) while its running statistics, measured on training faces, make it normalise in
training mode about as the original layer did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from emotrace.errors import ConfigError
from emotrace.inference.classifier import (SHIPPED_MODELS, ModelError, model_path, onnxruntime,
                                          read_card)
from emotrace.models.heads import EmotionNet

#: ONNX Runtime against the rebuilt network on the same faces (probabilities).
MATCH_TOLERANCE = 1e-3


def is_onnx_source(init_from: str | None) -> bool:
    """Whether ``init_from`` names an exported model rather than a Lightning checkpoint."""
    return bool(init_from) and (init_from in SHIPPED_MODELS or init_from.endswith(".onnx"))


def _onnx_weights(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray | None]],
                                         dict[str, np.ndarray]]:
    """The folded convolutions' (weight, bias) in graph order, and the named weights."""
    import onnx
    from onnx import numpy_helper

    from emotrace.models.onnx_weights import weights_as_initializers

    graph = weights_as_initializers(onnx.load(str(path))).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    named = {k.removeprefix("net."): v for k, v in arrays.items() if k.startswith("net.")}
    folded = [(arrays[n.input[1]], arrays[n.input[2]] if len(n.input) > 2 else None)
              for n in graph.node if n.op_type == "Conv" and not n.input[1].startswith("net.")]
    return folded, named


def _conv_norm_pairs(net: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each convolution followed directly by a BatchNorm, in the order the modules run."""
    modules = list(net.modules())
    return [(a, b) for a, b in zip(modules, modules[1:])
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)]


def _check_card(path: Path, model: str) -> None:
    card = read_card(path)
    if card.get("backbone") != model:
        raise ConfigError(f"init_from {path}: it is a {card.get('backbone')!r} model, the recipe "
                          f"trains {model!r}; set model: {card.get('backbone')} or start from "
                          "another file (ensembles cannot be a starting point)")


@torch.no_grad()
def _load_folded(net: EmotionNet, path: Path, model: str) -> list[tuple[nn.BatchNorm2d, torch.Tensor]]:
    folded, named = _onnx_weights(path)
    pairs = _conv_norm_pairs(net)
    if len(folded) != len(pairs):
        raise ModelError(f"init_from {path}: {len(folded)} folded convolutions, a {model} has "
                         f"{len(pairs)}; was it exported by emotrace from a {model}?")
    norms = []
    for (weight, bias), (conv, norm) in zip(folded, pairs):
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise ModelError(f"init_from {path}: a convolution of shape {weight.shape} where a "
                             f"{model} has {tuple(conv.weight.shape)}")
        conv.weight.copy_(torch.tensor(weight))
        bias_t = torch.tensor(bias) if bias is not None else torch.zeros(len(weight))
        _as_shift(norm, bias_t)
        norms.append((norm, bias_t))
    own = net.state_dict()
    missing = [k for k in named if k not in own or own[k].shape != named[k].shape]
    if missing:
        raise ModelError(f"init_from {path}: weights {missing[:3]} do not fit this {model} "
                         "(another head or input?)")
    net.load_state_dict({k: torch.tensor(v) for k, v in named.items()}, strict=False)
    return norms


def _as_shift(norm: nn.BatchNorm2d, bias: torch.Tensor, mean: torch.Tensor | None = None,
              var: torch.Tensor | None = None) -> None:
    """Make ``norm`` compute ``z + bias`` in eval mode with running statistics ``mean``/``var``
    (none: 0 and 1)."""
    mean = torch.zeros_like(bias) if mean is None else mean
    var = torch.full_like(bias, 1 - norm.eps) if var is None else var
    norm.running_mean.copy_(mean)
    norm.running_var.copy_(var)
    norm.weight.copy_(torch.sqrt(var + norm.eps))
    norm.bias.copy_(bias + mean)


@torch.no_grad()
def _measure_norm_inputs(net: EmotionNet, norms: list[nn.BatchNorm2d],
                         faces: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of each BatchNorm's input on ``faces`` (eval mode)."""
    stats: dict[int, list[torch.Tensor]] = {id(n): [] for n in norms}
    hooks = [n.register_forward_hook(lambda m, inp, out: stats[id(m)].append(inp[0]))
             for n in norms]
    try:
        net.eval()
        for batch in faces.split(256):
            net(batch)
    finally:
        for hook in hooks:
            hook.remove()
    measured = []
    for norm in norms:
        z = torch.cat([t.transpose(0, 1).flatten(1) for t in stats[id(norm)]], dim=1)
        measured.append((z.mean(1), z.var(1)))
    return measured


def _check_against_onnx(net: EmotionNet, path: Path, faces: torch.Tensor) -> None:
    session = onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[-1]
    faces = faces[:64]
    if isinstance(size, int) and size != faces.shape[-1]:
        faces = nn.functional.interpolate(faces, size=(size, size), mode="bilinear",
                                          align_corners=False)
    expected = session.run(None, {session.get_inputs()[0].name: faces.numpy()})[0]
    with torch.no_grad():
        got = torch.softmax(net.eval()(faces), dim=1).numpy()
    gap = float(np.abs(got - expected).max())
    if gap > MATCH_TOLERANCE:
        raise ModelError(f"init_from {path}: the rebuilt network differs from the file by {gap:.2g} "
                         "in probability; it was not exported by emotrace from this backbone")


def start_from_onnx(net: EmotionNet, init_from: str, model: str, faces: torch.Tensor) -> None:
    """Load exported model ``init_from`` into ``net`` (a fresh ``model``); ``faces`` are
    un-augmented training faces at the training size, shaped ``(n, 1, H, W)`` in [0, 1]."""
    path = model_path(init_from)
    if not path.is_file():
        raise ConfigError(f"init_from model not found: {path}; give fast or an exported .onnx "
                          "file with its card")
    _check_card(path, model)
    norms = _load_folded(net, path, model)
    measured = _measure_norm_inputs(net, [n for n, _ in norms], faces)
    with torch.no_grad():
        for (norm, bias), (mean, var) in zip(norms, measured):
            _as_shift(norm, bias, mean, var)
    _check_against_onnx(net, path, faces)
    net.train()
