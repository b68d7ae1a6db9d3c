"""Ensembles: a weighted average of trained models' probabilities, exported as one ONNX model
that ships and predicts like any other (``emotrace ensemble MEMBER MEMBER ...``). A member is a
training run folder or an exported emotrace ONNX model (converted back to torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emotrace.errors import ConfigError, NotFoundError
from emotrace.evaluation.convergence import read_history, trained_epochs
from emotrace.models.onnx_weights import weights_as_initializers
from emotrace.cards import ModelCard
from emotrace.training.export import ExportOptions, export_onnx, model_with_card, write_card
from emotrace.training.fit import load_module

WEIGHT_SCHEMES = ("rank", "equal")


def rank_weights(accuracies: Sequence[float]) -> np.ndarray:
    """``w_i = R(A_i) / sum_j R(A_j)``: the weakest member has rank 1, the best rank n; tied
    accuracies share their mean rank."""
    values = np.asarray(accuracies, dtype=float)
    if values.size == 0:
        raise ConfigError("an ensemble needs at least one member")
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # ties: mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks / ranks.sum()


def ensemble_weights(scheme: str | Sequence[float], accuracies: Sequence[float]) -> np.ndarray:
    """Weights for ``scheme``: ``"rank"``, ``"equal"`` or explicit numbers (normalised)."""
    if isinstance(scheme, str):
        if scheme == "rank":
            return rank_weights(accuracies)
        if scheme == "equal":
            return np.full(len(accuracies), 1.0 / len(accuracies))
        raise ConfigError(f"unknown weighting {scheme!r}; use rank, equal or a list of numbers")
    weights = np.asarray(scheme, dtype=float)
    if len(weights) != len(accuracies):
        raise ConfigError(f"{len(weights)} weights given for {len(accuracies)} members")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError("ensemble weights must be non-negative and not all zero")
    return weights / weights.sum()


class EnsembleNet(nn.Module):
    """Members' softmax probabilities, weighted and summed; returns their log so the export's
    softmax gives back exactly the averaged probabilities. Members trained at another input size
    see the face resized to theirs."""

    def __init__(self, members: Sequence[nn.Module], sizes: Sequence[int],
                 weights: Sequence[float]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.sizes = [int(s) for s in sizes]
        self.register_buffer("weights", torch.tensor(list(weights), dtype=torch.float32))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        probs = 0
        for index, (member, size) in enumerate(zip(self.members, self.sizes)):
            x = faces if faces.shape[-1] == size else F.interpolate(
                faces, size=(size, size), mode="bilinear", align_corners=False)
            probs = probs + self.weights[index] * member(x).softmax(dim=1)
        # + eps rather than clamp: a Clip node with a constant bound trips onnx2torch (Grad-CAM)
        return torch.log(probs + 1e-12)


class ExportedMember(nn.Module):
    """An exported emotrace model (ONNX, converted to torch) as an ensemble member: it returns
    probabilities, so its log stands in for logits (their softmax gives the probabilities back)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            from onnx2torch import convert
        except ImportError as error:
            raise ImportError(f"ONNX members need onnx2torch: pip install 'emotrace[train]' "
                              f"({error})") from None
        import onnx

        model = broadcast_instead_of_expand(onnx.load(str(path)))
        self.net = convert(weights_as_initializers(model)).eval()

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.log(self.net(faces) + 1e-12)


def broadcast_instead_of_expand(model: Any) -> Any:
    """Drop the grey-to-3-channel ``Expand`` of the input from an emotrace ONNX graph (files
    exported before the preprocessing broadcast instead): the ImageNet normalisation that follows
    broadcasts the same way. onnx2torch turns that Expand's shape arithmetic into nodes it cannot
    convert a second time, which broke Grad-CAM on ensembles of exported members."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    expands = {n.output[0]: n.input[0] for n in graph.node
               if n.op_type == "Expand" and n.input[0] in inputs}
    if not expands:
        return model
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in expands:
                node.input[index] = expands[name]
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):  # ONNX nodes are in topological order
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    return model


@dataclass
class Member:
    """One ensemble member: its network, input size and scaling, validation accuracy (the one it
    was selected on) and what the card records of it."""

    net: nn.Module
    image_size: int
    scaling: str
    val_acc: float
    record: dict[str, Any]
    data: str | None


def load_member(source: str | Path) -> Member:
    """A training run folder (its best checkpoint) or an exported ``.onnx`` model with its card."""
    source = Path(source)
    if source.suffix == ".onnx":
        if not source.is_file():
            raise NotFoundError(f"{source} not found")
        card = ModelCard.read(source)
        if card.val_accuracy is None:
            raise ConfigError(f"{source}: its card has no validation accuracy (metrics.val); "
                              "export it with 'emotrace export' first")
        return Member(ExportedMember(source), card.image_size, card.scaling, card.val_accuracy,
                      {"model": card.name, "file": str(source), "backbone": card.backbone,
                       "pretrained": card.pretrained, "image_size": card.image_size},
                      card.data)
    module = load_module(source / "best.ckpt")
    config = module.config
    if config.model == "dlib_resnet":
        raise ConfigError("dlib_resnet runs take dlib descriptors, not faces: they cannot join an "
                          "exported ensemble")
    return Member(module.net, config.image_size, config.scaling, member_accuracy(source),
                  {"run": str(source), "backbone": config.model, "pretrained": config.pretrained,
                   "image_size": config.image_size}, config.data)


def member_accuracy(run_dir: Path) -> float:
    """The run's best validation accuracy (the one its best checkpoint was chosen on)."""
    history = Path(run_dir) / "history.csv"
    if not history.exists():
        raise NotFoundError(f"{history} not found: {run_dir} is not a finished training run")
    return max(row["val_acc"] for row in trained_epochs(read_history(history)))


def build_ensemble(runs: Sequence[str | Path], out: str | Path,
                   weights: str | Sequence[float] = "rank", options: ExportOptions | None = None,
                   **option_fields: Any) -> Path:
    """Export the weighted ensemble of ``runs`` as one ONNX model with its card.

    The card records the members, their validation accuracies and weights, and the ensemble's
    metrics on ``options.evaluate_splits`` measured on the exported file.

    Args:
        runs: training run folders or exported ``.onnx`` models (two or more).
        out: the ``.onnx`` file to write; the card goes beside it.
        weights: ``rank``, ``equal`` or one number per member.
        options: how to export (:class:`ExportOptions`); or give its fields as keywords
            (``flip_average=True, zooms=(0.92,)``). ``options.data`` defaults to the members'
            training data.

    Returns:
        The exported model's path.

    Example:
        >>> build_ensemble(["fast.onnx", "other.onnx"], "ens.onnx", weights="equal",
        ...                flip_average=True)  # doctest: +SKIP
    """
    options = options or ExportOptions(**option_fields)
    if len(runs) < 2:
        raise ConfigError("an ensemble needs at least two members")
    members = [load_member(r) for r in runs]
    if len({m.scaling for m in members}) > 1:
        raise ConfigError("members use different input scaling (fixed / minmax); ensemble models "
                          "trained with the same scaling")
    w = ensemble_weights(weights, [m.val_acc for m in members])
    size = max(m.image_size for m in members)
    net = EnsembleNet([m.net for m in members], [m.image_size for m in members], w)
    out = Path(out)
    with model_with_card(out) as staged:
        export_onnx(net.eval(), staged, size, flip_average=options.flip_average,
                    zooms=options.zooms, half_weights=options.half_weights)
        card = _ensemble_card(members, w, weights, out, size, options)
        write_card(staged, card, card.data, options.evaluate_splits,
                   predictions=options.predictions)
    return out


def _ensemble_card(members: Sequence[Member], w: np.ndarray, weights: str | Sequence[float],
                   out: Path, size: int, options: ExportOptions) -> ModelCard:
    return ModelCard.new(
        options.name or out.stem, size, members[0].scaling, options.flip_average,
        options.command, zoom_views=list(options.zooms),
        weights_storage="float16, computed in float32" if options.half_weights else "float32",
        backbone="ensemble", data=options.data or next((m.data for m in members if m.data), None),
        ensemble={"weighting": weights if isinstance(weights, str) else "user",
                  "members": [{**m.record, "val_acc": round(m.val_acc, 4),
                               "weight": round(float(x), 4)} for m, x in zip(members, w)]})
