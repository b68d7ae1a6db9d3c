"""Evaluate a classifier on a labelled dataset: metrics, confusion matrix, written reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotrace.cards import ModelCard
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


#: Input pixels the networks see in one batch (faces x network evaluations x input pixels).
#: onnxruntime holds every activation of a batch at once, so this, not the face count, bounds the
#: memory: 256 faces a batch took 1.0 GB with ``fast`` and 6.4 GB with ``accurate`` (16 network
#: evaluations a face); this budget keeps both under 0.5 GB whatever the dataset's size, at the
#: same speed (``benchmarks/memory.py``, ``benchmarks/results/memory.txt``).
PIXELS_PER_BATCH = 2 ** 19
MAX_BATCH = 256


def face_pixels(card: ModelCard) -> int:
    """Input pixels a model's networks process for one face: each member's input size squared,
    twice with flip averaging, once more for each zoom view.

    Example:
        >>> face_pixels(ModelCard(name="m", image_size=96))
        9216
    """
    return card.views * sum(size ** 2 for size in card.member_sizes)


def batch_size_for(classifier) -> int:
    """Faces per batch for ``classifier``: :data:`PIXELS_PER_BATCH` over its
    :func:`face_pixels` (from its model card), between 1 and :data:`MAX_BATCH`."""
    card = getattr(classifier, "card", None)
    if not isinstance(card, ModelCard):
        return 32
    return max(1, min(MAX_BATCH, PIXELS_PER_BATCH // face_pixels(card)))


def evaluate(classifier, data: str | Path, split: str | None = None,
             batch_size: int | None = None, strict: bool = False, scheme: str = "official",
             split_seed: int = 42) -> Evaluation:
    """Classify every face of ``data`` (``split``: train/val/test/all; None = all) as whole-image
    face crops, and return an :class:`Evaluation`. ``classifier`` is an
    :class:`~emotrace.inference.EmotionClassifier` (anything with ``predict_faces``). Unreadable
    images are skipped and listed in ``Evaluation.skipped`` (``strict``: fail on the first).
    ``scheme``: ``official`` splits, or ``stratified`` (70/10/20 with ``split_seed``) for models
    trained on that split. ``batch_size`` None: bounded by the model's memory
    (:func:`batch_size_for`)."""
    if split is not None:
        canonical_split(split)  # a misspelt split is refused before the dataset is read (13 s)
    batch_size = batch_size or batch_size_for(classifier)
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
