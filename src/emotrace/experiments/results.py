"""What a finished run measured: its history statistics and, for image models, the metrics and
per-image predictions of its ONNX export on the validation and test splits (exported once, then
read from the card and the predictions file)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from emotrace.cards import ModelCard
from emotrace.evaluation.convergence import convergence_stats, read_history, windowed_stats
from emotrace.experiments.study import RunSpec
from emotrace.training.config import TrainConfig


@dataclass
class RunResult:
    spec: RunSpec
    run_dir: Path
    history: list[dict]
    params: int
    frozen_params: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # split -> evaluation summary
    predictions: dict[str, str] = field(default_factory=dict)  # split -> one digit per image
    device: str = "unknown"
    external_params: int = 0  # weights outside torch (dlib's descriptor network)
    stale: str = ""  # why the run does not match its study definition any more (a rebuilt report)

    @property
    def seed(self) -> int:
        return self.spec.seed

    def predicted(self, split: str) -> np.ndarray:
        """Per-image predicted classes on ``split`` (dataset order)."""
        return np.frombuffer(self.predictions[split].encode(), np.uint8) - ord("0")

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def stats(self) -> dict[str, float]:
        return convergence_stats(self.history)

    def windows(self, size: int) -> list[dict[str, float]]:
        return windowed_stats(self.history, size)

    @property
    def val_acc(self) -> float:
        """The accuracy this run is judged by: best epoch, or the last one when the recipe
        keeps the last weights (no checkpoint callback)."""
        return self.history[-1]["val_acc"] if self.spec.uses_last_epoch else self.stats["best_val_acc"]

    @property
    def checkpoint(self) -> str:
        return "last" if self.spec.uses_last_epoch else "best"

    @property
    def minutes(self) -> float:
        return self.history[-1]["elapsed_s"] / 60

    def test_acc(self) -> float | None:
        return self.metrics.get("test", {}).get("accuracy")

    def summary(self, window: int = 5) -> dict[str, Any]:
        return {"name": self.spec.name, "label": self.label, "seed": self.seed,
                "run_dir": str(self.run_dir), "device": self.device,
                "config": self.spec.config.to_dict(), "params": self.params,
                "frozen_params": self.frozen_params, "external_params": self.external_params,
                "checkpoint": self.checkpoint, "epochs_run": self.history[-1]["epoch"],
                "minutes": round(self.minutes, 2), "val_acc": self.val_acc, **self.stats,
                "windows": self.windows(window), "history": self.history,
                "metrics": self.metrics,
                "predictions": self.predictions}


def _dlib_file_params() -> int:
    """About how many float32 weights dlib's descriptor file holds (its size / 4): dlib does not
    expose the network's tensors to Python."""
    from emotrace.models.dlib import dlib_model_file
    return dlib_model_file().stat().st_size // 4


def _card_metrics(run_dir: Path, splits: tuple[str, ...],
                  checkpoint: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The run's export metrics and per-image predictions; exported (again) when missing or older
    than the checkpoint."""
    from emotrace.training import export_run

    card_file, predictions_file = run_dir / "model.json", run_dir / "model.predictions.json"
    source = (run_dir / f"{checkpoint}.ckpt").stat().st_mtime
    if card_file.exists() and predictions_file.exists() and card_file.stat().st_mtime >= source:
        card = ModelCard.read(card_file)
        predictions = json.loads(predictions_file.read_text())
        if card.extra.get("checkpoint") == checkpoint and all(s in predictions for s in splits):
            return card.metrics, predictions
    export_run(run_dir, evaluate_splits=splits, checkpoint=checkpoint, save_predictions=True)
    return ModelCard.read(card_file).metrics, json.loads(predictions_file.read_text())


def frozen_parameters(net: nn.Module, config: TrainConfig, epochs_run: int) -> int:
    """Parameters that never trained: the backbone when it stayed frozen for the whole run, the
    blocks below the unfrozen top ones in two-phase fine-tuning."""
    if not config.freeze_epochs:
        return 0
    backbone = sum(p.numel() for p in net.backbone.parameters())
    if epochs_run <= config.freeze_epochs:
        return backbone
    blocks = list(net.blocks)
    top = blocks[-config.unfreeze_top:] if config.unfreeze_top else blocks
    return backbone - sum(p.numel() for block in top for p in block.parameters())


def collect(spec: RunSpec, runs_root: Path, splits: tuple[str, ...] = ("val", "test")) -> RunResult:
    """Read a finished run; ``splits`` (val/test) are measured on its ONNX export (of the best
    checkpoint, or the last one for recipes that keep the last epoch)."""
    from emotrace.training.fit import load_module

    run_dir = spec.run_dir(runs_root)
    net = load_module(run_dir / "best.ckpt").net
    params = sum(p.numel() for p in net.parameters())
    history = read_history(run_dir / "history.csv")
    external = spec.config.model == "dlib_resnet"
    metrics, predictions = ({}, {}) if external or not splits else _card_metrics(
        run_dir, splits, "last" if spec.uses_last_epoch else "best")
    finished = json.loads((run_dir / "finished.json").read_text())
    frozen = frozen_parameters(net, spec.config, history[-1]["epoch"]) if not external else 0
    return RunResult(spec, run_dir, history, params - frozen, frozen, metrics, predictions,
                     finished.get("device", "unknown"),
                     _dlib_file_params() if external else 0)
