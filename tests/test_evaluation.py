import numpy as np
import pytest

from emotrace.evaluation import (confusion_matrix, convergence_stats, metrics_from_confusion,
                                 plot_confusion, plot_learning_curves, windowed_stats)


def test_metrics_on_a_known_confusion():
    y_true = np.array([0, 0, 0, 0, 3, 3, 3, 6, 6, 1])
    y_pred = np.array([0, 0, 3, 6, 3, 3, 0, 6, 6, 0])
    confusion = confusion_matrix(y_true, y_pred)
    assert confusion[0].tolist() == [2, 0, 0, 1, 0, 0, 1]
    metrics = metrics_from_confusion(confusion)
    assert metrics["n"] == 10
    assert metrics["accuracy"] == pytest.approx(0.6)
    angry = metrics["per_class"]["angry"]
    assert angry["recall"] == pytest.approx(0.5)
    assert angry["precision"] == pytest.approx(2 / 4)
    assert angry["f1"] == pytest.approx(0.5)
    assert metrics["per_class"]["disgust"]["recall"] == 0.0
    # macro recall over the four classes present: (0.5 + 0 + 2/3 + 1) / 4
    assert metrics["macro_recall"] == pytest.approx((0.5 + 0 + 2 / 3 + 1) / 4)
    assert metrics["per_class"]["fear"]["support"] == 0


def _history():
    acc = [0.40, 0.50, 0.58, 0.64, 0.68, 0.71, 0.73, 0.75, 0.77, 0.79]
    val = [0.45, 0.52, 0.56, 0.59, 0.61, 0.62, 0.62, 0.63, 0.63, 0.63]
    return [{"epoch": i + 1, "phase": 1, "train_acc": a, "val_acc": v, "train_loss": 2 - a,
             "val_loss": 2 - v} for i, (a, v) in enumerate(zip(acc, val))]


def test_convergence_and_overfitting_rates_on_a_known_history():
    history = _history()
    stats = convergence_stats(history)
    assert stats["initial_train_acc"] == 0.40 and stats["initial_val_loss"] == pytest.approx(1.55)
    assert stats["mcr_acc"] == pytest.approx((0.79 - 0.40) / 9)
    assert stats["mcr_loss"] == pytest.approx((0.79 - 0.40) / 9)
    gaps = [a["train_acc"] - a["val_acc"] for a in history]
    assert stats["mofr_acc"] == pytest.approx(np.mean(gaps))
    assert stats["mofr_loss"] == pytest.approx(np.mean(gaps))
    assert stats["best_val_acc"] == 0.63 and stats["best_epoch"] == 8
    windows = windowed_stats(history, 5)
    assert [w["epochs"] for w in windows] == ["1-5", "6-10"]
    assert windows[0]["mcr_acc"] == pytest.approx((0.68 - 0.40) / 4)
    assert windows[1]["mcr_acc"] == pytest.approx((0.79 - 0.68) / 5)
    assert windows[1]["mofr_acc"] == pytest.approx(np.mean(gaps[5:]))


def test_figures_are_written(tmp_path):
    confusion = np.diag([5, 1, 4, 9, 6, 4, 6]) + 1
    assert plot_confusion(confusion, tmp_path / "c.png").stat().st_size > 10_000
    assert plot_learning_curves(_history(), tmp_path / "curves.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*partial*"))
