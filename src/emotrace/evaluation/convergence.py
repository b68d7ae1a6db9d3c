"""Learning-curve statistics of the papers: initial accuracy/loss, mean convergence rate (MCR)
and mean overfitting rate (MOFR), overall and per window of epochs.

Definitions, for a window of epochs (the whole run, or epochs 1-5, 6-10, ...):

* MCR (accuracy) = mean per-epoch gain of training accuracy across the window, counted from the
  epoch just before it (from its own first epoch for the first window):
  ``(acc[last] - acc[base]) / (last - base)``. MCR (loss) = mean per-epoch drop of training loss.
* MOFR (accuracy) = mean over the window of ``train_acc - val_acc``; MOFR (loss) = mean of
  ``val_loss - train_loss``: how far validation trails training.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_history(path: str | Path) -> list[dict]:
    """Rows of a run's ``history.csv`` as dicts of floats (``epoch`` and ``phase`` as ints)."""
    with open(path, newline="") as handle:
        return [{k: int(float(v)) if k in ("epoch", "phase") else float(v) for k, v in row.items()}
                for row in csv.DictReader(handle)]


def _column(history: list[dict], key: str) -> np.ndarray:
    return np.array([row[key] for row in history], dtype=np.float64)


def convergence_stats(history: list[dict]) -> dict[str, float]:
    """Initial (epoch-1) accuracy/loss, MCR and MOFR over the whole history, final/best val acc."""
    if not history:
        raise ValueError("empty history: no epoch finished")
    return {"initial_train_acc": history[0]["train_acc"], "initial_train_loss": history[0]["train_loss"],
            "initial_val_acc": history[0]["val_acc"], "initial_val_loss": history[0]["val_loss"],
            **_window_stats(history, 0, len(history)),
            "final_val_acc": history[-1]["val_acc"],
            "best_val_acc": float(_column(history, "val_acc").max()),
            "best_epoch": int(history[int(_column(history, "val_acc").argmax())]["epoch"])}


def _window_stats(history: list[dict], start: int, stop: int) -> dict[str, float]:
    """MCR/MOFR over rows ``start:stop``; the rate's baseline is the row before ``start``
    (or the window's own first row for the first window)."""
    acc, loss = _column(history, "train_acc"), _column(history, "train_loss")
    val_acc, val_loss = _column(history, "val_acc"), _column(history, "val_loss")
    base = start - 1 if start > 0 else start
    steps = max(stop - 1 - base, 1)
    window = slice(start, stop)
    return {"mcr_acc": float((acc[stop - 1] - acc[base]) / steps),
            "mcr_loss": float((loss[base] - loss[stop - 1]) / steps),
            "mofr_acc": float(np.mean(acc[window] - val_acc[window])),
            "mofr_loss": float(np.mean(val_loss[window] - loss[window]))}


def windowed_stats(history: list[dict], window: int = 5) -> list[dict[str, float]]:
    """MCR/MOFR per block of ``window`` epochs (1-5, 6-10, ...), as the paper's tables."""
    rows = []
    for start in range(0, len(history), window):
        stop = min(start + window, len(history))
        rows.append({"epochs": f"{history[start]['epoch']}-{history[stop - 1]['epoch']}",
                     **_window_stats(history, start, stop)})
    return rows
