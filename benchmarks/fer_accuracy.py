"""Accuracy of the `fer` package's classifier on FER-2013 face crops (its side of the README's
comparison; run with the python of an environment that has fer + tensorflow-cpu).

    FER_PYTHON/bin/python benchmarks/fer_accuracy.py ../shared/data/fer2013 PrivateTest
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fer.fer import FER  # noqa: E402

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def main(root: str, usage: str) -> None:
    detector = FER(mtcnn=False)
    correct = total = 0
    confusion = np.zeros((7, 7), int)
    for label, name in enumerate(CLASSES):
        for file in sorted((Path(root) / "test" / name).glob(f"{usage}_*.jpg")):
            image = cv2.imread(str(file))
            # fer widens every box by its offsets (10 px): this box makes its crop the whole image
            faces = detector.detect_emotions(image, face_rectangles=[(10, 10, 28, 28)])
            scores = faces[0]["emotions"]
            predicted = CLASSES.index(max(scores, key=scores.get))
            confusion[label, predicted] += 1
            correct += predicted == label
            total += 1
    recall = np.diag(confusion) / confusion.sum(axis=1)
    print(json.dumps({"split": usage, "n": total, "accuracy": correct / total,
                      "macro_recall": float(recall.mean())}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "PrivateTest")
