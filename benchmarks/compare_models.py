"""Two exported models on the same faces: each one's accuracy and an exact McNemar test.

Use it to decide between two candidates on PublicTest (``--split val``, the default), or to
report a decision already made on the test split (``--split test``: read PrivateTest only for
models that ship). Either model may be a shipped name (``fast``, ``accurate``) or an ``.onnx``
file with its card; an older version of a shipped file can be compared with
``git show REV:src/emotrace/assets/NAME.onnx > old.onnx`` (and its ``.json``).

    python benchmarks/compare_models.py MODEL_A MODEL_B [--split val|test] [--data DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emotrace.errors import EmotraceError
from emotrace.evaluation.evaluate import evaluate
from emotrace.evaluation.stats import mcnemar_exact, p_text
from emotrace.inference.classifier import EmotionClassifier

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013"))
    args = parser.parse_args()
    try:  # both models load before the first long evaluation, so a typo fails at once
        classifiers = [EmotionClassifier(m) for m in (args.model_a, args.model_b)]
        results = [evaluate(c, args.data, split=args.split) for c in classifiers]
    except EmotraceError as error:
        raise SystemExit(str(error)) from None
    labels = results[0].labels
    if not np.array_equal(labels, results[1].labels):
        raise SystemExit("the two evaluations saw different faces; nothing to pair")
    predictions = [r.predictions for r in results]
    for model, predicted in zip((args.model_a, args.model_b), predictions):
        print(f"{model}: {(predicted == labels).mean():.2%} on {args.split} (n = {len(labels)})")
    test = mcnemar_exact(labels, *predictions)
    print(f"right only by {args.model_a}: {test.only_a}, only by {args.model_b}: {test.only_b}; "
          f"exact McNemar {p_text(test.p_value)}")


if __name__ == "__main__":
    main()
