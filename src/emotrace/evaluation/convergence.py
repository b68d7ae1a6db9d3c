"""Learning-curve statistics of the papers: initial accuracy/loss, mean convergence rate (MCR)
and mean overfitting rate (MOFR), overall and per window of n epochs.

The seed papers' definitions, with Metric_0 the value before the first epoch (the epoch-0 row of
``history.csv``) and a window of epochs i = a+1 .. a+n:

    MCR  = (1/n) Σ_i (Metric_i − Metric_{i−1})                        on the training metric
    MOFR = (1/n) Σ_i [(Train_i − Val_i) − (Train_{i−1} − Val_{i−1})]   growth of the gap per epoch

for accuracy and for loss, taken literally: MCR(acc) > 0 and MCR(loss) < 0 while a model learns;
MOFR(acc) > 0 and MOFR(loss) < 0 while the train–validation gap widens (overfitting grows).

The training metric is ``train_eval_*`` when the run measured it (the training split in
inference mode, no augmentation, plain cross-entropy: like validation); older histories only
have the running values of the optimised loss (augmented, label smoothing), which are used then
and reported as such (``train_metric``).

Example:
    >>> history = [
    ...     {"epoch": 0, "train_eval_acc": 0.2, "train_eval_loss": 2.0, "val_acc": 0.2, "val_loss": 2.0},
    ...     {"epoch": 1, "train_eval_acc": 0.5, "train_eval_loss": 1.4, "val_acc": 0.45, "val_loss": 1.5},
    ...     {"epoch": 2, "train_eval_acc": 0.6, "train_eval_loss": 1.2, "val_acc": 0.5, "val_loss": 1.4}]
    >>> stats = convergence_stats(history)
    >>> round(stats["mcr_acc"], 3), round(stats["mofr_acc"], 3), stats["best_epoch"]
    (0.2, 0.05, 2)
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def read_history(path: str | Path) -> list[dict]:
    """Rows of a run's ``history.csv`` as dicts of floats (``epoch`` and ``phase`` as ints).

    Args:
        path: a run's ``history.csv`` (written by training, one row per epoch; row 0 is the
            measurement before training when the run made one).

    Returns:
        One dict per row, column name -> value.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "history.csv"
        >>> _ = path.write_text("epoch,phase,val_acc\\n0,1,0.2\\n1,1,0.45\\n")
        >>> read_history(path)
        [{'epoch': 0, 'phase': 1, 'val_acc': 0.2}, {'epoch': 1, 'phase': 1, 'val_acc': 0.45}]
    """
    with open(path, newline="") as handle:
        return [{k: int(float(v)) if k in ("epoch", "phase") else float(v) for k, v in row.items()}
                for row in csv.DictReader(handle)]


def trained_epochs(history: list[dict]) -> list[dict]:
    """The rows of epochs 1.. (without the epoch-0 measurement before training).

    Args:
        history: rows as :func:`read_history` returns them.

    Returns:
        The rows whose ``epoch`` is at least 1, in order.

    Example:
        >>> [row["epoch"] for row in trained_epochs([{"epoch": 0}, {"epoch": 1}, {"epoch": 2}])]
        [1, 2]
    """
    return [row for row in history if row["epoch"] >= 1]


def train_metric(history: list[dict]) -> str:
    """``train_eval`` when every row measured the training split like validation, else ``train``.

    Args:
        history: rows as :func:`read_history` returns them.

    Returns:
        The prefix of the training columns to use: ``train_eval`` or ``train``.

    Example:
        >>> train_metric([{"epoch": 1, "train_eval_acc": 0.5}]), train_metric([{"epoch": 1}])
        ('train_eval', 'train')
    """
    measured = all(not math.isnan(row.get("train_eval_acc", math.nan)) for row in history)
    return "train_eval" if history and measured else "train"


def _column(history: list[dict], key: str) -> np.ndarray:
    return np.array([row[key] for row in history], dtype=np.float64)


def convergence_stats(history: list[dict]) -> dict[str, float | str]:
    """Epoch-1 accuracy/loss, MCR and MOFR over every trained epoch, final/best val acc (best
    over trained epochs: epoch 0 is never a checkpoint).

    Args:
        history: rows as :func:`read_history` returns them.

    Returns:
        ``initial_*`` (epoch 1), the keys of :func:`window_stats` over every trained epoch,
        ``final_val_acc``, ``best_val_acc`` and ``best_epoch``.

    Raises:
        ValueError: no epoch finished.

    Example:
        >>> history = [
        ...     {"epoch": 0, "train_eval_acc": 0.2, "train_eval_loss": 2.0, "val_acc": 0.2, "val_loss": 2.0},
        ...     {"epoch": 1, "train_eval_acc": 0.5, "train_eval_loss": 1.4, "val_acc": 0.45, "val_loss": 1.5}]
        >>> stats = convergence_stats(history)
        >>> stats["initial_val_acc"], round(stats["mcr_acc"], 3)
        (0.45, 0.3)
    """
    trained = trained_epochs(history)
    if not trained:
        raise ValueError("empty history: no epoch finished")
    first, val_acc, train = trained[0], _column(trained, "val_acc"), train_metric(history)
    return {"initial_train_acc": first[f"{train}_acc"], "initial_train_loss": first[f"{train}_loss"],
            "initial_val_acc": first["val_acc"], "initial_val_loss": first["val_loss"],
            **window_stats(history, 1, trained[-1]["epoch"]),
            "final_val_acc": trained[-1]["val_acc"],
            "best_val_acc": float(val_acc.max()),
            "best_epoch": int(trained[int(val_acc.argmax())]["epoch"])}


def window_stats(history: list[dict], first: int, last: int) -> dict[str, float | str]:
    """MCR and MOFR of epochs ``first``..``last``: the paper's sums telescope to
    ``(end − start) / n`` with start the epoch before the window. Without an epoch-0 row the
    first window starts from its own first epoch and has one step fewer (``steps``).

    Args:
        history: rows as :func:`read_history` returns them.
        first: first epoch of the window.
        last: last epoch of the window (inclusive).

    Returns:
        ``epochs`` (``"first-last"``), ``steps``, ``train_metric`` and ``mcr_acc``,
        ``mcr_loss``, ``mofr_acc``, ``mofr_loss`` per epoch (NaN when the window has no step).

    Example:
        >>> history = [
        ...     {"epoch": 0, "train_eval_acc": 0.2, "train_eval_loss": 2.0, "val_acc": 0.2, "val_loss": 2.0},
        ...     {"epoch": 1, "train_eval_acc": 0.5, "train_eval_loss": 1.4, "val_acc": 0.45, "val_loss": 1.5},
        ...     {"epoch": 2, "train_eval_acc": 0.6, "train_eval_loss": 1.2, "val_acc": 0.5, "val_loss": 1.4}]
        >>> stats = window_stats(history, 1, 2)
        >>> stats["steps"], round(stats["mcr_loss"], 3), round(stats["mofr_loss"], 3)
        (2, -0.4, -0.1)
    """
    by_epoch = {row["epoch"]: row for row in history}
    base = by_epoch.get(first - 1, by_epoch[first])
    end = by_epoch[last]
    steps = end["epoch"] - base["epoch"]
    train = train_metric(history)
    if steps == 0:  # a one-epoch window with nothing before it: no rate
        nan = float("nan")
        return {"epochs": f"{first}-{last}", "steps": 0, "train_metric": train, "mcr_acc": nan,
                "mcr_loss": nan, "mofr_acc": nan, "mofr_loss": nan}

    def gap(row: dict, key: str) -> float:
        return row[f"{train}_{key}"] - row[f"val_{key}"]

    return {"epochs": f"{first}-{last}", "steps": steps, "train_metric": train,
            "mcr_acc": (end[f"{train}_acc"] - base[f"{train}_acc"]) / steps,
            "mcr_loss": (end[f"{train}_loss"] - base[f"{train}_loss"]) / steps,
            "mofr_acc": (gap(end, "acc") - gap(base, "acc")) / steps,
            "mofr_loss": (gap(end, "loss") - gap(base, "loss")) / steps}


def windowed_stats(history: list[dict], window: int = 5) -> list[dict[str, float | str]]:
    """MCR/MOFR per block of ``window`` epochs (1-5, 6-10, ...), as the papers' tables.

    Args:
        history: rows as :func:`read_history` returns them.
        window: epochs per block (the last block may be shorter).

    Returns:
        One :func:`window_stats` dict per block.

    Example:
        >>> history = [{"epoch": e, "train_eval_acc": 0.1 * e, "train_eval_loss": 2 - 0.1 * e,
        ...             "val_acc": 0.1 * e, "val_loss": 2 - 0.1 * e} for e in range(8)]
        >>> [block["epochs"] for block in windowed_stats(history, window=5)]
        ['1-5', '6-7']
    """
    last = trained_epochs(history)[-1]["epoch"]
    return [window_stats(history, first, min(first + window - 1, last))
            for first in range(1, last + 1, window)]
