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

from emotrace.cards import (PARENT_FIELDS, ModelCard, describe_source,  # noqa: F401 (API)
                            is_onnx_source, source_path)
from emotrace.errors import ConfigError, EmotraceError
from emotrace.models.heads import EmotionNet
from emotrace.training.views import ExportWrapper

#: ONNX Runtime against the rebuilt network on the same faces (probabilities).
MATCH_TOLERANCE = 1e-3
FoldedConv = tuple[np.ndarray, "np.ndarray | None"]


def _onnx_weights(path: Path,
                  role: str = "init_from") -> tuple[list[FoldedConv], dict[str, np.ndarray]]:
    """The folded convolutions' (weight, bias) in graph order, and the named weights."""
    import onnx
    from onnx import numpy_helper

    from emotrace.models.onnx_weights import weights_as_initializers

    try:
        graph = weights_as_initializers(onnx.load(str(path))).graph
    except Exception as error:  # onnx raises several unrelated types for a damaged file
        raise EmotraceError(f"{role} {path}: not a readable ONNX file ({error})") from None
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    named = {k.removeprefix("net."): v for k, v in arrays.items() if k.startswith("net.")}
    folded = [(arrays[n.input[1]], arrays[n.input[2]] if len(n.input) > 2 else None)
              for n in graph.node if n.op_type == "Conv" and not n.input[1].startswith("net.")]
    return folded, named


def conv_norm_pairs(net: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each convolution followed directly by a BatchNorm, in the order the modules run."""
    modules = list(net.modules())
    return [(a, b) for a, b in zip(modules, modules[1:])
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)]


def _single_backbone(path: Path, card: ModelCard, role: str = "init_from") -> str:
    """The backbone of the one network the file holds; an ensemble (or an unknown backbone) is
    refused, since only single networks have weights to start from or average."""
    from emotrace.models import BACKBONES

    backbone = card.backbone
    if card.ensemble is not None or backbone not in BACKBONES:
        use = "a starting point" if role == "init_from" else "averaged"
        raise ConfigError(f"{role} {path}: not one network (backbone {backbone!r}): an ensemble "
                          f"cannot be {use}; give one of its members' .onnx files (its card "
                          "lists them)")
    return backbone


def _check_card(path: Path, card: ModelCard, model: str) -> None:
    """The file must hold one network of the recipe's backbone."""
    backbone = _single_backbone(path, card)
    if backbone != model:
        raise ConfigError(f"init_from {path}: it is a {backbone} model, the recipe trains "
                          f"{model}; set model: {backbone} or start from a {model} file")


@torch.no_grad()
def _load_folded(net: EmotionNet, path: Path, model: str,
                 role: str = "init_from") -> list[tuple[nn.BatchNorm2d, torch.Tensor]]:
    """Copy the file's weights into ``net``; each BatchNorm set to add its folded bias."""
    folded, named = _onnx_weights(path, role)
    pairs = conv_norm_pairs(net)
    if len(folded) != len(pairs):
        raise ConfigError(f"{role} {path}: {len(folded)} folded convolutions, a {model} has "
                          f"{len(pairs)}; was it exported by emotrace from a {model}?")
    norms = []
    for (weight, bias), (conv, norm) in zip(folded, pairs):
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise ConfigError(f"{role} {path}: a convolution of shape {weight.shape} where a "
                              f"{model} has {tuple(conv.weight.shape)}")
        conv.weight.copy_(torch.tensor(weight))
        bias_t = torch.tensor(bias) if bias is not None else torch.zeros(len(weight))
        _as_shift(norm, bias_t)
        norms.append((norm, bias_t))
    own = net.state_dict()
    unfit = [k for k in named if k not in own or own[k].shape != named[k].shape]
    if unfit:
        hint = ("its card's recipe must name the head it was trained with" if role == "soup"
                else "set head_hidden / batch_norm as the model was trained")
        raise ConfigError(f"{role} {path}: weights {unfit[:3]} do not fit this {model} "
                          f"(another head? {hint})")
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
def measure_norm_inputs(net: EmotionNet, norms: list[nn.BatchNorm2d],
                        faces: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of each BatchNorm's input on ``faces`` (eval mode), summed
    batch by batch so memory grows with the channels, not the faces."""
    sums = {id(n): torch.zeros(3, n.num_features, dtype=torch.float64) for n in norms}

    def add(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        z = inputs[0].transpose(0, 1).flatten(1).double()
        sums[id(module)] += torch.stack([torch.full_like(z[:, 0], z.shape[1]), z.sum(1),
                                         (z * z).sum(1)])

    hooks = [n.register_forward_hook(add) for n in norms]
    try:
        net.eval()
        # small batches: activations of 128 faces at 96 px overflow the CPU caches (measured:
        # 1,024 faces through MobileNetV2 took 24 s in batches of 128, 7 s in batches of 16,
        # with the same sums to the last bit)
        for batch in faces.split(16):
            net(batch)
    finally:
        for hook in hooks:
            hook.remove()
    measured = []
    for norm in norms:
        count, total, squares = sums[id(norm)]
        mean = total / count
        measured.append((mean.float(), (squares / count - mean * mean).clamp_min(0).float()))
    return measured


def _check_against_onnx(net: EmotionNet, path: Path, card: ModelCard,
                        faces: torch.Tensor, role: str = "init_from") -> None:
    """The rebuilt network, with the file's own test-time views, gives the file's
    probabilities."""
    from emotrace.inference.classifier import onnxruntime

    try:
        session = onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types
        raise EmotraceError(f"{role} {path}: ONNX Runtime cannot load it ({error})") from None
    size = session.get_inputs()[0].shape[-1]
    faces = faces[::max(1, len(faces) // 64)][:64]  # spread over the split's classes
    if isinstance(size, int) and size != faces.shape[-1]:
        faces = nn.functional.interpolate(faces, size=(size, size), mode="bilinear",
                                          align_corners=False)
    expected = session.run(None, {session.get_inputs()[0].name: faces.numpy()})[0]
    wrapper = ExportWrapper(net, card.flip_average, card.zoom_views)
    with torch.no_grad():
        got = wrapper.eval()(faces).numpy()
    gap = float(np.abs(got - expected).max())
    if gap > MATCH_TOLERANCE:
        raise ConfigError(f"{role} {path}: the rebuilt network differs from the file by "
                          f"{gap:.2g} in probability; was it exported by emotrace from a "
                          f"{card.backbone} with this head?")


def folded_network(source: str | Path) -> tuple[EmotionNet, ModelCard]:
    """Exported single model ``source`` (a shipped name or an ``.onnx`` file with its card) read
    back into a network in eval mode, with its card: each BatchNorm adds its folded bias, so
    the network computes the file's function (without the file's flip/zoom views; checked
    through them against ONNX Runtime) and its weights are the file's, ready to average."""
    from emotrace.models import create_model

    path = source_path(str(source), role="soup")
    card = ModelCard.read(path)  # refuses a card without an input shape, naming the file
    model = _single_backbone(path, card, role="soup")
    size = card.image_size
    recipe = card.recipe or {}
    net = create_model(model, pretrained=False, head_hidden=recipe.get("head_hidden") or (),
                       dropout=recipe.get("dropout", 0.2),
                       batch_norm=bool(recipe.get("batch_norm")))
    _load_folded(net, path, model, role="soup")
    # random faces suffice to compare two functions; a seed keeps the check repeatable
    probe = torch.rand(16, 1, size, size, generator=torch.Generator().manual_seed(0))
    _check_against_onnx(net, path, card, probe, role="soup")
    return net.eval(), card


def start_from_onnx(net: EmotionNet, init_from: str, model: str, faces: torch.Tensor) -> None:
    """Load exported model ``init_from`` into ``net`` (a fresh ``model``); ``faces`` are
    un-augmented training faces at the training size, shaped ``(n, 1, H, W)`` in [0, 1]."""
    path = source_path(init_from)
    card = ModelCard.read(path)
    _check_card(path, card, model)
    norms = _load_folded(net, path, model)
    measured = measure_norm_inputs(net, [n for n, _ in norms], faces)
    with torch.no_grad():
        for (norm, bias), (mean, var) in zip(norms, measured):
            _as_shift(norm, bias, mean, var)
    _check_against_onnx(net, path, card, faces)
    net.train()
