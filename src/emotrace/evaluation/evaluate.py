"""Evaluate a classifier on a labelled dataset: metrics, confusion matrix, written reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotrace.data import DatasetError, canonical_split, load_dataset, select_split, split_dataset
from emotrace.evaluation.metrics import confusion_matrix, metrics_from_confusion
from emotrace.evaluation.plots import plot_confusion
from emotrace.utils import atomic_path, progress


@dataclass
class Evaluation:
    """Labels, predictions and probabilities of one evaluation, with its metrics."""

    labels: np.ndarray
    probs: np.ndarray
    dataset: str
    split: str
    #: ``(file, reason)`` of the images that could not be read and were left out
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def summary(self) -> dict:
        """``{"n", "accuracy", "macro_recall", "macro_f1", "per_class", "confusion", "skipped",
        "skipped_files"}`` (the first 10 unreadable files, with the reason)."""
        return {**metrics_from_confusion(confusion_matrix(self.labels, self.predictions)),
                "skipped": len(self.skipped),
                "skipped_files": [{"file": f, "reason": r} for f, r in self.skipped[:10]]}

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``metrics.json`` (with dataset and split), ``confusion.json`` and ``confusion.png``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = self.summary()
        files = {"metrics": out_dir / "metrics.json", "confusion_json": out_dir / "confusion.json",
                 "confusion_png": out_dir / "confusion.png"}
        with atomic_path(files["metrics"]) as tmp:
            tmp.write_text(json.dumps({"dataset": self.dataset, "split": self.split, **summary},
                                      indent=2))
        with atomic_path(files["confusion_json"]) as tmp:
            tmp.write_text(json.dumps({"classes": list(summary["per_class"]),
                                       "confusion": summary["confusion"]}))
        plot_confusion(np.array(summary["confusion"]), files["confusion_png"],
                       title=f"{Path(self.dataset).name} {self.split}: "
                             f"accuracy {summary['accuracy']:.1%}, n={summary['n']}")
        return files


def evaluate(classifier, data: str | Path, split: str | None = None,
             batch_size: int = 256, strict: bool = False, scheme: str = "official",
             split_seed: int = 42) -> Evaluation:
    """Classify every face of ``data`` (``split``: train/val/test/all; None = all) as whole-image
    face crops, and return an :class:`Evaluation`. ``classifier`` is an
    :class:`~emotrace.inference.EmotionClassifier` (anything with ``predict_faces``). Unreadable
    images are skipped and listed in ``Evaluation.skipped`` (``strict``: fail on the first).
    ``scheme``: ``official`` splits, or ``stratified`` (70/10/20 with ``split_seed``) for models
    trained on that split."""
    if scheme == "official" or split in (None, "all"):
        faces = select_split(load_dataset(data), split)
    else:
        faces = split_dataset(load_dataset(data), scheme, split_seed)[canonical_split(split)]
    if strict and faces.skipped:  # only images of the chosen split count
        file, reason, _ = faces.skipped[0]
        raise DatasetError(f"{file}: {reason}; remove it from the dataset or replace it "
                           "(or leave out --strict to skip unreadable images)")
    probs = np.concatenate([
        classifier.predict_faces(faces.images[start:start + batch_size])
        for start in progress(range(0, len(faces), batch_size), desc="evaluating",
                              total=-(-len(faces) // batch_size), unit="batch")])
    return Evaluation(faces.labels, probs, str(data), split or "all",
                      [(file, reason) for file, reason, _ in faces.skipped])
