"""Figures: confusion matrix and learning curves (matplotlib, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.ticker import MaxNLocator

from emotrace.data.labels import EMOTIONS
from emotrace.utils import new_figure, save_figure


def _subplots(*grid, figsize, **kwargs):
    """pyplot.subplots without pyplot: the figure never touches the user's backend."""
    layout = kwargs.pop("layout", None)
    figure = new_figure(figsize=figsize, layout=layout)
    return figure, figure.subplots(*grid, **kwargs)


def plot_confusion(confusion: np.ndarray, path: str | Path, title: str = "",
                   classes: tuple[str, ...] = EMOTIONS) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal) annotated with % and counts.

    Args:
        confusion: ``C[i, j]`` counts (true class ``i`` predicted as ``j``).
        path: the PNG to write (atomically).
        title: the figure's title (a default when empty).
        classes: the class names, in the matrix's order.

    Returns:
        The written file.

    Example:
        >>> import tempfile
        >>> out = plot_confusion(np.eye(7, dtype=int) * 10, f"{tempfile.mkdtemp()}/confusion.png")
        >>> out.name
        'confusion.png'
    """
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


def plot_learning_curves(history: list[dict], path: str | Path, title: str = "",
                         augmented: bool = True, baseline: float | None = None) -> Path:
    """Loss and accuracy per epoch: the optimised training values (``augmented``: on augmented
    images), the training split measured like validation when the run did, and validation;
    ``baseline``: the majority-class accuracy as a horizontal line.

    Args:
        history: rows of a run's ``history.csv``
            (:func:`~emotrace.evaluation.convergence.read_history`).
        path: the PNG to write (atomically).
        title: the figure's title (a default when empty).
        augmented: whether the running training values were measured on augmented images
            (only changes the legend).
        baseline: the majority-class accuracy, or ``None`` for no line.

    Returns:
        The written file.

    Example:
        >>> import tempfile
        >>> history = [{"epoch": e, "train_acc": 0.3 + 0.1 * e, "train_loss": 1.8 - 0.2 * e,
        ...             "val_acc": 0.3 + 0.08 * e, "val_loss": 1.8 - 0.15 * e} for e in range(1, 4)]
        >>> plot_learning_curves(history, f"{tempfile.mkdtemp()}/curves.png", baseline=0.25).suffix
        '.png'
    """
    figure, (loss_axes, acc_axes) = _subplots(1, 2, figsize=(11, 4))
    running = "train (augmented, running)" if augmented else "train (running)"
    for axes, key in ((loss_axes, "loss"), (acc_axes, "acc")):
        series = [(f"train_{key}", running, "o-"), (f"train_eval_{key}",
                   "train (measured like validation)", "s--"), (f"val_{key}", "validation", "^-")]
        for column, label, style in series:
            points = [(r["epoch"], r[column]) for r in history
                      if column in r and not np.isnan(r[column])]
            if points:
                axes.plot(*zip(*points), style, ms=4, label=label)
        if key == "acc" and baseline is not None:
            axes.axhline(baseline, color="black", ls=":", lw=1,
                         label=f"majority class ({baseline:.1%})")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("accuracy" if key == "acc" else "loss")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
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
    Grad-CAM overlay for the explained class, and the probability of every class as bars.

    Args:
        faces: ``(N, S, S)`` model inputs in [0, 1].
        heatmaps: ``(N, S, S)`` Grad-CAM maps in [0, 1].
        probs: ``(N, 7)`` probabilities.
        targets: ``(N,)`` the explained class of each face.
        path: the PNG to write (atomically).
        title: the figure's title (none when empty).
        classes: the class names.
        captions: one title per face (default ``face 1``, ``face 2``...).

    Returns:
        The written file.

    Example:
        >>> import tempfile
        >>> from emotrace.evaluation.gradcam import GradCAM
        >>> from emotrace.data import read_face_image
        >>> faces = [read_face_image("../shared/testdata/face.jpg", 96)]
        >>> explanation = GradCAM("fast").explain(faces)
        >>> inputs = np.stack(faces) / 255.0
        >>> plot_explanations(inputs, explanation.heatmaps, explanation.probs, explanation.targets,
        ...                   f"{tempfile.mkdtemp()}/explain.png").name
        'explain.png'
    """
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
    """Each class's mean face beside its mean Grad-CAM (one shared colour scale, with a bar):
    where the model looks per emotion.

    Args:
        heatmaps: ``(7, S, S)`` mean Grad-CAM per class
            (:func:`~emotrace.evaluation.gradcam.class_mean_heatmaps`).
        mean_faces: ``(7, S, S)`` mean face per class, in [0, 1].
        path: the PNG to write (atomically).
        title: the figure's title (a default when empty).
        classes: the class names.

    Returns:
        The written file.

    Example:
        >>> import tempfile
        >>> maps, faces = np.random.default_rng(0).random((2, 7, 96, 96))
        >>> plot_class_heatmaps(maps, faces, f"{tempfile.mkdtemp()}/classes.png").name
        'classes.png'
    """
    figure, grid = _subplots(2, len(classes), figsize=(2.1 * len(classes) + 1.2, 4.8),
                             squeeze=False, layout="constrained")
    peak = float(heatmaps.max()) or 1.0
    image = None
    for column, (heatmap, face, name) in enumerate(zip(heatmaps, mean_faces, classes)):
        grid[0, column].imshow(face, cmap="gray", vmin=0, vmax=1)
        grid[0, column].set_title(name)
        grid[1, column].imshow(face, cmap="gray", vmin=0, vmax=1)
        image = grid[1, column].imshow(heatmap, cmap="jet", alpha=0.5, vmin=0, vmax=peak)
        for axes in grid[:, column]:
            axes.axis("off")
    grid[0, 0].text(-0.08, 0.5, "mean face", transform=grid[0, 0].transAxes, rotation=90,
                    ha="right", va="center")
    grid[1, 0].text(-0.08, 0.5, "mean Grad-CAM", transform=grid[1, 0].transAxes, rotation=90,
                    ha="right", va="center")
    figure.colorbar(image, ax=grid[1, :].tolist(), fraction=0.02,
                    label="mean heatmap (each face's map scaled to peak 1)")
    figure.suptitle(title or "mean Grad-CAM per true class")
    return save_figure(figure, path)


MARKERS = "osD^vP*X<>"


def _mean_curve(histories: list[list[dict]], key: str) -> tuple[list[int], np.ndarray,
                                                                  np.ndarray, np.ndarray]:
    """Epochs all seeds reached, and the mean, min and max of ``key`` over seeds per epoch."""
    epochs = sorted(set.intersection(*({r["epoch"] for r in h} for h in histories)))
    values = np.array([[next(r[key] for r in h if r["epoch"] == e) for e in epochs]
                       for h in histories])
    return epochs, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def plot_curve_comparison(histories: dict[str, list[dict] | list[list[dict]]], path: str | Path,
                          keys: tuple[str, ...] = ("val_acc", "val_loss"), title: str = "",
                          dashed: tuple[str, ...] = (), groups: dict[str, str] | None = None,
                          baseline: float | None = None) -> Path:
    """Validation curves of several runs on shared axes (one panel per key). A run given as a
    list of histories (seeds) is drawn as their mean with a min–max band. Each run has its own
    marker, so identical curves stay visible; labels in ``dashed`` are dashed (e.g. random-init
    twins) and labels in the same ``groups`` entry share a colour. ``baseline``: majority-class
    accuracy line. The legend sits below the panels, never over a curve.

    Args:
        histories: label -> one run's history rows, or a list of them (one per seed).
        path: the PNG to write (atomically).
        keys: the history columns to draw, one panel each.
        title: the figure's title.
        dashed: labels drawn dashed.
        groups: label -> group name; labels of one group share a colour.
        baseline: the majority-class accuracy, drawn on accuracy panels, or ``None``.

    Returns:
        The written file.

    Example:
        >>> import tempfile
        >>> run = lambda top: [{"epoch": e, "val_acc": top * e / 3, "val_loss": 2 - e / 3}
        ...                    for e in range(1, 4)]
        >>> plot_curve_comparison({"pretrained": [run(0.6), run(0.58)], "random": run(0.4)},
        ...                       f"{tempfile.mkdtemp()}/compare.png", dashed=("random",)).name
        'compare.png'
    """
    figure, grid = _subplots(1, len(keys), figsize=(6 * len(keys), 4.6), squeeze=False,
                             layout="constrained")
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    group_of = groups or {label: label for label in histories}
    color_of = {group: colors[i % len(colors)]
                for i, group in enumerate(dict.fromkeys(group_of[label] for label in histories))}
    for axes, key in zip(grid[0], keys):
        for i, (label, runs) in enumerate(histories.items()):
            runs = [runs] if runs and isinstance(runs[0], dict) else runs
            epochs, mean, low, high = _mean_curve(runs, key)
            color = color_of[group_of[label]]
            axes.plot(epochs, mean, "--" if label in dashed else "-", marker=MARKERS[i % 10],
                      ms=5 - 0.3 * (i % 4), mfc="none", label=label, color=color)
            if len(runs) > 1:
                axes.fill_between(epochs, low, high, color=color, alpha=0.12, lw=0)
        if baseline is not None and key.endswith("acc"):
            axes.axhline(baseline, color="black", ls=":", lw=1,
                         label=f"majority class ({baseline:.1%})")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(key.replace("_", " ").replace("acc", "accuracy"))
        axes.grid(alpha=0.3)
    handles, labels = grid[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)


def plot_bars(values: dict[str, float], path: str | Path, title: str = "",
              xlabel: str = "accuracy", highlight: str | None = None,
              errors: dict[str, float] | None = None, baseline: float | None = None) -> Path:
    """Horizontal bars from 0 with their values (and ``errors`` as ± bars), e.g. test accuracy
    of members and ensembles; ``baseline``: the majority-class line.

    Args:
        values: label -> value in [0, 1], drawn top to bottom in this order.
        path: the PNG to write (atomically).
        title: the figure's title.
        xlabel: the axis label.
        highlight: a label whose bar is drawn red.
        errors: label -> half-width of its error bar.
        baseline: the majority-class accuracy, or ``None`` for no line.

    Returns:
        The written file.

    Example:
        >>> import tempfile
        >>> plot_bars({"member a": 0.688, "ensemble": 0.705}, f"{tempfile.mkdtemp()}/bars.png",
        ...           highlight="ensemble", baseline=0.25).name
        'bars.png'
    """
    names = list(values)
    figure, axes = _subplots(figsize=(8, 0.5 * len(names) + 1.4))
    spread = [float(np.nan_to_num((errors or {}).get(n, 0.0))) for n in names]
    bars = axes.barh(range(len(names)), [values[n] for n in names], xerr=spread, color="#9ab",
                     capsize=3)
    if highlight in values:
        bars[names.index(highlight)].set_color("#d62728")
    for i, name in enumerate(names):
        axes.text(values[name] + spread[i] + 0.005, i, f"{values[name]:.1%}", va="center",
                  fontsize=9)
    if baseline is not None:
        axes.axvline(baseline, color="black", ls=":", lw=1)
        axes.text(baseline, len(names) - 0.4, f" majority class {baseline:.1%}", fontsize=8)
    axes.set_yticks(range(len(names)), names)
    axes.invert_yaxis()
    axes.set_xlim(0, min(1.0, max(values.values()) * 1.15))
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)
