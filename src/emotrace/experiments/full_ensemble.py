"""The ensemble study where it matters: members trained on the full FER-2013 training split
(the shipped models and the models issue's members) and their ensembles, measured on PublicTest
and PrivateTest with per-image predictions (the report tests them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from emotrace.cards import ModelCard


SPLITS = ("val", "test")


def ensemble_card(members: list[Path], path: Path, scheme: str, name: str, data: str,
                  flip: bool = False) -> dict[str, Any]:
    """Build (once, cached at ``path``) and read the card of an ensemble, with its per-image
    predictions on PublicTest and PrivateTest."""
    from emotrace.training.ensemble import build_ensemble

    card_file, predictions = path.with_suffix(".json"), path.with_suffix(".predictions.json")
    if not (card_file.exists() and predictions.exists()):
        build_ensemble(members, path, weights=scheme, name=name, evaluate_splits=SPLITS,
                       flip_average=flip, predictions=predictions, data=data)
    card = ModelCard.read(path).to_dict()
    return {**card, "path": str(path), "predictions": json.loads(predictions.read_text())}


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:10]


def _data_key(data: str) -> str:
    """Cache keys include the dataset: the same models measured on other data are other numbers."""
    return hashlib.sha1(str(Path(data).resolve()).encode()).hexdigest()[:8]


def member_predictions(model: Path, data: str, cache: Path) -> dict[str, Any]:
    """Accuracy and per-image predictions of one model file on PublicTest and PrivateTest
    (cached by the file's content)."""
    from emotrace.evaluation import evaluate
    from emotrace.inference.classifier import EmotionClassifier

    file = cache / f"member-{model.stem}-{_digest(model)}-{_data_key(data)}.json"
    if file.exists():
        return json.loads(file.read_text())
    classifier = EmotionClassifier(model)
    result: dict[str, Any] = {"name": classifier.name, "path": str(model)}
    for split in SPLITS:
        evaluation = evaluate(classifier, data, split=split)
        result[split] = {"accuracy": float(np.mean(evaluation.predictions == evaluation.labels)),
                         "predictions": "".join(map(str, evaluation.predictions.tolist()))}
    cache.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(result))
    return result


def full_data_ensemble(members: list[str], cache: Path, data: str, schemes: list[str],
                       flip: bool = False) -> dict[str, Any]:
    """The numbers of the ensembles of models trained on the full training split: each member's
    and each ensemble's accuracy and per-image predictions on PublicTest and PrivateTest (the
    report writes the section and its tests), or which member files are missing."""
    from emotrace.data import load_dataset, select_split
    from emotrace.inference.classifier import model_path

    paths = [model_path(member) for member in members]
    missing = [member for member, path in zip(members, paths) if not path.is_file()]
    if missing or len(paths) < 2:
        return {"missing": missing}
    scored = [member_predictions(p, data, cache) for p in paths]
    identity = "".join(_digest(p) for p in paths) + _data_key(data)
    key = hashlib.sha1(identity.encode()).hexdigest()[:8]
    ensembles = {scheme: ensemble_card(paths, cache / f"full-{scheme}{'-flip' * flip}-{key}.onnx",
                                       scheme, f"full-data-{scheme}", data, flip)
                 for scheme in schemes}
    train = select_split(load_dataset(data), "train").labels
    labels = select_split(load_dataset(data), "test").labels
    return {"model": ensembles[schemes[0]]["path"], "flip": flip,
            "members": [{k: v for k, v in m.items() if k not in SPLITS} |
                        {s: m[s] for s in SPLITS} for m in scored],
            "chosen_member": max(scored, key=lambda m: m["val"]["accuracy"])["name"],
            "majority_test_acc": float(np.mean(labels == np.bincount(train).argmax())),
            "ensembles": {s: {k: v for k, v in c.items() if k != "metrics"} |
                          {"accuracy": {sp: c["metrics"][sp]["accuracy"] for sp in SPLITS}}
                          for s, c in ensembles.items()}}
