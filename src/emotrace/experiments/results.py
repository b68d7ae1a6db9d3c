"""What a finished run measured: its history statistics and, for image models, the metrics of
its ONNX export on the validation and test splits (exported once, then read from the card)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotrace.evaluation.convergence import convergence_stats, read_history, windowed_stats
from emotrace.experiments.study import RunSpec


@dataclass
class RunResult:
    spec: RunSpec
    run_dir: Path
    history: list[dict]
    params: int
    frozen_params: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # split -> evaluation summary

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
    def minutes(self) -> float:
        return self.history[-1]["elapsed_s"] / 60

    def test_acc(self) -> float | None:
        return self.metrics.get("test", {}).get("accuracy")

    def summary(self, window: int = 5) -> dict[str, Any]:
        return {"name": self.spec.name, "label": self.label, "run_dir": str(self.run_dir),
                "config": self.spec.config.to_dict(), "params": self.params,
                "frozen_params": self.frozen_params, "epochs_run": len(self.history),
                "minutes": round(self.minutes, 2), "val_acc": self.val_acc, **self.stats,
                "windows": self.windows(window), "history": self.history,
                "metrics": self.metrics}


def _dlib_file_params() -> int:
    """About how many float32 weights dlib's descriptor file holds (its size / 4): dlib does not
    expose the network's tensors to Python."""
    from emotrace.models.dlib import dlib_model_file
    return dlib_model_file().stat().st_size // 4


def _card_metrics(run_dir: Path, splits: tuple[str, ...]) -> dict[str, Any]:
    from emotrace.training import export_run

    card_file = run_dir / "model.json"
    fresh = card_file.exists() and card_file.stat().st_mtime >= (run_dir / "best.ckpt").stat().st_mtime
    if fresh:
        metrics = json.loads(card_file.read_text()).get("metrics", {})
        if all(split in metrics for split in splits):
            return metrics
    export_run(run_dir, evaluate_splits=splits)
    return json.loads(card_file.read_text())["metrics"]


def collect(spec: RunSpec, runs_root: Path, splits: tuple[str, ...] = ()) -> RunResult:
    """Read a finished run; ``splits`` (val/test) are measured on its ONNX export."""
    from emotrace.training.fit import load_module

    run_dir = spec.run_dir(runs_root)
    net = load_module(run_dir / "best.ckpt").net
    params = sum(p.numel() for p in net.parameters())
    external = spec.config.model == "dlib_resnet"
    metrics = {} if external or not splits else _card_metrics(run_dir, splits)
    return RunResult(spec, run_dir, read_history(run_dir / "history.csv"), params,
                     _dlib_file_params() if external else 0, metrics)
