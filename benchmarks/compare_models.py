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
    results = {}
    for model in (args.model_a, args.model_b):
        result = evaluate(EmotionClassifier(model), args.data, split=args.split)
        predictions = result.probs.argmax(-1)
        results[model] = predictions
        print(f"{model}: {(predictions == result.labels).mean():.2%} on {args.split} "
              f"(n = {len(result.labels)})", flush=True)
    test = mcnemar_exact(result.labels, results[args.model_a], results[args.model_b])
    print(f"right only by A: {test.only_a}, only by B: {test.only_b}; exact McNemar "
          f"{p_text(test.p_value)}")


if __name__ == "__main__":
    main()
