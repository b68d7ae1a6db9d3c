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
    assert stats["train_metric"] == "train" and stats["steps"] == 9  # no epoch 0: 9 steps
    assert stats["mcr_acc"] == pytest.approx((0.79 - 0.40) / 9)
    assert stats["mcr_loss"] == pytest.approx(-(0.79 - 0.40) / 9)  # literal: loss falls
    gaps = [a["train_acc"] - a["val_acc"] for a in history]
    assert stats["mofr_acc"] == pytest.approx((gaps[-1] - gaps[0]) / 9)
    assert stats["mofr_loss"] == pytest.approx(-(gaps[-1] - gaps[0]) / 9)
    assert stats["best_val_acc"] == 0.63 and stats["best_epoch"] == 8
    windows = windowed_stats(history, 5)
    assert [w["epochs"] for w in windows] == ["1-5", "6-10"]
    assert [w["steps"] for w in windows] == [4, 5]
    assert windows[0]["mcr_acc"] == pytest.approx((0.68 - 0.40) / 4)
    assert windows[1]["mcr_acc"] == pytest.approx((0.79 - 0.68) / 5)


def test_paper_rates_use_the_epoch_zero_measurement_and_n_steps_per_window():
    """MCR = (1/n) Σ (M_i − M_{i−1}); MOFR = (1/n) Σ growth of (train − val), every window n
    steps once epoch 0 is measured; the like-for-like training metric is used."""
    rng = np.random.default_rng(0)
    rows = []
    for epoch in range(11):
        rows.append({"epoch": epoch, "phase": 1, "train_acc": np.nan if epoch == 0 else 0.9,
                     "train_loss": np.nan if epoch == 0 else 9.0,  # not the metric used
                     "train_eval_acc": rng.uniform(0.2, 0.9), "train_eval_loss": rng.uniform(0.5, 2),
                     "val_acc": rng.uniform(0.2, 0.7), "val_loss": rng.uniform(0.8, 2)})
    windows = windowed_stats(rows, 5)
    assert [w["steps"] for w in windows] == [5, 5]
    for w, (first, last) in zip(windows, [(1, 5), (6, 10)]):
        span = range(first, last + 1)
        mcr = np.mean([rows[i]["train_eval_acc"] - rows[i - 1]["train_eval_acc"] for i in span])
        gap = [r["train_eval_loss"] - r["val_loss"] for r in rows]
        mofr_loss = np.mean([gap[i] - gap[i - 1] for i in span])
        assert w["train_metric"] == "train_eval"
        assert w["mcr_acc"] == pytest.approx(mcr) and w["mofr_loss"] == pytest.approx(mofr_loss)
    stats = convergence_stats(rows)
    assert stats["steps"] == 10 and stats["initial_val_acc"] == rows[1]["val_acc"]
    best = max(range(1, 11), key=lambda i: rows[i]["val_acc"])
    assert stats["best_epoch"] == best  # epoch 0 is never the kept checkpoint


def test_figures_are_written(tmp_path):
    confusion = np.diag([5, 1, 4, 9, 6, 4, 6]) + 1
    assert plot_confusion(confusion, tmp_path / "c.png").stat().st_size > 10_000
    assert plot_learning_curves(_history(), tmp_path / "curves.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*partial*"))


def test_exact_mcnemar_matches_the_binomial_by_hand():
    from math import comb

    from emotrace.evaluation.stats import mcnemar_exact

    labels = np.zeros(40, int)
    a = np.zeros(40, int)
    b = np.zeros(40, int)
    a[:10] = 1          # 10 images only B gets right
    b[30:32] = 1        # 2 images only A gets right
    test = mcnemar_exact(labels, a, b)
    assert (test.only_a, test.only_b) == (2, 10)
    by_hand = 2 * sum(comb(12, k) for k in range(0, 3)) / 2 ** 12
    assert test.p_value == pytest.approx(by_hand) and test.significant
    same = mcnemar_exact(labels, a, a)
    assert same.p_value == 1.0 and not same.significant
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(labels, a[:5], b)


def test_seed_summary_gives_mean_sd_and_a_t_interval():
    from emotrace.evaluation.stats import majority_class, p_text, summarize_seeds

    summary = summarize_seeds([0.50, 0.52, 0.54])
    assert summary.mean == pytest.approx(0.52) and summary.sd == pytest.approx(0.02)
    half = 4.302652729749464 * 0.02 / np.sqrt(3)  # t(0.975, 2)
    assert (summary.low, summary.high) == pytest.approx((0.52 - half, 0.52 + half))
    assert np.isnan(summarize_seeds([0.5]).sd)
    assert majority_class(np.array([3, 3, 0, 6, 3])) == 3
    assert p_text(0.2) == "p = 0.200, not significant" and p_text(0.0001) == "p < 0.001"
