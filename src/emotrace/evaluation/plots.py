"""Figures: confusion matrix and learning curves (matplotlib, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emotrace.data.labels import EMOTIONS  # noqa: E402
from emotrace.utils import save_figure  # noqa: E402


def plot_confusion(confusion: np.ndarray, path: str | Path, title: str = "",
                   classes: tuple[str, ...] = EMOTIONS) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal) annotated with % and counts."""
    confusion = np.asarray(confusion)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(7, 6))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            axes.text(j, i, f"{rates[i, j]:.0%}\n{confusion[i, j]}", ha="center", va="center",
                      fontsize=8, color="white" if rates[i, j] > 0.5 else "black")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or "confusion matrix (row-normalised)")
    figure.colorbar(image, ax=axes, fraction=0.046)
    return save_figure(figure, path)


def plot_learning_curves(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs validation, side by side."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for axes, key in ((loss_axes, "loss"), (acc_axes, "acc")):
        # train metrics are those optimised: on augmented images, with label smoothing if any
        axes.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train (augmented)")
        axes.plot(epochs, [r[f"val_{key}"] for r in history], "o-", label="validation")
        axes.set_xlabel("epoch")
        axes.set_ylabel("accuracy" if key == "acc" else "loss")
        axes.grid(alpha=0.3)
        axes.legend()
    phase_two = [r["epoch"] for r in history if r.get("phase") == 2]
    if phase_two:
        for axes in (loss_axes, acc_axes):
            axes.axvline(phase_two[0] - 0.5, color="grey", ls="--", lw=1)
    figure.suptitle(title or "learning curves")
    return save_figure(figure, path)
