"""Statistics of the studies against values computed independently: binomial sums by hand for
McNemar, Holm's step-down by hand, the exact bootstrap distribution by enumeration, t quantiles
from tables."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from emotrace.evaluation.stats import (bootstrap_interval, holm, majority_class, mcnemar_exact,
                                       p_text, summarize_seeds)


def _two_sided_binomial(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (symmetric: twice the
    smaller tail, capped at 1)."""
    tail = sum(comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _paired(only_a: int, only_b: int, both: int, neither: int):
    """Labels and two models' predictions with the given agreement table."""
    labels = np.zeros(only_a + only_b + both + neither, int)
    a, b = labels.copy(), labels.copy()
    i = only_a
    b[:i] = 1                    # A right, B wrong
    a[i:i + only_b] = 2          # B right, A wrong
    i += only_b + both
    a[i:], b[i:] = 3, 4          # both wrong
    return labels, a, b


@pytest.mark.parametrize("only_a, only_b", [(7, 1), (1, 7), (5, 5), (0, 6), (13, 4)])
def test_mcnemar_counts_discordant_pairs_and_matches_the_binomial(only_a, only_b):
    labels, a, b = _paired(only_a, only_b, both=20, neither=9)
    test = mcnemar_exact(labels, a, b)
    assert (test.only_a, test.only_b) == (only_a, only_b)
    assert test.p_value == pytest.approx(_two_sided_binomial(only_a, only_a + only_b))
    assert test.significant == (test.p_value < 0.05)


def test_mcnemar_known_values_and_symmetry():
    labels, a, b = _paired(0, 6, both=3, neither=1)
    assert mcnemar_exact(labels, a, b).p_value == pytest.approx(2 / 64)  # 2 * 0.5**6
    assert mcnemar_exact(labels, a, b).significant
    swapped = mcnemar_exact(labels, b, a)
    assert (swapped.only_a, swapped.only_b) == (6, 0)
    assert swapped.p_value == pytest.approx(2 / 64)
    assert mcnemar_exact(labels, a, a).p_value == 1.0  # no discordant pair
    assert mcnemar_exact(labels, a, a).as_dict() == {"only_a_right": 0, "only_b_right": 0,
                                                      "p_value": 1.0, "significant": False}


def test_mcnemar_refuses_predictions_on_different_images():
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(np.zeros(4, int), np.zeros(4, int), np.zeros(3, int))


def test_holm_step_down_by_hand():
    # sorted: 0.005 (x4) = 0.02, 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> 0.06
    assert holm([0.04, 0.005, 0.03, 0.01]) == pytest.approx([0.06, 0.02, 0.06, 0.03])
    # capped at 1 and kept non-decreasing in the order of the raw p-values
    assert holm([0.4, 0.6, 0.01]) == pytest.approx([0.8, 0.8, 0.03])
    assert holm([0.7]) == [0.7]
    assert holm([]) == []


def test_holm_keeps_the_order_of_equal_p_values_and_never_lowers_one():
    raw = np.random.default_rng(3).uniform(0, 0.2, 12)
    adjusted = np.array(holm(raw.tolist()))
    assert np.all(adjusted >= raw) and np.all(adjusted <= 1)
    order = np.argsort(raw)
    assert np.all(np.diff(adjusted[order]) >= 0)  # monotone in the raw p-values
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])


def _exact_bootstrap_quantiles(values, confidence=0.95):
    """The quantiles of the mean over every equally likely resample (enumerated)."""
    means = np.sort([np.mean(r) for r in itertools.product(values, repeat=len(values))])
    tail = (1 - confidence) / 2
    return np.quantile(means, tail), np.quantile(means, 1 - tail), means


def test_bootstrap_interval_matches_the_enumerated_bootstrap_distribution():
    values = [0.0, 1.0, 2.0, 3.0, 9.0]
    low, high, means = _exact_bootstrap_quantiles(values)
    got_low, got_high = bootstrap_interval(values)
    step = 1 / len(values)  # resample means move in steps of (value gap) / n
    assert got_low == pytest.approx(low, abs=2 * step)
    assert got_high == pytest.approx(high, abs=2 * step)
    assert min(values) < got_low < np.mean(values) < got_high < max(values)
    assert bootstrap_interval(values) == (got_low, got_high)  # seeded: the same every call


def test_bootstrap_of_three_seeds_is_their_range():
    # min mean 1.0 has probability 1/27 = 3.7% > 2.5%: both quantiles are the extremes
    assert bootstrap_interval([1.0, 2.0, 3.0]) == pytest.approx((1.0, 3.0))
    assert np.isnan(bootstrap_interval([0.4])).all()
    assert bootstrap_interval([0.3, 0.3, 0.3]) == (0.3, 0.3)


def test_seed_summary_t_interval_from_the_table():
    summary = summarize_seeds([0.60, 0.62, 0.64, 0.66, 0.68])
    sd = np.sqrt(0.001)  # squared deviations 0.0004+0.0001+0+0.0001+0.0004 over 4
    assert summary.mean == pytest.approx(0.64) and summary.sd == pytest.approx(sd)
    half = 2.7764451051977987 * sd / np.sqrt(5)  # t(0.975, 4)
    assert (summary.low, summary.high) == pytest.approx((0.64 - half, 0.64 + half))
    assert summary.as_dict()["ci95"] == pytest.approx([0.64 - half, 0.64 + half])
    wide = summarize_seeds([0.60, 0.62, 0.64, 0.66, 0.68], confidence=0.99)
    assert wide.high - wide.low == pytest.approx(2 * 4.604094871415897 * sd / np.sqrt(5))


def test_majority_class_and_p_text():
    assert majority_class(np.array([6, 6, 2, 2, 2, 0])) == 2
    assert majority_class(np.array([1, 4, 4, 1])) == 1  # a tie goes to the lower code
    assert p_text(0.012) == "p = 0.012"
    assert p_text(0.05) == "p = 0.050, not significant"
    assert p_text(0.0009) == "p < 0.001"
