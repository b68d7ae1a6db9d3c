"""Which test-time views help the ensemble's members? (PublicTest only; never the test split.)

Each member of ``accurate`` classifies every PublicTest face as given, mirrored, and through
closer crops (the central 44 or 42 of the 48 pixels, and 44-pixel corner crops), each resized to
the member's input the one way emotrace resizes faces. Prints each view's accuracy per member,
then the three-member average over groups of views (arithmetic mean of probabilities).

    python benchmarks/tta_views.py [--data ../shared/data/fer2013]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from emotrace.data import load_dataset, select_split
from emotrace.inference import EmotionClassifier

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = {"MobileNetV2 96": "models/members/emotrace-mobilenetv2-96-member.onnx",
           "EfficientNet-Lite0 96": "models/members/emotrace-efficientnet-lite0-96-member.onnx",
           "MobileNetV2 112": "models/members/emotrace-mobilenetv2-112-member.onnx"}
#: (top, left, side) of each view in the 48-pixel FER crop
VIEWS = {"whole": (0, 0, 48), "centre 44": (2, 2, 44), "centre 42": (3, 3, 42),
         "top-left 44": (0, 0, 44), "top-right 44": (0, 4, 44), "bottom-left 44": (4, 0, 44),
         "bottom-right 44": (4, 4, 44)}
GROUPS = {"whole": ["whole"], "whole + centre 44": ["whole", "centre 44"],
          "five 44 crops": ["centre 44", "top-left 44", "top-right 44", "bottom-left 44",
                            "bottom-right 44"],
          "all seven": list(VIEWS)}


def view_probabilities(classifier: EmotionClassifier, faces: np.ndarray, view: tuple[int, int, int],
                       mirror: bool) -> np.ndarray:
    """The member's probabilities for one view of every face (resized to its input by the
    classifier, as in training)."""
    top, left, side = view
    crops = [np.ascontiguousarray((f[:, ::-1] if mirror else f)[top:top + side, left:left + side])
             for f in faces]
    return np.concatenate([classifier.predict_faces(crops[i:i + 256])
                           for i in range(0, len(crops), 256)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013"))
    args = parser.parse_args()
    public = select_split(load_dataset(args.data, 48), "val")
    probs: dict[tuple[str, str, bool], np.ndarray] = {}
    for member, path in MEMBERS.items():
        classifier = EmotionClassifier(ROOT / path)
        classifier.temperature = 1.0  # the members' own scores, as the ensemble averages them
        for name, view in VIEWS.items():
            for mirror in (False, True):
                p = view_probabilities(classifier, public.images, view, mirror)
                probs[member, name, mirror] = p
                print(f"{member:22s} {name:16s} {'mirrored' if mirror else 'as given':9s} "
                      f"{np.mean(p.argmax(1) == public.labels):.2%}", flush=True)
    for group, names in GROUPS.items():
        for mirrors in ((False,), (False, True)):
            mean = np.mean([probs[m, n, f] for m in MEMBERS for n in names for f in mirrors], axis=0)
            label = f"{group}{' + mirrors' if len(mirrors) == 2 else ''}"
            print(f"ensemble of three, {label:32s} {np.mean(mean.argmax(1) == public.labels):.2%}")


if __name__ == "__main__":
    main()
