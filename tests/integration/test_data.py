import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import CLASSES
from emotrace.data import (DatasetError, UnknownEmotionError, emotion_index, load_dataset,
                           select_split, split_dataset)


@pytest.mark.parametrize("name, code", [("angry", 0), ("Happy", 3), ("surprised", 5),
                                        ("FEARFUL", 2), ("0", 0), ("6", 6), ("sadness", 4)])
def test_class_names_map_to_fer_codes(name, code):
    assert emotion_index(name) == code


def test_unknown_class_name_lists_the_accepted_ones():
    with pytest.raises(UnknownEmotionError, match="contempt.*angry"):
        emotion_index("contempt")
    with pytest.raises(UnknownEmotionError):
        emotion_index("7")


def test_one_dataset_named_two_ways_is_decoded_once(fer_slice, monkeypatch, tmp_path):
    """'../shared/x' from the checkout and '/work/shared/x' are one cache entry: the report
    rebuild (paths as recorded) paid 19 s decoding FER-2013 again."""
    import emotrace.data.datasets as datasets

    monkeypatch.setenv("EMOTRACE_CACHE", str(tmp_path / "cache"))
    first = load_dataset(fer_slice)
    monkeypatch.chdir(fer_slice.parent)
    monkeypatch.setattr(datasets, "_decode_files", lambda *_: pytest.fail("decoded again"))
    relative = f"../{fer_slice.parent.name}/{fer_slice.name}"
    again = load_dataset(relative)
    assert np.array_equal(again.images, first.images)
    assert again.sources == [relative + name[len(str(fer_slice)):] for name in first.sources]
    assert all(Path(name).is_file() for name in again.sources)  # named as this call names them
    assert len(list((tmp_path / "cache" / "datasets").iterdir())) == 1


def test_fer_folder_layout_recovers_usage_from_file_names(fer_slice):
    faces = load_dataset(fer_slice)
    assert faces.images.shape == (210, 48, 48) and faces.images.dtype == np.uint8
    assert {u: int((faces.usage == u).sum()) for u in np.unique(faces.usage)} == {
        "Training": 140, "PublicTest": 35, "PrivateTest": 35}
    assert faces.class_counts().tolist() == [30] * 7
    # labels follow the folders
    for source, label in zip(faces.sources, faces.labels):
        assert f"/{CLASSES[label]}/" in source


def test_kaggle_csv_matches_the_images(fer_slice, tmp_path):
    folder = load_dataset(fer_slice, cache=False)
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for image, label, usage in zip(folder.images, folder.labels, folder.usage):
            writer.writerow([label, " ".join(map(str, image.ravel())), usage])
    faces = load_dataset(path)
    np.testing.assert_array_equal(faces.images, folder.images)
    np.testing.assert_array_equal(faces.labels, folder.labels)
    assert len(select_split(faces, "PublicTest")) == 35


def test_class_folder_dataset_with_mixed_names_and_sizes(tmp_path):
    for folder, size in (("Happy", 64), ("surprised", 48), ("0", 100)):
        (tmp_path / folder).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / folder / f"{i}.png"), np.full((size, size), 40 * i, np.uint8))
    faces = load_dataset(tmp_path, cache=False)
    assert faces.images.shape == (9, 48, 48)
    assert sorted(faces.labels.tolist()) == [0] * 3 + [3] * 3 + [5] * 3
    assert len(select_split(faces, None)) == 9   # no split: everything is evaluated
    with pytest.raises(DatasetError, match="no official split"):
        split_dataset(faces, "official")


def test_unknown_class_folder_is_named_in_the_error(tmp_path):
    (tmp_path / "contempt").mkdir()
    cv2.imwrite(str(tmp_path / "contempt" / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match="contempt"):
        load_dataset(tmp_path, cache=False)


def test_corrupt_image_is_skipped_and_named_or_fails_when_strict(tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(tmp_path / "happy" / "good.png"), np.full((48, 48), 128, np.uint8))
    faces = load_dataset(tmp_path, cache=False)
    assert len(faces) == 1 and faces.sources == [str(tmp_path / "happy" / "good.png")]
    assert [(f.endswith("broken.jpg"), "not a readable image" in r) for f, r, _ in faces.skipped] \
        == [(True, True)]
    with pytest.raises(DatasetError, match="broken.jpg.*not a readable image"):
        load_dataset(tmp_path, cache=False, strict=True)
    (tmp_path / "happy" / "good.png").unlink()
    with pytest.raises(DatasetError, match="none of its 1 images could be read"):
        load_dataset(tmp_path, cache=False)


def test_missing_dataset_path():
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset("/no/such/dataset")


def test_official_split_counts_on_full_fer2013(fer2013):
    parts = split_dataset(fer2013, "official")
    assert {k: len(v) for k, v in parts.items()} == {"train": 28709, "val": 3589, "test": 3589}
    assert parts["val"].class_counts().tolist() == [467, 56, 496, 895, 653, 415, 607]
    assert parts["test"].class_counts().tolist() == [491, 55, 528, 879, 594, 416, 626]


def test_stratified_split_is_70_10_20_per_class_and_seeded(fer2013):
    faces = fer2013
    parts = split_dataset(faces, "stratified", seed=42)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sum(sizes.values()) == len(faces)
    assert abs(sizes["train"] / len(faces) - 0.7) < 0.001
    assert abs(sizes["test"] / len(faces) - 0.2) < 0.001
    ratio = parts["test"].class_counts() / faces.class_counts()
    assert np.all(np.abs(ratio - 0.2) < 0.005)
    again = split_dataset(faces, "stratified", seed=42)
    assert again["val"].sources == parts["val"].sources
    assert set(parts["train"].sources).isdisjoint(parts["test"].sources)
    other = split_dataset(faces, "stratified", seed=1)
    assert other["val"].sources != parts["val"].sources


def test_eval_transform_resizes_and_scales():
    torch = pytest.importorskip("torch")
    from emotrace.data.transforms import eval_transform

    image = torch.arange(48 * 48, dtype=torch.int64).remainder(256).to(torch.uint8).view(1, 48, 48)
    out = eval_transform(96)(image)
    assert out.shape == (1, 96, 96) and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    low_contrast = torch.full((1, 48, 48), 100, dtype=torch.uint8)
    low_contrast[0, :, :24] = 120
    stretched = eval_transform(48, scaling="minmax")(low_contrast)
    assert stretched.min() == 0.0 and stretched.max() == 1.0


@pytest.mark.parametrize("size", [32, 48, 64, 96, 112])
def test_validation_sees_the_pixels_the_exported_model_sees(size, fer2013):
    """One evaluation pipeline: the training-time eval transform and the ONNX classifier's
    preprocessing give identical inputs (the same resize, the same scaling)."""
    torch = pytest.importorskip("torch")
    from emotrace.data.transforms import eval_transform
    from emotrace.inference.classifier import EmotionClassifier, model_path

    classifier = EmotionClassifier(model_path("fast"))
    classifier.size = size
    faces = fer2013.images[:16]
    expected = classifier.preprocess(faces)
    transform = eval_transform(size)
    got = np.stack([transform(torch.from_numpy(face).unsqueeze(0)).numpy() for face in faces])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # x/255 rounding only


def test_train_transform_augments_but_keeps_shape(fer2013):
    torch = pytest.importorskip("torch")
    from emotrace.data.transforms import AugmentConfig, eval_transform, train_transform

    torch.manual_seed(0)
    image = torch.from_numpy(fer2013.images[0]).unsqueeze(0)
    transform = train_transform(64, AugmentConfig(rotation=45, shift=0.2, erasing=1.0))
    outs = [transform(image) for _ in range(4)]
    assert all(o.shape == (1, 64, 64) for o in outs)
    assert not torch.allclose(outs[0], outs[1])
    plain = eval_transform(64)(image)
    assert not torch.allclose(outs[0], plain)
