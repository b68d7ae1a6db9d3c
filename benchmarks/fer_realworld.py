"""The `fer` package's side of benchmarks/realworld.py: runs in an environment with fer and
tensorflow-cpu (never a dependency of emotrace). Prints one JSON line: predictions per condition.

    FER_VENV/bin/python benchmarks/fer_realworld.py DEV_DIR SLICE,SLICE,... [FER2013_DIR]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fer.fer import FER  # noqa: E402
from realworld_slices import degrade  # noqa: E402

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def classify(detector: FER, image: np.ndarray) -> int:
    """fer on a face crop: it widens every box by 10 px, so this box makes the crop the image."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    height, width = image.shape[:2]
    faces = detector.detect_emotions(image, face_rectangles=[(10, 10, width - 20, height - 20)])
    emotions = faces[0]["emotions"]
    return CLASSES.index(max(emotions, key=emotions.get))


def main(root: str, slices: str, fer2013: str | None) -> None:
    detector = FER(mtcnn=False)
    files = [f for emotion in CLASSES for f in sorted((Path(root) / emotion).glob("*.jpg"))]
    images = [cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files]
    out: dict = {"name": "fer (Haar + mini-Xception)"}
    for name in slices.split(","):
        out[f"crops/{name}"] = [classify(detector, degrade(image, name, i))
                                for i, image in enumerate(images)]
    if fer2013 and Path(fer2013).is_dir():
        labels, predicted = [], []
        for label, emotion in enumerate(CLASSES):
            for file in sorted((Path(fer2013) / "test" / emotion).glob("PublicTest_*.jpg")):
                labels.append(label)
                predicted.append(classify(detector, cv2.imread(str(file))))
        out["fer2013/PublicTest"] = {"labels": labels, "predicted": predicted}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
