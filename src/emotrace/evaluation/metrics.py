"""Classification metrics from a confusion matrix (numpy only: runs on the plain install)."""

from __future__ import annotations

import numpy as np

from emotrace.data.labels import EMOTIONS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 7) -> np.ndarray:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j``.

    Args:
        y_true: true class of each sample.
        y_pred: predicted class of each sample.
        num_classes: size of the matrix.

    Returns:
        ``(num_classes, num_classes)`` int64 counts.

    Example:
        >>> confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), num_classes=3).tolist()
        [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    """
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def metrics_from_confusion(confusion: np.ndarray,
                           classes: tuple[str, ...] = EMOTIONS) -> dict:
    """Accuracy, macro recall (mean over classes present), per-class precision/recall/F1/support.

    The JSON shape is public: ``{"n", "accuracy", "macro_recall", "macro_f1", "per_class",
    "confusion"}``.

    Args:
        confusion: ``C[i, j]`` counts, as :func:`confusion_matrix` returns them.
        classes: the class names, in the matrix's order.

    Returns:
        ``n``, ``accuracy``, ``macro_recall`` and ``macro_f1`` (means over the classes that have
        samples), ``per_class`` (name -> precision, recall, f1, support) and ``confusion`` (the
        matrix as lists).

    Example:
        >>> confusion = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), num_classes=3)
        >>> metrics = metrics_from_confusion(confusion, classes=("a", "b", "c"))
        >>> round(metrics["accuracy"], 3), metrics["macro_recall"], metrics["per_class"]["a"]["recall"]
        (0.667, 0.75, 0.5)
    """
    confusion = np.asarray(confusion, np.int64)
    correct = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    recall = _safe_divide(correct, support)
    precision = _safe_divide(correct, predicted)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = support > 0
    n = int(confusion.sum())
    return {
        "n": n,
        "accuracy": float(correct.sum() / n) if n else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(classes)},
        "confusion": confusion.tolist(),
    }
