"""Ensembles: a weighted average of trained models' probabilities, exported as one ONNX model
that ships and predicts like any other (``emotrace ensemble RUN RUN ...``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emotrace.errors import ConfigError, NotFoundError
from emotrace.evaluation.convergence import read_history
from emotrace.training.export import card_io, export_onnx, write_card
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


def member_accuracy(run_dir: Path) -> float:
    """The run's best validation accuracy (the one its best checkpoint was chosen on)."""
    history = Path(run_dir) / "history.csv"
    if not history.exists():
        raise NotFoundError(f"{history} not found: {run_dir} is not a finished training run")
    return max(row["val_acc"] for row in read_history(history))


def build_ensemble(runs: Sequence[str | Path], out: str | Path,
                   weights: str | Sequence[float] = "rank", name: str | None = None,
                   evaluate_splits: Sequence[str] = ("val",), command: str | None = None) -> Path:
    """Export the ensemble of ``runs`` (training run folders) to ``out`` (.onnx) with its card:
    members, their validation accuracies and weights, and the ensemble's metrics on
    ``evaluate_splits`` measured on the exported file."""
    run_dirs = [Path(r) for r in runs]
    if len(run_dirs) < 2:
        raise ConfigError("an ensemble needs at least two trained runs")
    modules = [load_module(d / "best.ckpt") for d in run_dirs]
    configs = [m.config for m in modules]
    if any(c.model == "dlib_resnet" for c in configs):
        raise ConfigError("dlib_resnet runs take dlib descriptors, not faces: they cannot join an "
                         "exported ensemble")
    if len({c.scaling for c in configs}) > 1:
        raise ConfigError("members use different input scaling (fixed / minmax); ensemble runs "
                         "trained with the same scaling")
    accuracies = [member_accuracy(d) for d in run_dirs]
    w = ensemble_weights(weights, accuracies)
    size = max(c.image_size for c in configs)
    net = EnsembleNet([m.net for m in modules], [c.image_size for c in configs], w)
    out = Path(out)
    export_onnx(net.eval(), out, size, flip_average=False)
    card: dict[str, Any] = {
        "name": name or out.stem,
        "format": "onnx",
        **card_io(size, configs[0].scaling),
        "flip_average": False,
        "backbone": "ensemble",
        "data": configs[0].data,
        "ensemble": {
            "weighting": weights if isinstance(weights, str) else "user",
            "members": [{"run": str(d), "backbone": c.model, "pretrained": c.pretrained,
                         "image_size": c.image_size, "val_acc": round(a, 4),
                         "weight": round(float(x), 4)}
                        for d, c, a, x in zip(run_dirs, configs, accuracies, w)],
        },
        "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "export_command": command,
        "metrics": {},
    }
    return write_card(out, card, configs[0].data, evaluate_splits)
