"""In-process vs `predict --ray` (a local Ray with 1 and 2 workers) on FER-2013 test images and
videos: throughput and the fixed cost of starting Ray; and the 1080p lecture-hall clip with
`--every 5`, the per-core figure behind the README's scaling plan.

    python benchmarks/ray_scale.py [--images 2000] [--videos 4]

Every configuration writes the same CSV (checked). Pause other work first: this machine has 2
cores and the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emotrace.testing import write_lecture_hall, write_panning_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def emotrace(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "emotrace.cli.main", *args], capture_output=True,
                         text=True)
    if run.returncode not in (0, 1):
        raise RuntimeError(run.stderr[-2000:])
    return time.perf_counter() - start, run.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--videos", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "inputs"
        root.mkdir()
        files = sorted((SHARED / "data" / "fer2013" / "test").rglob("PrivateTest_*.jpg"))
        for file in files[:: max(1, len(files) // args.images)][: args.images]:
            os.symlink(file, root / file.name)
        for i in range(args.videos):
            write_panning_video(SHARED / "testdata" / "face.jpg", root / f"video{i}.mp4",
                                frames=150, step=1)
        one = Path(tmp) / "one"
        one.mkdir()
        os.symlink(SHARED / "testdata" / "face.jpg", one / "face.jpg")
        frames = args.images + 150 * args.videos
        rows = []
        outputs = {}
        for label, extra in (("in-process", []), ("--ray, local, 1 worker", ["--ray", "--workers", "1"]),
                             ("--ray, local, 2 workers", ["--ray", "--workers", "2"])):
            csv = Path(tmp) / f"{len(rows)}.csv"
            seconds, _ = emotrace("predict", str(root), "--detector", "yunet", "--csv", str(csv), *extra)
            start_cost, _ = emotrace("predict", str(one), *extra)
            outputs[label] = csv.read_text()
            rows.append((label, seconds, frames / seconds, start_cost))
        same = len(set(outputs.values())) == 1
        hall = write_lecture_hall(SHARED / "testdata" / "face.jpg", Path(tmp) / "hall.mp4")
        hall_s, _ = emotrace("predict", str(hall), "--every", "5", "--csv", str(Path(tmp) / "h.csv"))
    print(f"{args.images} FER-2013 PrivateTest images (48x48) + {args.videos} videos of 150 "
          f"frames (640x480): {frames} images/frames; 2 CPU cores")
    print(f"{'configuration':<26}{'seconds':>9}{'frames/s':>10}{'one photo, s':>14}")
    for label, seconds, rate, start_cost in rows:
        print(f"{label:<26}{seconds:>9.1f}{rate:>10.1f}{start_cost:>14.1f}")
    print(f"same CSV from every configuration: {same}")
    print(f"1080p lecture hall (about 48 faces), 150 frames, --every 5, in-process: "
          f"{hall_s:.1f} s = {150 / hall_s:.1f} video frames/s on 2 cores "
          f"(start-up included)")


if __name__ == "__main__":
    main()
