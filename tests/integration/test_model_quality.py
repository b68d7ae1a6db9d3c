"""Tests that fail when the shipped model is wrong, not only when the code crashes: golden
outputs on real faces, an accuracy floor on a fixed PrivateTest slice, and one preprocessing
path for `predict --detector none` and `evaluate`. Plain install only (no torch)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import FER, SHARED, TESTDATA
from emotrace import EMOTIONS, Recognizer
from emotrace.data import read_face_image
from emotrace.evaluation import evaluate
from emotrace.inference import EmotionClassifier

GOLDEN = Path(__file__).parent / "golden"
TOLERANCE = 2e-3  # onnxruntime versions differ in the last digits, never by more
#: The fixed slice: every 4th PrivateTest image of each class in file order (899 faces).
SLICE_STEP = 4
#: Measured when the golden files were recorded: fast 67.74%, accurate 70.19% on the slice (the
#: cards: 69.32% and 71.19% on all 3,589 PrivateTest faces; the slice's own sampling explains the
#: gap). One point lost fails.
ACCURACY_FLOOR = {"emotrace-mobilenetv2-fer2013": 0.6674, "emotrace-accurate-fer2013": 0.6919}


def golden_files():
    return sorted(GOLDEN.glob("*.json"))


@pytest.fixture(scope="module")
def privatetest_slice(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("privatetest_slice")
    for label in EMOTIONS:
        (root / label).mkdir()
        files = sorted((FER / "test" / label).glob("PrivateTest_*.jpg"))[::SLICE_STEP]
        for file in files:
            os.symlink(file, root / label / file.name)
    return root


@pytest.mark.parametrize("golden", golden_files(), ids=lambda p: p.stem)
def test_golden_probabilities_on_fixed_face_crops(golden):
    expected = json.loads(golden.read_text())
    classifier = EmotionClassifier(expected["shipped"])
    assert classifier.name == expected["model"]
    crops = [read_face_image(SHARED / c["file"], 48) for c in expected["crops"]]
    probs = classifier.predict_faces(crops)
    assert len(crops) >= 10
    for crop, got in zip(expected["crops"], probs):
        assert EMOTIONS[int(got.argmax())] == crop["label"], crop["file"]
        np.testing.assert_allclose(got, crop["probs"], atol=TOLERANCE, err_msg=crop["file"])


@pytest.mark.parametrize("golden", golden_files(), ids=lambda p: p.stem)
def test_golden_faces_of_a_real_photo_through_the_whole_pipeline(golden):
    golden = json.loads(golden.read_text())
    expected = golden["photo"]
    result = Recognizer(golden["shipped"]).predict(TESTDATA / "face.jpg")[0]
    assert [list(f.box) for f in result.faces] == [f["box"] for f in expected["faces"]]
    assert [f.emotion for f in result.faces] == [f["emotion"] for f in expected["faces"]]
    for face, want in zip(result.faces, expected["faces"]):
        np.testing.assert_allclose([face.scores[e] for e in EMOTIONS], want["probs"],
                                   atol=TOLERANCE)


@pytest.fixture(scope="module")
def slice_evaluation(privatetest_slice):
    """A shipped model's evaluation on the slice, made once (899 faces; the accurate ensemble
    takes most of this file's time) for every test that reads it."""
    done = {}

    def evaluation(shipped: str):
        if shipped not in done:
            classifier = EmotionClassifier(shipped)
            done[shipped] = classifier, evaluate(classifier, privatetest_slice)
        return done[shipped]

    return evaluation


@pytest.mark.parametrize("shipped", ["fast", "accurate"])
def test_accuracy_floor_on_a_fixed_privatetest_slice(slice_evaluation, shipped):
    classifier, result = slice_evaluation(shipped)
    summary = result.summary()
    assert summary["n"] == 899 and summary["skipped"] == 0
    assert summary["accuracy"] >= ACCURACY_FLOOR[classifier.name]
    # every class is recognised well above chance, not only the frequent ones
    assert min(row["recall"] for row in summary["per_class"].values()) > 0.35


def test_detector_none_classifies_exactly_like_evaluate(privatetest_slice, slice_evaluation):
    files = sorted(privatetest_slice.rglob("*.jpg"))[::7]
    results = Recognizer(detector="none").predict(files)
    _, evaluation = slice_evaluation("fast")  # the default model
    by_file = dict(zip(sorted(privatetest_slice.rglob("*.jpg")), evaluation.probs))
    assert [r.faces[0].box for r in results] == [(0, 0, 48, 48)] * len(files)
    for file, result in zip(files, results):
        scores = [result.faces[0].scores[e] for e in EMOTIONS]
        np.testing.assert_allclose(scores, by_file[file], atol=1e-4)
