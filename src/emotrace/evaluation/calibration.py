"""Calibrated scores: temperature scaling (Guo et al. 2017) and the expected calibration error.

A model's probabilities ``p`` become ``softmax(log p / T)``: one number fitted on the validation
split (PublicTest) by minimising the negative log-likelihood. T > 1 softens over-confident scores;
the predicted class never changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotrace.inference.classifier import apply_temperature

ECE_BINS = 15


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, low: float = 0.05,
                    high: float = 20.0, steps: int = 60) -> float:
    """The temperature that minimises the NLL of ``labels`` (golden-section search on log T;
    the NLL is convex in 1/T)."""
    def loss(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(probs, float(np.exp(log_t))), labels)

    ratio = (np.sqrt(5) - 1) / 2
    a, b = np.log(low), np.log(high)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(steps):
        if loss(c) < loss(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return round(float(np.exp((a + b) / 2)), 4)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE: the confidence-weighted gap between accuracy and confidence over ``bins`` equal-width
    confidence bins, ``sum_b |B_b|/n * |acc(B_b) - conf(B_b)|``."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bins are (lo, hi]; a confidence of exactly 0 cannot occur with 7 classes
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def calibrate_model(model: str | Path, data: str | Path, test: bool = False) -> dict:
    """Fit the temperature of an exported model on ``data``'s validation split (PublicTest) and
    write it into the model's card with the ECE before and after (also on the test split,
    PrivateTest, with ``test``). Returns the card's ``calibration`` entry."""
    from emotrace.evaluation.evaluate import evaluate
    from dataclasses import replace

    from emotrace.cards import ModelCard
    from emotrace.inference.classifier import EmotionClassifier

    model = Path(model)
    card = ModelCard.read(model)
    raw = EmotionClassifier(model, card=replace(card, calibration={}))  # uncalibrated scores
    val = evaluate(raw, data, split="val")
    temperature = fit_temperature(val.probs, val.labels)
    calibration = {"method": "temperature scaling", "temperature": temperature,
                   "fitted_on": "val", "bins": ECE_BINS, "ece": {}, "nll": {}}
    for split, result in [("val", val)] + ([("test", evaluate(raw, data, split="test"))]
                                           if test else []):
        scaled = apply_temperature(result.probs, temperature)
        calibration["ece"][split] = {
            "before": round(expected_calibration_error(result.probs, result.labels), 4),
            "after": round(expected_calibration_error(scaled, result.labels), 4)}
        calibration["nll"][split] = {
            "before": round(negative_log_likelihood(result.probs, result.labels), 4),
            "after": round(negative_log_likelihood(scaled, result.labels), 4)}
    card.calibration = calibration
    card.write(model)
    return calibration
