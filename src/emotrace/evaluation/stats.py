"""The statistics a comparison needs: mean ± sd with a t interval over seeds, a bootstrap interval
over seeds, the exact McNemar test on two models' per-image predictions, Holm's correction over a
study's comparisons, and the majority-class baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: where a p-value at or above this is written "not significant"
ALPHA = 0.05


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation and 95% t interval of one number over seeds.

    Attributes:
        values: the number of each seed.
        mean: their mean.
        sd: their sample standard deviation (n − 1); NaN for one value.
        low: lower end of the t interval of the mean; NaN for one value.
        high: upper end of the t interval of the mean; NaN for one value.

    Example:
        >>> summary = summarize_seeds([55.0, 53.8, 56.2])
        >>> summary.mean, round(summary.sd, 2), round(float(summary.low), 2)
        (55.0, 1.2, 52.02)
    """

    values: tuple[float, ...]
    mean: float
    sd: float
    low: float
    high: float

    def as_dict(self) -> dict[str, object]:
        """The JSON form, as the study reports store it.

        Returns:
            ``{"values", "mean", "sd", "ci95": [low, high]}``.
        """
        return {"values": list(self.values), "mean": self.mean, "sd": self.sd,
                "ci95": [self.low, self.high]}


def summarize_seeds(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean ± sd (n − 1) and the ``confidence`` t interval of the mean; one value has no spread
    (sd and interval NaN).

    Args:
        values: one number per seed.
        confidence: coverage of the t interval.

    Returns:
        The summary.

    Example:
        >>> summarize_seeds([55.0, 53.8, 56.2]).as_dict()["mean"]
        55.0
        >>> summarize_seeds([55.0]).sd
        nan
    """
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
    only, ``only_b`` right by B only; two-sided binomial p-value on the discordant pairs.

    Attributes:
        only_a: images classifier A gets right and B wrong.
        only_b: images classifier B gets right and A wrong.
        p_value: two-sided exact p-value.

    Example:
        >>> McNemar(only_a=94, only_b=65, p_value=0.026).significant
        True
    """

    only_a: int
    only_b: int
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the p-value is below :data:`ALPHA` (0.05)."""
        return self.p_value < ALPHA

    def as_dict(self) -> dict[str, object]:
        """The JSON form, as the study reports store it.

        Returns:
            ``{"only_a_right", "only_b_right", "p_value", "significant"}``.
        """
        return {"only_a_right": self.only_a, "only_b_right": self.only_b,
                "p_value": self.p_value, "significant": self.significant}


def mcnemar_exact(labels: np.ndarray, predictions_a: np.ndarray,
                  predictions_b: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test: under H0 each discordant image is equally likely to favour
    A or B, so ``only_a ~ Binomial(only_a + only_b, 1/2)``.

    Args:
        labels: the true class of each image.
        predictions_a: classifier A's prediction for the same images.
        predictions_b: classifier B's prediction for the same images.

    Returns:
        The discordant counts and the p-value (1.0 when the two never disagree on correctness).

    Raises:
        ValueError: the three arrays do not have the same shape.

    Example:
        >>> labels = np.array([0, 1, 2, 3])
        >>> mcnemar_exact(labels, np.array([0, 1, 2, 0]), np.array([0, 0, 0, 3]))
        McNemar(only_a=2, only_b=1, p_value=1.0)
    """
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
    """The most frequent class of the training labels: the answer of the trivial baseline.

    Args:
        train_labels: the training split's labels.
        num_classes: number of classes.

    Returns:
        The class index (the lowest one on a tie).

    Example:
        >>> majority_class(np.array([3, 3, 6, 0]))
        3
    """
    return int(np.bincount(np.asarray(train_labels), minlength=num_classes).argmax())


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95,
                       resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeds resampled with
    replacement; scipy's ``bootstrap``). NaN for fewer than two values.

    Args:
        values: one number per seed.
        confidence: coverage of the interval.
        resamples: number of bootstrap resamples.
        seed: seed of the resampling (the same seed gives the same interval).

    Returns:
        ``(low, high)``; both the value itself when all values are equal.

    With 3 seeds there are only 10 distinct resamples and the interval can never be wider than
    the seeds' range: it describes these seeds, it understates the uncertainty of the mean.

    Example:
        >>> low, high = bootstrap_interval([1.0, 2.0, 3.0])
        >>> 1.0 <= low < high <= 3.0
        True
    """
    from scipy.stats import bootstrap

    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float("nan"), float("nan")
    if np.all(array == array[0]):
        return float(array[0]), float(array[0])
    result = bootstrap((array,), np.mean, confidence_level=confidence, n_resamples=resamples,
                       method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the k-th smallest of m is
    multiplied by m − k + 1, then made non-decreasing and capped at 1. A comparison is
    significant at level a over the whole family when its adjusted p-value is below a.

    Args:
        p_values: the raw p-values of one family of comparisons.

    Returns:
        The adjusted p-values, in the order given.

    Example:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (len(p) - np.arange(len(p))))
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled) if len(p) else scaled
    return adjusted.tolist()


def p_text(p_value: float) -> str:
    """``p = 0.012`` or ``p = 0.310, not significant`` (at :data:`ALPHA`).

    Args:
        p_value: a p-value.

    Returns:
        The text a report prints: three decimals, ``p < 0.001`` below that.

    Example:
        >>> p_text(0.012), p_text(0.31), p_text(0.0001)
        ('p = 0.012', 'p = 0.310, not significant', 'p < 0.001')
    """
    shown = "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"
    return shown if p_value < ALPHA else f"{shown}, not significant"
