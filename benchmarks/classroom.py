"""A full classroom in real time: the 1080p lecture-hall clip (about 48 faces per frame) with the
default model, detecting and classifying every frame, or each tracked face every k-th frame,
against the `fer` package in the same run.

    python benchmarks/classroom.py --fer-python /tmp/fervenv/bin/python [--frames 180] [--repeat 2]
    python benchmarks/classroom.py --identity-cost [--clip vga] [--repeat 3]

``--identity-cost``: the cost of one id per person (cut detection + SFace embeddings), as the
ratio of frame rates with ``identify=True`` (the default) and ``identify=False`` (motion tracks
only, as before issue 26), in on/off pairs (medians of the per-pair ratios), with default
settings and with detect every 2nd / classify every 3rd frame, and as the main thread's CPU
time spent in re-identification itself; ``--clip vga`` uses the 640x480 clip of
``benchmarks/speed.py`` (300 frames, about 6 faces). Then the same frames through two
streams, with and without, taking turns frame by frame (load from other work cancels better).

For each configuration: steady-state frames/s (the first 30 frames left out), faces per frame
(against detecting and classifying every frame), and how often a face's label differs from
that reference. Then the per-frame cost of each stage, measured one stage at a time.
Pause other work first: this machine has 2 cores and the numbers are wall-clock times.
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
from emotrace.testing import write_lecture_hall, write_panning_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WARM_UP = 30  # frames left out of the steady-state rate (start-up, caches)
#: (label, Recognizer options); the first is the reference: every frame, in full.
CONFIGURATIONS = [
    ("detect + classify every frame", {}),
    ("classify each face every 3rd frame", {"classify_every": 3}),
    ("detect every 2nd, classify every 3rd", {"detect_every": 2, "classify_every": 3}),
    ("detect every 2nd, classify every 4th", {"detect_every": 2, "classify_every": 4}),
    ("detect every 3rd, classify every 3rd", {"detect_every": 3, "classify_every": 3}),
]


def run_emotrace(video: Path, csv_out: Path, options: dict, own_time: bool = False) -> dict:
    """Decode, detect, track, classify and write a CSV, as `emotrace predict --csv` does.
    ``own_time``: also measure the CPU time of the main thread spent in re-identification (the
    cut detector and the person gallery, SFace embeddings included) per steady-state frame."""
    recognizer = Recognizer(**options)
    own = {"seconds": 0.0, "wall": 0.0, "frame": 0}
    if own_time:
        make_stream = recognizer.stream

        def timed(*args, **kwargs):
            stream = make_stream(*args, **kwargs)
            own["gallery"] = stream.gallery
            for owner, name in ((stream, "cuts"), (stream.gallery, "update")):
                step = getattr(owner, name) if owner is not None else None
                if step is not None:
                    setattr(owner, name, _timed(step, own))
            return stream

        recognizer.stream = timed  # the instance's own attribute: nothing else is touched
    labels, stamps, cpu, thread = [], [], [], []
    start = time.perf_counter()
    with CsvSink(csv_out) as sink:
        for result in recognizer.predict(video, stream=True, sinks=[sink]):
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())
            thread.append(time.thread_time())
            labels.append([(face.box, face.emotion) for face in result.faces])
            own["frame"] += 1
    frames = len(stamps)
    steady = frames - WARM_UP
    return {"options": options, "frames": frames,
            "steady_cpu_ms": 1000 * (cpu[-1] - cpu[WARM_UP - 1]) / steady,
            "steady_thread_ms": 1000 * (thread[-1] - thread[WARM_UP - 1]) / steady,
            "own_thread_ms": 1000 * own["seconds"] / steady,
            "own_wall_ms": 1000 * own["wall"] / steady,
            "embeddings": own["gallery"].embeddings if own.get("gallery") else 0,
            "faces": sum(map(len, labels)), "seconds": stamps[-1] - start,
            "fps": frames / (stamps[-1] - start),
            "steady_fps": steady / (stamps[-1] - stamps[WARM_UP - 1]),
            "labels": labels}


def _timed(step, own: dict):
    """``step`` that adds its main-thread CPU time and its wall-clock time to ``own`` after the
    warm-up frames (OpenCV may run part of an embedding on a second thread: the wall-clock
    time bounds what it costs the frame rate, with whatever else runs on the machine)."""
    def call(*args, **kwargs):
        begin, wall = time.thread_time(), time.perf_counter()
        result = step(*args, **kwargs)
        if own["frame"] >= WARM_UP:
            own["seconds"] += time.thread_time() - begin
            own["wall"] += time.perf_counter() - wall
        return result
    return call


def iou(a: tuple, b: tuple) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def label_changes(reference: list, other: list) -> tuple[float, int]:
    """The share of faces whose label differs from the reference's for the same face (the box
    of the same frame that overlaps it most, IoU >= 0.5); and the number of faces compared."""
    compared = differ = 0
    for ref_faces, faces in zip(reference, other):
        for box, emotion in ref_faces:
            overlap, label = max(((iou(box, b), e) for b, e in faces), default=(0.0, None))
            if overlap >= 0.5:
                compared += 1
                differ += label != emotion
    return differ / max(compared, 1), compared


def stage_costs(video: Path) -> dict[str, float]:
    """Milliseconds per frame of each stage, run one after another on the decoded frames."""
    recognizer = Recognizer()
    capture, frames = cv2.VideoCapture(str(video)), []
    start = time.perf_counter()
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    costs = {"decode": time.perf_counter() - start, "detect": 0.0, "track": 0.0, "crop": 0.0,
             "classify": 0.0}
    stream = recognizer.video_stream()
    for frame in frames:
        t0 = time.perf_counter()
        detections = recognizer.detect(frame)
        t1 = time.perf_counter()
        stream.track([d.box for d in detections])
        t2 = time.perf_counter()
        crops = [recognizer.crop(frame, d) for d in detections]
        t3 = time.perf_counter()
        recognizer.classifier.predict_faces(crops)
        t4 = time.perf_counter()
        for stage, seconds in zip(("detect", "track", "crop", "classify"),
                                  (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            costs[stage] += seconds
    return {stage: 1000 * seconds / len(frames) for stage, seconds in costs.items()}


def run_fer(fer_python: str, video: Path, work: Path) -> dict:
    out = subprocess.run([fer_python, str(Path(__file__).with_name("fer_baseline.py")),
                          str(video), str(work / "fer.csv")], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def identity_cost(video: Path, work: Path, repeat: int) -> dict:
    """Frame rates with and without re-identification, run in pairs (off then on, on then off
    in the next pair: drift cancels); per pair the on/off ratio of steady-state frame rates and
    of CPU time per frame; medians over the pairs. The machine is shared and noisy, so also the
    main thread's CPU time spent in re-identification itself (cut detector + gallery), as a
    share of the main thread's CPU time per frame without it: the part of the cost that does
    not depend on what else runs; and the wall-clock time it took, as a share of the frame
    time without it."""
    settings = [("default", {}), ("detect 2, classify 3", {"detect_every": 2, "classify_every": 3})]
    pairs: dict[str, list[tuple[dict, dict]]] = {label: [] for label, _ in settings}
    for index in range(repeat):
        for label, options in settings:
            order = (False, True) if index % 2 == 0 else (True, False)
            runs = {identify: run_emotrace(video, work / "cost.csv",
                                           options | {"identify": identify}, own_time=identify)
                    for identify in order}
            pairs[label].append((runs[False], runs[True]))
    print(f"{'settings':<22}{'fps off':>9}{'on':>7}{'on/off fps':>12}{'IQR':>13}"
          f"{'CPU ms off':>12}{'on':>7}{'on/off CPU':>12}{'own ms':>8}{'own/off':>9}"
          f"{'own wall ms':>13}{'/ off':>7}{'embeds':>8}")
    summary = {}
    for label, _ in settings:
        off = [a for a, _ in pairs[label]]
        on = [b for _, b in pairs[label]]
        fps = np.array([b["steady_fps"] / a["steady_fps"] for a, b in pairs[label]])
        cpu = np.array([b["steady_cpu_ms"] / a["steady_cpu_ms"] for a, b in pairs[label]])
        own = np.median([b["own_thread_ms"] for b in on])
        main_off = np.median([a["steady_thread_ms"] for a in off])
        own_wall = np.median([b["own_wall_ms"] for b in on])
        frame_off = np.median([1000 / a["steady_fps"] for a in off])
        q1, q3 = np.percentile(fps, [25, 75])
        print(f"{label:<22}{np.median([a['steady_fps'] for a in off]):>9.1f}"
              f"{np.median([b['steady_fps'] for b in on]):>7.1f}{np.median(fps):>12.3f}"
              f"{f'{q1:.3f}-{q3:.3f}':>13}"
              f"{np.median([a['steady_cpu_ms'] for a in off]):>12.1f}"
              f"{np.median([b['steady_cpu_ms'] for b in on]):>7.1f}{np.median(cpu):>12.3f}"
              f"{own:>8.2f}{own / main_off:>9.3f}{own_wall:>13.2f}{own_wall / frame_off:>7.3f}"
              f"{np.median([b['embeddings'] for b in on]):>8.0f}")
        summary[label] = {"fps_ratio_median": float(np.median(fps)),
                          "fps_ratios": fps.round(4).tolist(),
                          "cpu_ratio_median": float(np.median(cpu)),
                          "cpu_ratios": cpu.round(4).tolist(),
                          "own_thread_ms": float(own), "main_thread_ms_off": float(main_off),
                          "own_wall_ms": float(own_wall), "frame_ms_off": float(frame_off),
                          "embeddings": [b["embeddings"] for b in on]}
    print(json.dumps(summary))
    return summary


def identity_cost_per_frame(video: Path, repeat: int) -> dict:
    """The same frames through two streams, one with re-identification and one without, taking
    turns frame by frame (which goes first alternates): both meet the same machine at the same
    moment, so load from other work cancels far better than between whole runs. Per setting,
    the ratio of the summed steady-state recognition times (on / off), and its spread over
    ``repeat`` passes. Decoding and writing are left out (the same for both): the ratio is
    that of the recognition step alone, so it overstates the cost to the whole frame rate."""
    settings = [("default", {}), ("detect 2, classify 3", {"detect_every": 2, "classify_every": 3})]
    capture, frames = cv2.VideoCapture(str(video)), []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    summary = {}
    print(f"{'settings':<22}{'ms/frame off':>14}{'on':>7}{'on/off time':>13}{'passes':>26}")
    for label, options in settings:
        ratios, off_ms, on_ms = [], [], []
        for _ in range(repeat):
            streams = {identify: Recognizer(**options, identify=identify).video_stream()
                       for identify in (False, True)}
            spent = {False: 0.0, True: 0.0}
            for index, frame in enumerate(frames):
                for identify in ((False, True) if index % 2 == 0 else (True, False)):
                    begin = time.perf_counter()
                    streams[identify].recognize(frame)
                    if index >= WARM_UP:
                        spent[identify] += time.perf_counter() - begin
            steady = len(frames) - WARM_UP
            off_ms.append(1000 * spent[False] / steady)
            on_ms.append(1000 * spent[True] / steady)
            ratios.append(spent[True] / spent[False])
        print(f"{label:<22}{np.median(off_ms):>14.1f}{np.median(on_ms):>7.1f}"
              f"{np.median(ratios):>13.3f}{' '.join(f'{r:.3f}' for r in ratios):>26}")
        summary[label] = {"time_ratio_median": float(np.median(ratios)),
                          "time_ratios": [round(r, 4) for r in ratios],
                          "off_ms": off_ms, "on_ms": on_ms}
    print(json.dumps(summary))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-python", help="python of an environment with fer + tensorflow-cpu")
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=2,
                        help="alternate runs; best of each (--identity-cost: on/off pairs)")
    parser.add_argument("--identity-cost", action="store_true",
                        help="frame rate with / without one id per person (issue 26)")
    parser.add_argument("--clip", choices=["hall", "vga"], default="hall",
                        help="1080p lecture hall (48 faces) or 640x480 pan (6 faces)")
    args = parser.parse_args()
    if args.frames <= WARM_UP:
        parser.error(f"--frames must be more than the {WARM_UP} warm-up frames")

    with tempfile.TemporaryDirectory(prefix="emotrace-classroom-") as tmp:
        work = Path(tmp)
        if args.clip == "vga":
            video = write_panning_video(SHARED / "testdata" / "face.jpg", work / "vga.mp4",
                                        frames=args.frames)
        else:
            video = write_lecture_hall(SHARED / "testdata" / "face.jpg", work / "hall.mp4",
                                       frames=args.frames)
        if args.identity_cost:
            print(f"clip: {args.clip}, {args.frames} frames; steady state = frames "
                  f"{WARM_UP + 1}-{args.frames}; {args.repeat} on/off pairs, medians")
            identity_cost(video, work, args.repeat)
            print("same frames, the two streams taking turns frame by frame "
                  f"({max(2, args.repeat // 2)} passes):")
            identity_cost_per_frame(video, max(2, args.repeat // 2))
            return
        best: dict[str, dict] = {}
        fer_runs = []
        for _ in range(args.repeat):
            for index, (label, options) in enumerate(CONFIGURATIONS):
                run = run_emotrace(video, work / f"{index}.csv", options)
                if label not in best or run["steady_fps"] > best[label]["steady_fps"]:
                    best[label] = run
            if args.fer_python:
                fer_runs.append(run_fer(args.fer_python, video, work))
        stages = stage_costs(video)

    reference = best[CONFIGURATIONS[0][0]]
    ref_faces = reference["faces"] / reference["frames"]
    print(f"clip: {args.frames} frames 1920x1080, {ref_faces:.1f} faces/frame; steady state = "
          f"frames {WARM_UP + 1}-{args.frames}; best of {args.repeat}; 2 CPU cores")
    print(f"{'emotrace (default model)':<44}{'fps':>7}{'faces/frame':>13}{'vs every':>10}"
          f"{'labels changed':>16}")
    summary = {"frames": args.frames, "stages_ms": stages, "runs": []}
    for name, run in best.items():
        faces = run["faces"] / run["frames"]
        changed, compared = label_changes(reference["labels"], run["labels"])
        print(f"{name:<44}{run['steady_fps']:>7.1f}{faces:>13.2f}"
              f"{100 * (faces / ref_faces - 1):>+9.1f}%{100 * changed:>15.1f}%")
        summary["runs"].append({k: v for k, v in run.items() if k != "labels"}
                               | {"labels_changed": changed, "faces_compared": compared})
    if fer_runs:
        fer = max(fer_runs, key=lambda r: r["steady_fps"])
        print(f"{'fer 25.10.3 (Haar + mini-Xception)':<44}{fer['steady_fps']:>7.1f}"
              f"{fer['faces'] / fer['frames']:>13.2f}")
        for name, run in best.items():
            print(f"speed-up over fer, {name}: {run['steady_fps'] / fer['steady_fps']:.1f}x")
        summary["fer"] = fer
    print("per frame, one stage at a time (ms): "
          + ", ".join(f"{stage} {ms:.1f}" for stage, ms in stages.items()))
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
