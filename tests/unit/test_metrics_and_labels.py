"""Metrics from a confusion matrix, calibration arithmetic and the emotion label map, checked
against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from emotrace.data.labels import EMOTIONS, UnknownEmotionError, emotion_index
from emotrace.errors import ConfigError
from emotrace.evaluation.calibration import (expected_calibration_error, fit_temperature,
                                             negative_log_likelihood)
from emotrace.evaluation.metrics import confusion_matrix, metrics_from_confusion
from emotrace.inference.classifier import apply_temperature


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    confusion = confusion_matrix([3, 3, 3, 5, 5, 0], [3, 3, 5, 5, 0, 0])
    assert confusion.shape == (7, 7) and confusion.sum() == 6
    assert confusion[3].tolist() == [0, 0, 0, 2, 0, 1, 0]
    assert confusion[5, 5] == 1 and confusion[5, 0] == 1 and confusion[0, 0] == 1
    assert confusion_matrix([1], [2], num_classes=3).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_metrics_by_hand_with_a_class_never_predicted():
    # happy: 8 of 10 right, 2 read as sad; sad: 3 of 5 right, 2 read as happy; fear: 1, missed
    confusion = np.zeros((7, 7), int)
    confusion[3, 3], confusion[3, 4] = 8, 2
    confusion[4, 4], confusion[4, 3] = 3, 2
    confusion[2, 4] = 1
    metrics = metrics_from_confusion(confusion)
    assert metrics["n"] == 16 and metrics["accuracy"] == pytest.approx(11 / 16)
    happy, sad, fear = (metrics["per_class"][name] for name in ("happy", "sad", "fear"))
    assert happy["precision"] == pytest.approx(8 / 10) and happy["recall"] == pytest.approx(0.8)
    assert happy["f1"] == pytest.approx(0.8)
    assert sad["precision"] == pytest.approx(3 / 6) and sad["recall"] == pytest.approx(3 / 5)
    assert sad["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    assert fear == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # macro means over the three classes present, not all seven
    assert metrics["macro_recall"] == pytest.approx((0.8 + 0.6 + 0.0) / 3)
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 * 0.3 / 1.1 + 0.0) / 3)
    assert metrics["confusion"] == confusion.tolist()
    assert list(metrics["per_class"]) == list(EMOTIONS)


def test_metrics_of_nothing_are_zero_not_a_division_error():
    metrics = metrics_from_confusion(np.zeros((7, 7), int))
    assert metrics["n"] == 0 and metrics["accuracy"] == 0.0
    assert metrics["macro_recall"] == 0.0 and metrics["macro_f1"] == 0.0


@pytest.mark.parametrize("name, code", [(" Angry ", 0), ("mad", 0), ("disgusted", 1),
                                        ("scared", 2), ("joy", 3), ("unhappy", 4),
                                        ("suprise", 5), ("calm", 6), ("NONE", 6), ("4", 4)])
def test_folder_names_and_aliases_map_to_fer_codes(name, code):
    assert emotion_index(name) == code


@pytest.mark.parametrize("name", ["contempt", "7", "-1", "", "happy sad"])
def test_unknown_names_are_config_errors_listing_the_codes(name):
    with pytest.raises(UnknownEmotionError, match="0=angry.*6=neutral") as error:
        emotion_index(name)
    assert isinstance(error.value, ConfigError) and repr(name) in str(error.value)


def test_temperature_scaling_by_hand():
    probs = np.array([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
    # softmax(log p / 2) = sqrt(p) normalised: sqrt(.8) / (sqrt(.8) + sqrt(.2)) = 2/3
    softened = apply_temperature(probs, 2.0)
    np.testing.assert_allclose(softened, [[2 / 3, 1 / 3], [0.5, 0.5], [0.25, 0.75]], atol=1e-9)
    # T = 1/2 squares: .64 / (.64 + .04)
    np.testing.assert_allclose(apply_temperature(probs, 0.5)[0], [0.64 / 0.68, 0.04 / 0.68])
    assert apply_temperature(probs, 1.0) is probs
    assert (softened.argmax(1) == probs.argmax(1)).all()


def test_ece_with_15_bins_by_hand():
    # confidences 0.95 (2 faces, 1 right) and 0.55 (2 faces, 2 right), 0.35 (1 face, wrong):
    # |0.5 - 0.95| * 2/5 + |1 - 0.55| * 2/5 + |0 - 0.35| * 1/5
    probs = np.array([[0.95, 0.05, 0], [0.95, 0.05, 0], [0.55, 0.45, 0], [0.45, 0.55, 0],
                      [0.35, 0.3, 0.35]])
    labels = np.array([0, 1, 0, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(
        0.45 * 0.4 + 0.45 * 0.4 + 0.35 * 0.2)
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(
        abs(3 / 5 - np.mean([0.95, 0.95, 0.55, 0.55, 0.35])))


def test_negative_log_likelihood_and_a_fitted_temperature():
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert negative_log_likelihood(probs, np.array([0, 1])) == pytest.approx(
        -(np.log(0.5) + np.log(0.75)) / 2)
    # labels drawn from softmax(z) while the model says softmax(3 z): the fit finds about 3
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 1, (6000, 5))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in truth])
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    assert fit_temperature(sharp, labels) == pytest.approx(3.0, rel=0.1)
