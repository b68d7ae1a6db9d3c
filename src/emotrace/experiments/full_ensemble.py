"""The ensemble study where it matters: members trained on the full FER-2013 training split
(the shipped models and the models issue's members), their ensembles, and exact McNemar tests of
each ensemble against the member a user would pick on PublicTest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from emotrace.evaluation.stats import mcnemar_exact, p_text

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
    card = json.loads(card_file.read_text())
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


def _predicted(digits: str) -> np.ndarray:
    return np.frombuffer(digits.encode(), np.uint8) - ord("0")


def full_data_ensemble(members: list[str], cache: Path, data: str, schemes: list[str],
                       flip: bool = False) -> dict[str, Any] | None:
    """The report section (``text``) and its numbers, or a section saying which member files
    are missing and how to make them."""
    from emotrace.data import load_dataset, select_split
    from emotrace.inference.classifier import model_path

    paths = [model_path(member) for member in members]
    missing = [member for member, path in zip(members, paths) if not path.is_file()]
    if missing or len(paths) < 2:
        return {"text": "## Members trained on the full training split\n\nNot run: missing "
                        f"member file(s) {', '.join(missing)}; train and export them (see the "
                        "README's model section) and run the study again.", "missing": missing}
    labels = select_split(load_dataset(data), "test").labels
    scored = [member_predictions(p, data, cache) for p in paths]
    chosen = max(scored, key=lambda m: m["val"]["accuracy"])  # as a user would: on PublicTest
    identity = "".join(_digest(p) for p in paths) + _data_key(data)
    key = hashlib.sha1(identity.encode()).hexdigest()[:8]
    ensembles = {scheme: ensemble_card(paths, cache / f"full-{scheme}{'-flip' * flip}-{key}.onnx",
                                       scheme, f"full-data-{scheme}", data, flip)
                 for scheme in schemes}
    rows = [[m["name"], f"{m['val']['accuracy']:.2%}", f"{m['test']['accuracy']:.2%}"]
            for m in scored]
    tests, sentences = {}, []
    for scheme, card in ensembles.items():
        mine = _predicted(card["predictions"]["test"])
        test = mcnemar_exact(labels, mine, _predicted(chosen["test"]["predictions"]))
        gain = (card["metrics"]["test"]["accuracy"] - chosen["test"]["accuracy"]) * 100
        tests[scheme] = {**test.as_dict(), "gain_points": gain}
        rows.append([f"**ensemble ({scheme} weights{', flip-averaged' if flip else ''})**",
                     f"{card['metrics']['val']['accuracy']:.2%}",
                     f"**{card['metrics']['test']['accuracy']:.2%}**"])
        sentences.append(
            f"- ensemble ({scheme}) − {chosen['name']} (the member with the best PublicTest "
            f"accuracy): {gain:+.2f} points on PrivateTest; exact McNemar on the same "
            f"{len(labels)} images: {test.only_a} right only by the ensemble, {test.only_b} only "
            f"by the member, {p_text(test.p_value)}.")
    majority = int(np.bincount(select_split(load_dataset(data), "train").labels).argmax())
    rows.append(["majority class", "", f"{np.mean(labels == majority):.2%}"])
    table = ["| model | PublicTest | PrivateTest |", "|---|---|---|",
             *["| " + " | ".join(row) + " |" for row in rows]]
    text = "\n".join([
        "## Members trained on the full training split", "",
        f"{len(paths)} models trained on all 28,709 training faces (the shipped `fast` model and "
        "the models issue's members, one seed each: a full-data run costs 1–2 hours on this "
        "CPU, so the seed-to-seed spread is measured at the study budget below, not here). "
        "Weights and the member a user would pick come from PublicTest only"
        f"{'; every ensemble averages each face with its mirror image' if flip else ''}.", "",
        *table, "", *sentences, ""])
    return {"text": text, "model": ensembles[schemes[0]]["path"],
            "members": [{k: v for k, v in m.items() if k not in SPLITS} |
                        {s: m[s] for s in SPLITS} for m in scored],
            "chosen_member": chosen["name"],
            "ensembles": {s: {k: v for k, v in c.items() if k != "metrics"} |
                          {"accuracy": {sp: c["metrics"][sp]["accuracy"] for sp in SPLITS}}
                          for s, c in ensembles.items()},
            "tests_vs_chosen_member": tests}
