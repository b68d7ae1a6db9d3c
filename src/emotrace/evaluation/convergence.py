"""Learning-curve statistics of the papers: initial accuracy/loss, mean convergence rate (MCR)
and mean overfitting rate (MOFR), overall and per window of n epochs.

The seed papers' definitions, with Metric_0 the value before the first epoch (the epoch-0 row of
``history.csv``) and a window of epochs i = a+1 .. a+n::

    MCR  = (1/n) Σ_i (Metric_i − Metric_{i−1})                        on the training metric
    MOFR = (1/n) Σ_i [(Train_i − Val_i) − (Train_{i−1} − Val_{i−1})]   growth of the gap per epoch

for accuracy and for loss, taken literally: MCR(acc) > 0 and MCR(loss) < 0 while a model learns;
MOFR(acc) > 0 and MOFR(loss) < 0 while the train–validation gap widens (overfitting grows).

The training metric is ``train_eval_*`` when the run measured it (the training split in
inference mode, no augmentation, plain cross-entropy: like validation); older histories only
have the running values of the optimised loss (augmented, label smoothing), which are used then
and reported as such (``train_metric``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def read_history(path: str | Path) -> list[dict]:
    """Rows of a run's ``history.csv`` as dicts of floats (``epoch`` and ``phase`` as ints)."""
    with open(path, newline="") as handle:
        return [{k: int(float(v)) if k in ("epoch", "phase") else float(v) for k, v in row.items()}
                for row in csv.DictReader(handle)]


def trained_epochs(history: list[dict]) -> list[dict]:
    """The rows of epochs 1.. (without the epoch-0 measurement before training)."""
    return [row for row in history if row["epoch"] >= 1]


def train_metric(history: list[dict]) -> str:
    """``train_eval`` when every row measured the training split like validation, else ``train``."""
    measured = all(not math.isnan(row.get("train_eval_acc", math.nan)) for row in history)
    return "train_eval" if history and measured else "train"


def _column(history: list[dict], key: str) -> np.ndarray:
    return np.array([row[key] for row in history], dtype=np.float64)


def convergence_stats(history: list[dict]) -> dict[str, float | str]:
    """Epoch-1 accuracy/loss, MCR and MOFR over every trained epoch, final/best val acc (best
    over trained epochs: epoch 0 is never a checkpoint)."""
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
    first window starts from its own first epoch and has one step fewer (``steps``)."""
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
    """MCR/MOFR per block of ``window`` epochs (1-5, 6-10, ...), as the papers' tables."""
    last = trained_epochs(history)[-1]["epoch"]
    return [window_stats(history, first, min(first + window - 1, last))
            for first in range(1, last + 1, window)]
