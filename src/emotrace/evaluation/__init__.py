"""Metrics, confusion matrices, learning curves and MCR/MOFR (numpy + matplotlib, no torch)."""

from emotrace.evaluation.convergence import convergence_stats, read_history, windowed_stats
from emotrace.evaluation.evaluate import Evaluation, evaluate
from emotrace.evaluation.metrics import confusion_matrix, metrics_from_confusion
from emotrace.evaluation.plots import plot_confusion, plot_learning_curves

__all__ = ["Evaluation", "confusion_matrix", "convergence_stats", "evaluate",
           "metrics_from_confusion", "plot_confusion", "plot_learning_curves", "read_history",
           "windowed_stats"]
