import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import FER, REPO
from conftest import cli as emotrace


def test_help_lists_the_commands():
    run = emotrace("--help")
    assert run.returncode == 0
    for command in ("train", "predict", "evaluate", "export", "curves"):
        assert command in run.stdout


def test_predict_face_crops_prints_one_json_line_each():
    crops = sorted((FER / "test" / "happy").glob("PrivateTest_*.jpg"))[:3]
    run = emotrace("predict", *crops, "--detector", "none", "--json")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["source"] for line in lines] == [str(c) for c in crops]
    for line in lines:
        (face,) = line["faces"]
        assert face["box"] == [0, 0, 48, 48]
        assert set(face["scores"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise",
                                       "neutral"}
        assert abs(sum(face["scores"].values()) - 1) < 1e-3


def test_evaluate_json_and_report_files(fer_slice, tmp_path):
    run = emotrace("evaluate", "--data", fer_slice, "--split", "PrivateTest", "--json",
                   "--out", tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert {"n", "accuracy", "macro_recall", "per_class", "confusion"} <= set(result)
    assert result["n"] == 35 and np.array(result["confusion"]).sum() == 35
    assert np.array(result["confusion"]).sum(axis=1).tolist() == [5] * 7
    assert result["accuracy"] == np.trace(result["confusion"]) / 35 and result["skipped"] == 0
    assert result["accuracy"] >= 0.45  # the shipped model on 5 faces of each class (chance: 0.14)
    for name in ("metrics.json", "confusion.json", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 0
    human = emotrace("evaluate", "--data", fer_slice, "--split", "val")
    assert human.returncode == 0 and "accuracy" in human.stdout and "disgust" in human.stdout


def test_evaluate_class_folder_dataset_uses_every_image(tmp_path):
    for name, fer_name in (("Happy", "happy"), ("surprised", "surprise")):
        (tmp_path / name).mkdir()
        for file in sorted((FER / "test" / fer_name).iterdir())[:4]:
            shutil.copy(file, tmp_path / name / file.name.replace("PrivateTest", "img")
                        .replace("PublicTest", "img"))
    run = emotrace("evaluate", "--data", tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["n"] == 8


def test_bad_datasets_give_a_clear_error_and_exit_2(tmp_path):
    missing = emotrace("evaluate", "--data", tmp_path / "nowhere")
    assert missing.returncode == 2 and "dataset not found" in missing.stderr
    (tmp_path / "unknown" / "contempt").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "unknown" / "contempt" / "a.png"), np.zeros((48, 48), np.uint8))
    unknown = emotrace("evaluate", "--data", tmp_path / "unknown")
    assert unknown.returncode == 2 and "contempt" in unknown.stderr
    (tmp_path / "corrupt" / "happy").mkdir(parents=True)
    (tmp_path / "corrupt" / "happy" / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    corrupt = emotrace("evaluate", "--data", tmp_path / "corrupt")
    assert corrupt.returncode == 2 and "bad.jpg" in corrupt.stderr
    for run in (missing, unknown, corrupt):
        assert "Traceback" not in run.stderr
    bad_split = emotrace("evaluate", "--data", FER, "--split", "holdout")
    assert bad_split.returncode == 2 and "unknown split" in bad_split.stderr


def test_train_export_evaluate_end_to_end(fer_slice, tmp_path):
    pytest.importorskip("torch", reason="training needs the train extra")
    run_dir = tmp_path / "run"
    train = emotrace("train", "--data", fer_slice, "--out", run_dir, "--epochs", "1",
                     "--set", "image_size=48", "--set", "model=plain_cnn",
                     "--set", "pretrained=false")
    assert train.returncode == 0, train.stderr[-2000:]
    assert (run_dir / "model.onnx").exists() and (run_dir / "model.json").exists()
    evaluate = emotrace("evaluate", "--data", fer_slice, "--split", "val", "--model",
                        run_dir / "model.onnx", "--json")
    assert evaluate.returncode == 0 and json.loads(evaluate.stdout)["n"] == 35
    curves = emotrace("curves", run_dir, "--json")
    assert curves.returncode == 0 and "mcr_acc" in curves.stdout
    assert (run_dir / "learning_curves.png").exists()
    bad = emotrace("train", "--preset", "no-such-preset")
    assert bad.returncode == 2 and "unknown preset" in bad.stderr


def test_ensemble_refuses_a_zoom_outside_its_range_before_writing(tmp_path):
    pytest.importorskip("torch", reason="needs the train extra")
    members = [REPO / "models" / "members" / f"emotrace-{name}-96-member.onnx"
               for name in ("mobilenetv2", "efficientnet-lite0")]
    for zoom in ("1.2", "0.3"):
        run = emotrace("ensemble", *members, "--zoom", zoom, "--out", tmp_path / "e.onnx")
        assert run.returncode == 2 and f"zoom {float(zoom)}" in run.stderr
        assert "Traceback" not in run.stderr and not (tmp_path / "e.onnx").exists()


@pytest.mark.parametrize("content", [None, b"not an image"])
def test_explain_a_missing_or_broken_image_is_one_line_naming_it(tmp_path, content):
    image = tmp_path / "missing.jpg"
    if content is not None:
        image.write_bytes(content)
    run = emotrace("explain", image, "--save", tmp_path / "x.png")
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert str(image) in line and "internal error" not in line
    assert not (tmp_path / "x.png").exists()
