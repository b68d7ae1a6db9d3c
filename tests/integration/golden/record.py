"""Record the golden outputs of a shipped model (run once per shipped model, then commit).

    python tests/integration/golden/record.py [fast|accurate]

Writes ``tests/integration/golden/<model>.json``: the probabilities of 14 fixed FER-2013 PrivateTest crops
(the first two of each class, in file order, that the model gets right) and the faces of
``face.jpg`` through the whole pipeline (YuNet, framing, classifier).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared"
CROPS_PER_CLASS = 2


def main(model: str = "fast") -> Path:
    from emotrace import EMOTIONS, Recognizer
    from emotrace.data import read_face_image
    from emotrace.inference import EmotionClassifier

    classifier = EmotionClassifier(model)
    crops = []
    for label in EMOTIONS:
        files = sorted((SHARED / "data" / "fer2013" / "test" / label).glob("PrivateTest_*.jpg"))
        chosen = 0
        for file in files:
            probs = classifier.predict_faces([read_face_image(file, 48)])[0]
            if EMOTIONS[int(probs.argmax())] == label:
                crops.append({"file": str(file.relative_to(SHARED)), "label": label,
                              "probs": [round(float(p), 5) for p in probs]})
                chosen += 1
                if chosen == CROPS_PER_CLASS:
                    break
    photo = Recognizer(classifier.path).predict(SHARED / "testdata" / "face.jpg")[0]
    out = HERE / f"{classifier.name}.json"
    out.write_text(json.dumps({
        "model": classifier.name, "shipped": model, "crops": crops,
        "photo": {"file": "testdata/face.jpg",
                  "faces": [{"box": list(f.box), "emotion": f.emotion,
                             "probs": [f.scores[e] for e in EMOTIONS]} for f in photo.faces]},
    }, indent=1) + "\n")
    return out


if __name__ == "__main__":
    print(main(*sys.argv[1:2]))
