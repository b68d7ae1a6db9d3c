"""Video jobs against the CLI on the same clip, in the same run (issue 29, item 3).

    python benchmarks/job_speed.py [--rounds 3] [--frames 300]

1. Encoders alone: 300 annotated-size frames (640x480) through OpenCV's VP9 and VP8 writers and
   PyAV's VP9, VP8 (realtime settings) and H.264 (ultrafast), frames per second.
2. The same 640x480 clip as `emotrace predict CLIP --save OUT` (a process per run, start-up
   included) and as a job of a running `emotrace serve` (POST to done, the server already up),
   with and without the annotated video; rounds alternate so a busy machine slows all alike.
Prints one table; raw output: benchmarks/results/job_speed.txt.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx

from emotrace.testing import free_port, write_panning_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLI = [sys.executable, "-m", "emotrace.cli.main"]


def encoder_fps(frames: list, folder: Path) -> dict[str, float]:
    """Frames per second of each encoder over ``frames``."""
    import av

    def opencv(fourcc: str, name: str) -> float:
        started = time.perf_counter()
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*fourcc), 30,
                                 (640, 480))
        for frame in frames:
            writer.write(frame)
        writer.release()
        return len(frames) / (time.perf_counter() - started)

    def pyav(codec: str, name: str, options: dict[str, str]) -> float:
        started = time.perf_counter()
        with av.open(str(folder / name), "w") as container:
            stream = container.add_stream(codec, rate=30, options=options)
            stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
            container.mux(stream.encode())
        return len(frames) / (time.perf_counter() - started)

    realtime = {"deadline": "realtime", "cpu-used": "8", "b": "2M"}
    return {"OpenCV VP9 (VP90, WebM)": opencv("VP90", "a.webm"),
            "OpenCV VP8 (VP80, WebM)": opencv("VP80", "b.webm"),
            "PyAV VP9 realtime (WebM, chosen)": pyav("libvpx-vp9", "c.webm",
                                                    {**realtime, "row-mt": "1"}),
            "PyAV VP8 realtime (WebM)": pyav("libvpx", "d.webm", realtime),
            "PyAV H.264 ultrafast (MP4)": pyav("libx264", "e.mp4", {"preset": "ultrafast"})}


def cli_seconds(clip: Path, out: Path) -> float:
    started = time.perf_counter()
    run = subprocess.run([*CLI, "predict", str(clip), "--save", str(out)], capture_output=True,
                         text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return time.perf_counter() - started


def job_seconds(base: str, clip: Path, annotate: bool) -> float:
    started = time.perf_counter()
    job = httpx.post(f"{base}/v1/jobs", params={"annotate": str(annotate).lower()},
                     files={"file": (clip.name, clip.read_bytes(), "video/mp4")},
                     timeout=60).json()
    while True:
        state = httpx.get(f"{base}/v1/jobs/{job['id']}").json()
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    if state["status"] != "done":
        raise RuntimeError(state["error"])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = write_panning_video(SHARED / "testdata" / "face.jpg", folder / "clip.mp4",
                                   frames=args.frames, step=1)
        capture = cv2.VideoCapture(str(clip))
        frames = []
        while (read := capture.read())[0]:
            frames.append(read[1])
        print(f"clip: 640x480, {len(frames)} frames, 4 faces a frame (face.jpg tiled)")
        print("\nencoder alone, frames/s:")
        for name, fps in encoder_fps(frames, folder).items():
            print(f"  {name:34s} {fps:7.1f}")
        port = free_port()
        server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--data-dir",
                                   str(folder / "data")], stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if server.poll() is not None:
                        raise RuntimeError(server.stderr.read())
                    time.sleep(0.2)
            times: dict[str, list[float]] = {"cli": [], "job": [], "job_no_video": []}
            for round_ in range(args.rounds):  # alternate: the machine is shared
                times["cli"].append(cli_seconds(clip, folder / f"out{round_}"))
                times["job"].append(job_seconds(base, clip, annotate=True))
                times["job_no_video"].append(job_seconds(base, clip, annotate=False))
        finally:
            server.terminate()
            server.wait(60)
    cli = statistics.median(times["cli"])
    print(f"\nseconds per run, median of {args.rounds} alternated rounds (all runs: "
          + ", ".join(f"{k} {[round(t, 1) for t in v]}" for k, v in times.items()) + ")")
    print(f"  CLI predict --save (start-up included)   {cli:6.1f}   1.00x")
    for key, label in (("job", "job, annotated WebM (POST to done)"),
                       ("job_no_video", "job, annotate=false")):
        value = statistics.median(times[key])
        print(f"  {label:40s} {value:6.1f}   {value / cli:.2f}x")


if __name__ == "__main__":
    main()
