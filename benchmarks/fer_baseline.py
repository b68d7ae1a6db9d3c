"""The `fer` package's side of benchmarks/speed.py; runs in a separate environment with fer and
tensorflow-cpu installed (never a dependency of emotrace). Prints one JSON object.

    FER_PYTHON/bin/python benchmarks/fer_baseline.py VIDEO CSV_OUT
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fer.fer import FER  # noqa: E402

#: Frames left out of the steady-state rate (start-up, caches), as in benchmarks/classroom.py.
WARM_UP = 30


def main(video: str, csv_out: str) -> None:
    detector = FER(mtcnn=False)  # Haar cascade + mini-Xception, fer's default
    # its Video class calls cv2.waitKey (absent in headless OpenCV): time detect_emotions in our loop
    capture = cv2.VideoCapture(video)
    frames = faces = 0
    start = steady = time.perf_counter()
    with open(csv_out, "w", newline="") as handle:
        writer = csv.writer(handle)
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            for face in detector.detect_emotions(frame):
                writer.writerow([frames, *face["box"], *face["emotions"].values()])
                faces += 1
            frames += 1
            if frames == WARM_UP:
                steady = time.perf_counter()
    end = time.perf_counter()
    seconds = end - start
    steady_fps = (frames - WARM_UP) / (end - steady) if frames > WARM_UP else None
    crop = np.ascontiguousarray(cv2.imread(sys.argv[3]) if len(sys.argv) > 3 else
                                np.full((96, 96, 3), 128, np.uint8))
    box = [(0, 0, crop.shape[1], crop.shape[0])]
    for _ in range(5):
        detector.detect_emotions(crop, face_rectangles=box)
    runs = 50
    t0 = time.perf_counter()
    for _ in range(runs):
        detector.detect_emotions(crop, face_rectangles=box)
    per_face_ms = (time.perf_counter() - t0) / runs * 1000
    print(json.dumps({"frames": frames, "faces": faces, "seconds": seconds,
                      "fps": frames / seconds, "steady_fps": steady_fps,
                      "classify_ms_per_face": per_face_ms}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
