"""End-to-end speed: emotrace vs the `fer` package on the same video, same machine, same run.

The clip: ../shared/testdata/face.jpg tiled 2x2 and panned a pixel per frame, 640x480, 300 frames
(about 6 faces per frame). Each tool decodes, detects, classifies and writes a CSV of faces.
Also times the classification of one face crop (batch of 1) for both.

    python benchmarks/speed.py --fer-python /tmp/fervenv/bin/python [--frames 300] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from emotrace import Recognizer
from emotrace.inference.sinks import CsvSink
from emotrace.testing import write_panning_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def run_emotrace(video: Path, csv_out: Path) -> dict:
    recognizer = Recognizer()
    frames = faces = 0
    start = time.perf_counter()
    with CsvSink(csv_out) as sink:
        for result in recognizer.predict(video, stream=True, sinks=[sink]):
            frames += 1
            faces += len(result.faces)
    seconds = time.perf_counter() - start
    return {"frames": frames, "faces": faces, "seconds": seconds, "fps": frames / seconds}


def classify_ms(crop: np.ndarray, runs: int = 200) -> dict:
    classifier = Recognizer().classifier
    for _ in range(10):
        classifier.predict_faces([crop])
    start = time.perf_counter()
    for _ in range(runs):
        classifier.predict_faces([crop])
    single = (time.perf_counter() - start) / runs * 1000
    batch = [crop] * 6
    start = time.perf_counter()
    for _ in range(runs // 4):
        classifier.predict_faces(batch)
    batched = (time.perf_counter() - start) / (runs // 4) / len(batch) * 1000
    return {"classify_ms_per_face": single, "classify_ms_per_face_batched6": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-python", help="python of an environment with fer + tensorflow-cpu")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2, help="alternate runs; best of each")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="emotrace-speed-"))
    video = write_panning_video(SHARED / "testdata" / "face.jpg", work / "clip.mp4",
                                frames=args.frames, step=1)
    image = cv2.imread(str(SHARED / "testdata" / "grace_hopper.bmp"))
    face = Recognizer().predict(image)[0].faces[0].box
    x, y, w, h = face
    crop_path = work / "crop.png"
    cv2.imwrite(str(crop_path), image[y:y + h, x:x + w])

    ours, theirs = [], []
    for _ in range(args.repeat):
        ours.append(run_emotrace(video, work / "emotrace.csv"))
        if args.fer_python:
            out = subprocess.run([args.fer_python, str(Path(__file__).with_name("fer_baseline.py")),
                                  str(video), str(work / "fer.csv"), str(crop_path)],
                                 capture_output=True, text=True, check=True)
            theirs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = max(ours, key=lambda r: r["fps"])
    best.update(classify_ms(cv2.imread(str(crop_path))))
    print(f"clip: {args.frames} frames 640x480, {best['faces'] / best['frames']:.1f} faces/frame "
          f"(emotrace/YuNet)")
    print(f"{'tool':<34}{'fps':>8}{'ms/face (1 crop)':>18}{'faces/frame':>13}")
    print(f"{'emotrace (YuNet + MobileNetV2)':<34}{best['fps']:>8.1f}"
          f"{best['classify_ms_per_face']:>18.2f}{best['faces'] / best['frames']:>13.1f}")
    if theirs:
        fer = max(theirs, key=lambda r: r["fps"])
        print(f"{'fer 25.10.3 (Haar + mini-Xception)':<34}{fer['fps']:>8.1f}"
              f"{fer['classify_ms_per_face']:>18.2f}{fer['faces'] / fer['frames']:>13.1f}")
        print(f"speed-up: {best['fps'] / fer['fps']:.2f}x frames per second")
        best["fer"] = fer
    print(f"batched, 6 faces: {best['classify_ms_per_face_batched6']:.2f} ms per face")
    print(json.dumps(best))


if __name__ == "__main__":
    sys.exit(main())
