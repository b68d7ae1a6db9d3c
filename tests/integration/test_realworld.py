"""Real faces: the robustness slices, the benchmark's scores, CLAHE input scaling (training and
inference the same way) and the real-footage augmentations."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotrace.data.images import equalize_face, resize_face
from emotrace.inference.classifier import EmotionClassifier, model_path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from realworld import card_section, scores  # noqa: E402
from realworld_slices import SLICES, degrade  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "emotrace" / "assets" / "samples" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    image = cv2.imread(str(SAMPLE))
    assert image is not None
    return cv2.resize(image[60:400, 80:420], (224, 224))


def test_slices_keep_the_shape_are_repeatable_and_degrade_as_named(face):
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(float)
    for name in SLICES:
        out = degrade(face, name, index=3)
        assert out.shape == face.shape and out.dtype == np.uint8, name
        assert np.array_equal(out, degrade(face, name, index=3)), name  # same pixels every run
    assert np.array_equal(degrade(face, "clean"), face)
    dark = cv2.cvtColor(degrade(face, "low_light", 0), cv2.COLOR_BGR2GRAY).astype(float)
    assert dark.mean() < 0.7 * grey.mean() and dark.std() < grey.std()
    warm = degrade(face, "warm_cast", 0).reshape(-1, 3).mean(axis=0)
    assert warm[0] < warm[2]  # blue below red: a tungsten tint
    sharpness = lambda image: cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()  # noqa: E731
    for name in ("blur", "small48", "small24"):
        assert sharpness(degrade(face, name, 0)) < 0.3 * sharpness(face), name
    assert sharpness(degrade(face, "small24", 0)) < sharpness(degrade(face, "small48", 0))
    left, right = degrade(face, "rotate20", 0), degrade(face, "rotate20", 1)
    assert not np.array_equal(left, right)  # +20 and -20 degrees alternate
    mouth = degrade(face, "occlude_mouth", 0)
    block = mouth[int(0.7 * 224):int(0.9 * 224), int(0.3 * 224):int(0.7 * 224)].astype(float)
    assert block.std() < 12 and np.array_equal(mouth[:100], face[:100])  # only the mouth hidden
    with pytest.raises(KeyError, match="unknown slice"):
        degrade(face, "fog")


def test_scores_count_neutral_faces_read_as_angry_or_sad():
    labels = np.array([6, 6, 6, 6, 3, 0])        # four neutral, one happy, one angry
    predicted = np.array([0, 4, 6, 3, 3, 0])     # neutral -> angry, sad, neutral, happy
    result = scores(labels, predicted)
    assert result["neutral_to_angry_sad"] == pytest.approx(0.5)
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["recall"] == {"angry": 1.0, "happy": 1.0, "neutral": 0.25}
    assert result["macro_recall"] == pytest.approx(0.75)  # over the classes present only
    section = card_section({"crops/clean": {**result, "n": 6},
                            "crops/blur": {**result, "accuracy": 0.25}}, Path("dev"))
    assert section["largest_slice_drop"] == pytest.approx(0.25)
    assert section["crops"]["neutral_to_angry_sad"] == 0.5


def test_clahe_scaling_is_applied_at_inference_as_the_card_says(tmp_path, face):
    shipped = model_path("fast")
    copy = tmp_path / "fast-clahe.onnx"
    shutil.copy(shipped, copy)
    card = json.loads(shipped.with_suffix(".json").read_text())
    card["input"]["scaling"] = "clahe"
    copy.with_suffix(".json").write_text(json.dumps(card))
    plain, equalised = EmotionClassifier("fast"), EmotionClassifier(copy)
    dim = degrade(face, "low_light", 0)
    expected = equalize_face(resize_face(cv2.cvtColor(dim, cv2.COLOR_BGR2GRAY), 96)) / 255.0
    assert np.allclose(equalised.preprocess([dim])[0, 0], expected, atol=1e-6)
    assert not np.allclose(plain.preprocess([dim]), equalised.preprocess([dim]))
    # equalising makes a dim face and the same face in good light look alike to the model
    gap = lambda c: np.abs(c.preprocess([dim]) - c.preprocess([face])).mean()  # noqa: E731
    assert gap(equalised) < 0.85 * gap(plain)


def test_real_footage_augmentations_and_clahe_in_training(face):
    torch = pytest.importorskip("torch")
    from emotrace.data.transforms import AugmentConfig, eval_transform, train_transform
    from emotrace.training.config import TrainConfig, load_config

    config = load_config("mobilenetv2-96-realworld")
    assert config.scaling == "clahe" and config.augment.degrade > 0 and config.augment.occlusion > 0
    with pytest.raises(Exception, match="scaling"):
        TrainConfig(scaling="histogram")
    stored = torch.from_numpy(cv2.resize(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), (48, 48))).unsqueeze(0)
    evaluated = eval_transform(96, "clahe")(stored)[0].numpy()
    assert np.allclose(evaluated, equalize_face(resize_face(stored[0].numpy(), 96)) / 255.0, atol=1e-6)
    strong = train_transform(96, AugmentConfig(hflip=False, rotation=0, shift=0, degrade=1.0,
                                               occlusion=1.0), "fixed")
    plain = train_transform(96, AugmentConfig(hflip=False, rotation=0, shift=0), "fixed")
    torch.manual_seed(0)
    first = strong(stored)
    torch.manual_seed(0)
    assert torch.equal(first, strong(stored))  # seeded like every other augmentation
    assert first.shape == (1, 96, 96) and first.dtype == torch.float32
    assert not torch.allclose(first, plain(stored))
