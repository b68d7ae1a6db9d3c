"""How a model does on real faces: the muxspace dev set as crops, through the full pipeline
(YuNet + framing), under robustness slices, next to FER-2013 PublicTest, with `fer` as the peer.

    python benchmarks/realworld.py fast [accurate MODEL.onnx ...] [--fer-python FER_VENV/bin/python]
        [--out benchmarks/results/realworld.json] [--slices all|none|a,b] [--no-pipeline]

Prints, per model: accuracy, macro recall and the share of neutral faces read as angry or sad,
for the clean dev set (crops), every slice (and its drop from clean), the full pipeline on the
same photos, and FER-2013 PublicTest; then per-class recall, and exact McNemar tests of every
model against the first on the clean dev crops. The dev set is for validation and model choice
only (never training). PrivateTest is never read here (see compare_models.py --split test, and
record each read in benchmarks/results/privatetest_reads.md).

`fer` (Haar + mini-Xception, TensorFlow) runs in its own environment:
    python -m venv FER_VENV && FER_VENV/bin/pip install fer tensorflow-cpu "setuptools<81"
    FER_VENV/bin/pip install --force-reinstall --no-deps "opencv-contrib-python<5"
(fer imports pkg_resources, gone from setuptools 81; OpenCV 5, which fer pulls, has no Haar files.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realworld_slices import SLICES, degrade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "realworld" / "muxspace-dev"
FER2013 = ROOT.parent / "shared" / "data" / "fer2013"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NEUTRAL, ANGRY, SAD = CLASSES.index("neutral"), CLASSES.index("angry"), CLASSES.index("sad")
NO_FACE = -1  # the full pipeline found no face: counted as wrong


def load_dev(root: Path) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """The dev photos (BGR, as stored), their labels (FER codes) and names, in a fixed order."""
    images, labels, names = [], [], []
    for label, emotion in enumerate(CLASSES):
        for file in sorted((root / emotion).glob("*.jpg")):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f"{file}: not a readable image")
            images.append(image)
            labels.append(label)
            names.append(f"{emotion}/{file.name}")
    if not images:
        raise SystemExit(f"{root}: no photos in {'/'.join(CLASSES)} sub-folders")
    return images, np.array(labels), names


def scores(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, macro recall over the classes present, per-class recall, and the share of
    neutral faces read as angry or sad."""
    recall = {}
    for index, name in enumerate(CLASSES):
        mask = labels == index
        if mask.any():
            recall[name] = float((predicted[mask] == index).mean())
    neutral = labels == NEUTRAL
    return {"n": int(len(labels)), "accuracy": float((predicted == labels).mean()),
            "macro_recall": float(np.mean(list(recall.values()))), "recall": recall,
            "neutral_to_angry_sad": float(np.isin(predicted[neutral], (ANGRY, SAD)).mean())
            if neutral.any() else float("nan")}


def emotrace_predictions(model: str, images: list[np.ndarray], labels: np.ndarray,
                         slices: list[str], pipeline: bool, threads: int) -> dict:
    """Predictions of an emotrace model per condition (crops under each slice, pipeline)."""
    from emotrace.data import load_dataset, select_split
    from emotrace.inference import EmotionClassifier, Recognizer

    classifier = EmotionClassifier(model, threads=threads)
    out: dict[str, dict] = {"name": classifier.name}
    for name in slices:
        start = time.perf_counter()
        predicted = np.concatenate([
            classifier.predict_faces([degrade(images[i], name, i)
                                      for i in range(b, min(b + 128, len(images)))]).argmax(1)
            for b in range(0, len(images), 128)])
        out[f"crops/{name}"] = {**scores(labels, predicted), "predicted": predicted.tolist(),
                                "seconds": round(time.perf_counter() - start, 1)}
    if pipeline:
        recognizer = Recognizer(model, threads=threads)
        predicted = np.full(len(images), NO_FACE)
        for i, image in enumerate(images):
            faces = recognizer.recognize(image).faces
            if faces:
                largest = max(faces, key=lambda f: f.box[2] * f.box[3])
                predicted[i] = CLASSES.index(largest.emotion)
        found = predicted != NO_FACE
        out["pipeline/clean"] = {**scores(labels, predicted), "predicted": predicted.tolist(),
                                 "face_found": float(found.mean()),
                                 "accuracy_where_found": float(
                                     (predicted[found] == labels[found]).mean())}
    if FER2013.is_dir():
        faces = select_split(load_dataset(FER2013), "val")
        probs = np.concatenate([classifier.predict_faces(faces.images[b:b + 256])
                                for b in range(0, len(faces), 256)])
        out["fer2013/PublicTest"] = scores(faces.labels, probs.argmax(1))
    return out


def fer_predictions(python: str, data: Path, slices: list[str]) -> dict:
    """The `fer` package's predictions, from its own environment (benchmarks/fer_realworld.py)."""
    script = Path(__file__).with_name("fer_realworld.py")
    done = subprocess.run([python, str(script), str(data), ",".join(slices), str(FER2013)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"fer failed ({python}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rescore(raw: dict, labels: np.ndarray) -> dict:
    """Scores for predictions given as lists (fer's side gives predictions only)."""
    out = {"name": raw.pop("name")}
    for condition, value in raw.items():
        if isinstance(value, dict) and "labels" in value:  # FER-2013 split with its own labels
            out[condition] = scores(np.array(value["labels"]), np.array(value["predicted"]))
        else:
            predicted = np.array(value)
            out[condition] = {**scores(labels, predicted), "predicted": predicted.tolist()}
    return out


def print_table(results: list[dict]) -> None:
    conditions = [c for c in results[0] if "/" in c]
    for result in results:
        print(f"\n## {result['name']}")
        clean = result.get("crops/clean", {}).get("accuracy")
        print(f"{'condition':<24} {'acc':>7} {'macroR':>7} {'neu->ang/sad':>13} {'drop':>7}")
        for condition in conditions:
            row = result.get(condition)
            if row is None:
                continue
            drop = ("" if clean is None or not condition.startswith("crops/")
                    or condition == "crops/clean" else f"{100 * (clean - row['accuracy']):+.1f}")
            extra = (f"  (face found {row['face_found']:.1%}, acc where found "
                     f"{row['accuracy_where_found']:.1%})" if "face_found" in row else "")
            print(f"{condition:<24} {row['accuracy']:>7.1%} {row['macro_recall']:>7.1%} "
                  f"{row['neutral_to_angry_sad']:>13.1%} {drop:>7}{extra}")
        for condition in ("crops/clean", "pipeline/clean"):
            if condition in result:
                recall = ", ".join(f"{k} {v:.0%}" for k, v in result[condition]["recall"].items())
                print(f"per-class recall, {condition}: {recall}")


def card_section(result: dict, data: Path) -> dict:
    """The "real faces" section of a model card: dev set (crops and pipeline), slices, and the
    command that measures them again."""
    def short(row: dict) -> dict:
        return {k: round(row[k], 4) for k in ("accuracy", "macro_recall", "neutral_to_angry_sad")}

    clean = result["crops/clean"]["accuracy"]
    slices = {c.split("/", 1)[1]: round(r["accuracy"], 4) for c, r in result.items()
              if c.startswith("crops/") and c != "crops/clean"}
    section = {"dev_set": f"muxspace-dev ({data.name}, {result['crops/clean']['n']} web face photos)",
               "crops": {**short(result["crops/clean"]),
                         "recall": {k: round(v, 4) for k, v in result["crops/clean"]["recall"].items()}},
               "slices_accuracy": slices,
               "largest_slice_drop": round(max((clean - a for a in slices.values()), default=0.0), 4),
               "command": "python benchmarks/realworld.py MODEL"}
    if "pipeline/clean" in result:
        section["pipeline"] = {**short(result["pipeline/clean"]),
                               "face_found": round(result["pipeline/clean"]["face_found"], 4)}
    if "fer2013/PublicTest" in result:
        section["fer2013_publictest_accuracy"] = round(result["fer2013/PublicTest"]["accuracy"], 4)
    return section


def write_card(model: str, section: dict) -> Path:
    """Put ``section`` into the model's card as ``"real_faces"`` (atomically)."""
    from emotrace.inference.classifier import model_path
    from emotrace.utils import atomic_path

    card_path = model_path(model).with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["real_faces"] = section
    with atomic_path(card_path) as tmp:
        tmp.write_text(json.dumps(card, indent=2) + "\n")
    return card_path


def print_mcnemar(results: list[dict], labels: np.ndarray) -> None:
    from emotrace.evaluation.stats import mcnemar_exact, p_text

    base = results[0]
    for other in results[1:]:
        if "crops/clean" not in other or "crops/clean" not in base:
            continue
        test = mcnemar_exact(labels, np.array(base["crops/clean"]["predicted"]),
                             np.array(other["crops/clean"]["predicted"]))
        print(f"dev clean crops: right only by {base['name']}: {test.only_a}, only by "
              f"{other['name']}: {test.only_b}; exact McNemar {p_text(test.p_value)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped names or .onnx files with cards")
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--slices", default="all", help="all, none, or names: " + ",".join(SLICES))
    parser.add_argument("--no-pipeline", action="store_true", help="crops only")
    parser.add_argument("--fer-python", help="python of an environment with fer installed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="raw results (JSON, with every prediction)")
    parser.add_argument("--write-card", action="store_true",
                        help="put the results into each emotrace model's card (\"real_faces\")")
    args = parser.parse_args()
    slices = (list(SLICES) if args.slices == "all" else ["clean"] if args.slices == "none"
              else ["clean", *[s for s in args.slices.split(",") if s != "clean"]])
    unknown = [s for s in slices if s not in SLICES]
    if unknown:
        parser.error(f"unknown slices {unknown}; choose from {', '.join(SLICES)}")
    images, labels, names = load_dev(args.data)
    print(f"dev set {args.data}: {len(images)} photos, per class "
          + ", ".join(f"{c} {int((labels == i).sum())}" for i, c in enumerate(CLASSES)))
    results = [emotrace_predictions(m, images, labels, slices, not args.no_pipeline, args.threads)
               for m in args.models]
    if args.fer_python:
        results.append(rescore(fer_predictions(args.fer_python, args.data, slices), labels))
    print_table(results)
    print()
    print_mcnemar(results, labels)
    if args.write_card:
        for model, result in zip(args.models, results):
            print(f"card updated: {write_card(model, card_section(result, args.data))}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"data": str(args.data), "names": names,
                                        "labels": labels.tolist(), "results": results}))


if __name__ == "__main__":
    main()
