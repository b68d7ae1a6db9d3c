"""Per-face classification time of each shipped model on this CPU, written into its card.

    python benchmarks/model_speed.py [--write-cards]

One face (batch of 1, a photo) and 48 faces in one batch (a crowded video frame), FER-2013 test
crops; best of 5 rounds. Pause other work first: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from emotrace.data import read_face_image
from emotrace.inference.classifier import SHIPPED_MODELS, EmotionClassifier, model_path
from emotrace.utils import atomic_path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def ms_per_face(classifier: EmotionClassifier, faces: np.ndarray, rounds: int = 5,
                calls: int = 20) -> float:
    classifier.predict_faces(faces)  # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            classifier.predict_faces(faces)
        best = min(best, (time.perf_counter() - start) / calls / len(faces))
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-cards", action="store_true",
                        help="record the numbers in the shipped models' cards")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "fer2013" / "test").rglob("PrivateTest_*.jpg"))[:48]
    faces = np.stack([read_face_image(f, 48) for f in files])
    print(f"{'model':<12}{'ms/face, 1 face':>18}{'ms/face, 48 in a batch':>25}")
    for name in SHIPPED_MODELS:
        classifier = EmotionClassifier(name)
        speed = {"ms_per_face_batch1": round(ms_per_face(classifier, faces[:1]), 2),
                 "ms_per_face_batch48": round(ms_per_face(classifier, faces, calls=4), 2),
                 "cpu_cores": os.cpu_count(), "measured_by": "python benchmarks/model_speed.py"}
        print(f"{name:<12}{speed['ms_per_face_batch1']:>18.2f}{speed['ms_per_face_batch48']:>25.2f}")
        if args.write_cards:
            card_path = model_path(name).with_suffix(".json")
            card = json.loads(card_path.read_text())
            card["speed"] = speed
            with atomic_path(card_path) as tmp:
                tmp.write_text(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
