"""Peak memory of `emotrace evaluate` by model and batch size (issue 29, item 14).

    python benchmarks/memory.py [--data ../shared/data/realworld/muxspace-dev] [--small 927]

Each configuration runs in a fresh process that evaluates the dataset through the public API and
reports its own peak resident memory (VmHWM, counted from exec), the time per face and the
metrics. Configurations: each shipped model with the old fixed batch of 256 faces, with the
batch bounded by the model's memory (`batch_size_for`, the default now), and with that batch and
onnxruntime's CPU memory arena turned off; on the first `--small` faces of the dataset and on all
of it (the bound must not depend on the dataset's size). Raw output:
benchmarks/results/memory.txt.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CHILD = r"""
import json, re, sys, time
from emotrace.evaluation.evaluate import batch_size_for, evaluate
from emotrace.inference.classifier import EmotionClassifier, onnxruntime
model, data, batch, arena = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "on"
classifier = EmotionClassifier(model)
if not arena:  # the same session options, CPU arena off
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False
    classifier.session = ort.InferenceSession(str(classifier.path), options,
                                              providers=["CPUExecutionProvider"])
batch = batch_size_for(classifier) if batch == "auto" else int(batch)
started = time.perf_counter()
result = evaluate(classifier, data, batch_size=batch)
seconds = time.perf_counter() - started
summary = result.summary()
peak = int(re.search(r"VmHWM:\s*(\d+)", open("/proc/self/status").read())[1]) / 1024
print(json.dumps({"batch": batch, "peak_mb": peak, "ms_per_face": 1000 * seconds / summary["n"],
                  "n": summary["n"], "accuracy": summary["accuracy"],
                  "macro_f1": summary["macro_f1"]}))
"""


def subset(data: Path, count: int, folder: Path) -> Path:
    """The first ``count`` images of a class-folder dataset (sorted, round robin over classes)."""
    classes = sorted(p for p in data.iterdir() if p.is_dir())
    files = {c: sorted(f for f in c.iterdir() if f.is_file()) for c in classes}
    taken = 0
    while taken < count and any(files.values()):
        for c in classes:
            if files[c] and taken < count:
                target = folder / c.name
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(files[c].pop(0), target)
                taken += 1
    return folder


def measure(model: str, data: Path, batch: str, arena: str) -> dict:
    run = subprocess.run([sys.executable, "-c", CHILD, model, str(data), batch, arena],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "realworld" / "muxspace-dev")
    parser.add_argument("--small", type=int, default=927)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {"small": subset(args.data, args.small, Path(tmp) / "small"),
                    "all": args.data}
        print(f"{'model':9s} {'faces':>6s} {'batch':>6s} {'arena':>5s} {'peak MB':>8s} "
              f"{'ms/face':>8s} {'accuracy':>9s} {'macro F1':>9s}")
        for model in ("fast", "accurate"):
            for name, data in datasets.items():
                rows = [("256", "on"), ("auto", "on"), ("auto", "off")]
                if name == "all":
                    rows = [("auto", "on")]
                for batch, arena in rows:
                    r = measure(model, data, batch, arena)
                    print(f"{model:9s} {r['n']:6d} {r['batch']:6d} {arena:>5s} "
                          f"{r['peak_mb']:8.0f} {r['ms_per_face']:8.1f} {r['accuracy']:9.4f} "
                          f"{r['macro_f1']:9.4f}", flush=True)


if __name__ == "__main__":
    main()
