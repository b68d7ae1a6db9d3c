"""Figures: confusion matrix and learning curves (matplotlib, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from emotrace.data.labels import EMOTIONS
from emotrace.utils import new_figure, save_figure


def _subplots(*grid, figsize, **kwargs):
    """pyplot.subplots without pyplot: the figure never touches the user's backend."""
    layout = kwargs.pop("layout", None)
    figure = new_figure(figsize=figsize, layout=layout)
    return figure, figure.subplots(*grid, **kwargs)


def plot_confusion(confusion: np.ndarray, path: str | Path, title: str = "",
                   classes: tuple[str, ...] = EMOTIONS) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal) annotated with % and counts."""
    confusion = np.asarray(confusion)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, axes = _subplots(figsize=(7, 6))
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
    figure, (loss_axes, acc_axes) = _subplots(1, 2, figsize=(11, 4))
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


def _overlay(axes, face: np.ndarray, heatmap: np.ndarray) -> None:
    axes.imshow(face, cmap="gray", vmin=0, vmax=1)
    axes.imshow(heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes.axis("off")


def plot_explanations(faces: np.ndarray, heatmaps: np.ndarray, probs: np.ndarray,
                      targets: np.ndarray, path: str | Path, title: str = "",
                      classes: tuple[str, ...] = EMOTIONS,
                      captions: list[str] | None = None) -> Path:
    """One row per face: the crop the model saw (``captions`` above it, e.g. the true class), its
    Grad-CAM overlay for the explained class, and the probability of every class as bars."""
    rows = len(faces)
    figure, grid = _subplots(rows, 3, figsize=(10, 2.8 * rows), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for row, (face, heatmap, p, target) in enumerate(zip(faces, heatmaps, probs, targets)):
        grid[row, 0].imshow(face, cmap="gray", vmin=0, vmax=1)
        grid[row, 0].axis("off")
        grid[row, 0].set_title(captions[row] if captions else f"face {row + 1}")
        _overlay(grid[row, 1], face, heatmap)
        grid[row, 1].set_title(f"Grad-CAM: {classes[target]}")
        bars = grid[row, 2].barh(range(len(classes)), p, color="#9ab")
        bars[int(np.argmax(p))].set_color("#d62728")
        grid[row, 2].set_yticks(range(len(classes)), classes)
        grid[row, 2].invert_yaxis()
        grid[row, 2].set_xlim(0, 1)
        for i, value in enumerate(p):
            grid[row, 2].text(min(value + 0.02, 0.85), i, f"{value:.0%}", va="center", fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_class_heatmaps(heatmaps: np.ndarray, mean_faces: np.ndarray, path: str | Path,
                        title: str = "", classes: tuple[str, ...] = EMOTIONS) -> Path:
    """The mean Grad-CAM of each class over its mean face: where the model looks per emotion."""
    figure, grid = _subplots(1, len(classes), figsize=(2.2 * len(classes), 2.8))
    for axes, heatmap, face, name in zip(grid, heatmaps, mean_faces, classes):
        peak = heatmap.max() or 1.0
        _overlay(axes, face, heatmap / peak)
        axes.set_title(name)
    figure.suptitle(title or "mean Grad-CAM per true class")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_curve_comparison(histories: dict[str, list[dict]], path: str | Path,
                          keys: tuple[str, ...] = ("val_acc", "val_loss"), title: str = "",
                          dashed: tuple[str, ...] = (),
                          groups: dict[str, str] | None = None) -> Path:
    """Validation curves of several runs on shared axes (one panel per key); labels listed in
    ``dashed`` are drawn dashed (e.g. the random-init twin of a pretrained run), and labels in the
    same ``groups`` entry share a colour (e.g. one backbone)."""
    figure, grid = _subplots(1, len(keys), figsize=(6 * len(keys), 4.2), squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    group_of = groups or {label: label for label in histories}
    color_of = {group: colors[i % len(colors)]
                for i, group in enumerate(dict.fromkeys(group_of[label] for label in histories))}
    for axes, key in zip(grid[0], keys):
        for label, history in histories.items():
            axes.plot([r["epoch"] for r in history], [r[key] for r in history],
                      "--" if label in dashed else "-", marker="o", ms=3, label=label,
                      color=color_of[group_of[label]])
        axes.set_xlabel("epoch")
        axes.set_ylabel(key.replace("_", " ").replace("acc", "accuracy"))
        axes.grid(alpha=0.3)
    grid[0][0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_bars(values: dict[str, float], path: str | Path, title: str = "",
              xlabel: str = "accuracy", highlight: str | None = None) -> Path:
    """Horizontal bars with their values, e.g. test accuracy of members and ensembles."""
    names = list(values)
    figure, axes = _subplots(figsize=(8, 0.5 * len(names) + 1.2))
    bars = axes.barh(range(len(names)), [values[n] for n in names], color="#9ab")
    if highlight in values:
        bars[names.index(highlight)].set_color("#d62728")
    for i, name in enumerate(names):
        axes.text(values[name] + 0.003, i, f"{values[name]:.1%}", va="center", fontsize=9)
    axes.set_yticks(range(len(names)), names)
    axes.invert_yaxis()
    axes.set_xlim(min(values.values()) * 0.9, max(values.values()) * 1.06)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)
