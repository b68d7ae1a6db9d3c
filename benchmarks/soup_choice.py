"""Which weight-averaged network (model soup) of exported single models? (PublicTest only.)

The ingredients (``.onnx`` files with cards, one backbone, input and head, fine-tuned from one
start) are ranked by the PublicTest accuracy in their cards. For each form, plain average and
REPAIR-renormalised (``emotrace soup --repair``), it scores the uniform soup of all and the
greedy soup (Wortsman et al. 2022: best ingredient first, each next one kept only if the soup's
PublicTest accuracy does not fall). Every soup is exported with ``emotrace.training.soup`` and
measured on its own file, as ``emotrace soup`` would; files go to ``--out`` (default
``runs/soups``), named by a digest of the ingredients' contents, the data and the form.

    python benchmarks/soup_choice.py INGREDIENT.onnx INGREDIENT.onnx ... [--data DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from emotrace.errors import EmotraceError
from emotrace.cards import ModelCard
from emotrace.training.soup import build_soup

ROOT = Path(__file__).resolve().parents[1]


def label(path: str) -> str:
    """The model's name from its card, without the common prefix; runs exported under the
    default name (``RUN/model.onnx``, named ``model``) are told apart by their folder."""
    name = ModelCard.read(path).name.removeprefix("emotrace-")
    return f"{Path(path).parent.name}/{name}" if name == "model" else name


def soup_accuracy(ingredients: list[str], repaired: bool, out_dir: Path,
                  data: str | None) -> float:
    """The soup's PublicTest accuracy from its card; a soup already built from the same files
    (by content), data and form is not built again."""
    key = json.dumps([[hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in ingredients],
                      data, repaired])
    out = out_dir / (f"{'repair' if repaired else 'plain'}-{len(ingredients)}-"
                     f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.onnx")
    if not out.with_suffix(".json").exists():
        build_soup(ingredients, out, data=data, renormalise=repaired,
                   name=" + ".join(label(p) for p in ingredients),
                   command="python benchmarks/soup_choice.py")
    return json.loads(out.with_suffix(".json").read_text())["metrics"]["val"]["accuracy"]


def greedy(ranked: list[tuple[str, float]], repaired: bool, out_dir: Path,
           data: str | None) -> tuple[list[str], float]:
    kept, best = [ranked[0][0]], ranked[0][1]
    for path, _ in ranked[1:]:
        accuracy = soup_accuracy(kept + [path], repaired, out_dir, data)
        verdict = "kept" if accuracy >= best else "left out"
        print(f"    + {label(path)}: {accuracy:.2%} ({verdict})")
        if accuracy >= best:
            kept, best = kept + [path], accuracy
    return kept, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ingredients", nargs="+", metavar="MODEL.onnx")
    parser.add_argument("--data", help="dataset (default: the ingredients' training data)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "soups"),
                        help="folder for the soups' files and cards")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ranked = []
    for path in args.ingredients:
        accuracy = ModelCard.read(path).val_accuracy
        if accuracy is None:
            raise SystemExit(f"{path}: its card has no PublicTest (val) accuracy; export it first")
        ranked.append((path, accuracy))
    ranked.sort(key=lambda item: -item[1])
    for path, accuracy in ranked:
        print(f"{label(path):45s} {accuracy:.2%}")
    try:
        for repaired in (False, True):
            form = "REPAIR" if repaired else "plain"
            uniform = soup_accuracy([p for p, _ in ranked], repaired, out_dir, args.data)
            print(f"{form}: uniform soup of all {len(ranked)}: {uniform:.2%}")
            print(f"{form}: greedy soup")
            kept, best = greedy(ranked, repaired, out_dir, args.data)
            print(f"{form}: greedy soup = {' + '.join(label(p) for p in kept)}: {best:.2%}")
    except EmotraceError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
