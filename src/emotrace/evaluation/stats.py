"""The statistics a comparison needs: mean ± sd with a t interval over seeds, the exact McNemar
test on two models' per-image predictions, and the majority-class baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: where a p-value at or above this is written "not significant"
ALPHA = 0.05


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation and 95% t interval of one number over seeds."""

    values: tuple[float, ...]
    mean: float
    sd: float
    low: float
    high: float

    def as_dict(self) -> dict[str, object]:
        return {"values": list(self.values), "mean": self.mean, "sd": self.sd,
                "ci95": [self.low, self.high]}


def summarize_seeds(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean ± sd (n − 1) and the ``confidence`` t interval of the mean; one value has no spread
    (sd and interval NaN)."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return SeedSummary(tuple(array.tolist()), mean, float("nan"), float("nan"), float("nan"))
    sd = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(array) - 1)) * sd / np.sqrt(len(array))
    return SeedSummary(tuple(array.tolist()), mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two classifiers on the same images: ``only_a`` images right by A
    only, ``only_b`` right by B only; two-sided binomial p-value on the discordant pairs."""

    only_a: int
    only_b: int
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def as_dict(self) -> dict[str, object]:
        return {"only_a_right": self.only_a, "only_b_right": self.only_b,
                "p_value": self.p_value, "significant": self.significant}


def mcnemar_exact(labels: np.ndarray, predictions_a: np.ndarray,
                  predictions_b: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test: under H0 each discordant image is equally likely to favour
    A or B, so ``only_a ~ Binomial(only_a + only_b, 1/2)``."""
    from scipy.stats import binomtest

    labels, a, b = (np.asarray(x) for x in (labels, predictions_a, predictions_b))
    if not (labels.shape == a.shape == b.shape):
        raise ValueError(f"paired test needs predictions on the same images: {labels.shape}, "
                         f"{a.shape}, {b.shape}")
    right_a, right_b = a == labels, b == labels
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p_value = 1.0 if only_a + only_b == 0 else float(
        binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue)
    return McNemar(only_a, only_b, p_value)


def majority_class(train_labels: np.ndarray, num_classes: int = 7) -> int:
    """The most frequent class of the training labels: the answer of the trivial baseline."""
    return int(np.bincount(np.asarray(train_labels), minlength=num_classes).argmax())


def p_text(p_value: float) -> str:
    """``p = 0.012`` or ``p = 0.31, not significant`` (at :data:`ALPHA`)."""
    shown = "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"
    return shown if p_value < ALPHA else f"{shown}, not significant"
