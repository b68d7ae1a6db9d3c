"""Which face framing makes detected faces look like the training crops?

FER-2013 validation faces (PublicTest; never the test split) are upscaled 3x and put in the
middle of a larger canvas (edges replicated, so no hard border), YuNet detects them again, and
each framing (square side = scale x the detector box, shifted down by shift_y) is cut out and
classified. The whole-image crop (the exact training framing) is the reference.

    python benchmarks/framing.py [--data ../shared/data/fer2013] [--limit 1500]
"""

from __future__ import annotations

import argparse
import itertools
import json

import cv2
import numpy as np

from emotrace.data import load_dataset, select_split
from emotrace.inference import EmotionClassifier, Framing
from emotrace.inference.detectors import YuNetDetector

SCALES = (0.9, 1.0, 1.1, 1.2, 1.3, 1.4)
SHIFTS = (-0.1, -0.05, 0.0, 0.05)


def embed(face: np.ndarray, zoom: int = 3, pad: int = 72) -> np.ndarray:
    big = cv2.resize(face, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/fer2013")
    parser.add_argument("--limit", type=int, default=1500, help="validation faces to use")
    parser.add_argument("--model", help="ONNX model (default: shipped)")
    args = parser.parse_args()

    faces = select_split(load_dataset(args.data), "val")
    rng = np.random.default_rng(0)
    index = np.sort(rng.permutation(len(faces))[: args.limit])
    classifier, detector = EmotionClassifier(args.model), YuNetDetector()
    framings = {f"scale {s:.2f}, shift {d:+.2f}": Framing(s, d)
                for s, d in itertools.product(SCALES, SHIFTS)}
    crops: dict[str, list[np.ndarray]] = {name: [] for name in framings}
    labels, reference = [], []
    for i in index:
        canvas = embed(faces.images[i])
        detections = detector.detect(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
        if not detections:
            continue
        best = max(detections, key=lambda d: d.score or 0)
        for name, framing in framings.items():
            crops[name].append(framing.crop(canvas, best.box, classifier.size))
        labels.append(faces.labels[i])
        reference.append(faces.images[i])
    labels = np.array(labels)
    ref_acc = float((classifier.predict_faces(reference).argmax(1) == labels).mean())
    rows = {name: float((classifier.predict_faces(batch).argmax(1) == labels).mean())
            for name, batch in crops.items()}
    print(f"faces: {len(index)}, detected by YuNet: {len(labels)} ({len(labels) / len(index):.1%})")
    print(f"reference (the FER crop itself): {ref_acc:.2%}")
    for name, acc in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"{name:<24} {acc:.2%}")
    print(json.dumps({"faces": len(index), "detected": len(labels), "reference": ref_acc,
                      "framings": rows}))


if __name__ == "__main__":
    main()
