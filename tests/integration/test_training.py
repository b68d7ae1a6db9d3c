import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra")  # the plain install skips

from emotrace.errors import ConfigError
from emotrace.evaluation import read_history
from emotrace.models import BACKBONES
from emotrace.inference.classifier import model_path
from emotrace.training import export_run, load_config, load_module, train


def _config(fer_slice, **changes):
    values = dict(data=str(fer_slice), image_size=48, batch_size=32, epochs=3, lr=1e-3,
                  threads=2, scheduler="plateau")
    values.update(changes)
    return load_config("mobilenetv2-fer2013-cpu", **values)


@pytest.fixture(scope="module")
def short_run(fer_slice, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(_config(fer_slice), run, progress_bar=False)
    return run


def test_short_real_training_lowers_the_loss(short_run):
    history = read_history(short_run / "history.csv")
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["train_acc"] > history[0]["train_acc"]
    # accuracies are counts of the 35 validation faces, learning rates positive
    assert all(abs(r["val_acc"] * 35 - round(r["val_acc"] * 35)) < 1e-4 and r["lr"] > 0
               for r in history)
    assert (short_run / "best.ckpt").exists() and (short_run / "last.ckpt").exists()


def test_training_resumes_from_last_checkpoint(short_run, fer_slice):
    import yaml

    # a run saved before an option existed resumes: the option takes its default
    saved = yaml.safe_load((short_run / "config.yaml").read_text())
    del saved["teacher"]
    (short_run / "config.yaml").write_text(yaml.safe_dump(saved))
    train(_config(fer_slice, epochs=4, threads=1), short_run, progress_bar=False)  # 1 core now
    history = read_history(short_run / "history.csv")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    # only epoch 4 ran now: its elapsed time continues from epoch 3's
    assert history[3]["elapsed_s"] >= history[2]["elapsed_s"]
    with pytest.raises(ValueError, match="different config"):
        train(_config(fer_slice, lr=5e-4), short_run, progress_bar=False)


def test_one_cycle_run_refuses_to_change_length_on_resume(fer_slice, tmp_path):
    train(_config(fer_slice, epochs=1, scheduler="onecycle", model="plain_cnn", pretrained=False),
          tmp_path, progress_bar=False)
    with pytest.raises(ValueError, match="one-cycle"):
        train(_config(fer_slice, epochs=2, scheduler="onecycle", model="plain_cnn",
                      pretrained=False), tmp_path, progress_bar=False)


def _batch_norm_state(net) -> dict:
    return {name: tensor.clone() for name, tensor in net.backbone.state_dict().items()}


def test_two_phase_finetuning_freezes_then_unfreezes_the_top(fer_slice, tmp_path):
    from emotrace.models import create_model

    config = _config(fer_slice, epochs=2, scheduler="plateau", freeze_epochs=1, unfreeze_top=3,
                     optimizer="adam", lr=1e-3)
    reference = create_model(config.model, pretrained=True)
    # phase 1 only: every backbone tensor, batch-norm running statistics included, is unchanged
    train(config.updated(epochs=1), tmp_path / "phase1", progress_bar=False)
    phase1 = load_module(tmp_path / "phase1" / "last.ckpt").net
    reference_state = _batch_norm_state(reference)
    for name, tensor in _batch_norm_state(phase1).items():
        assert torch.equal(tensor, reference_state[name]), name
    assert not torch.equal(phase1.head.layers[-1].weight, reference.head.layers[-1].weight)
    # phase 2: the top blocks join at lr x 0.1 as their own group; the head keeps its rate
    best = train(config, tmp_path / "both", progress_bar=False)
    checkpoint = torch.load(tmp_path / "both" / "last.ckpt", weights_only=False)
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4])
    module = load_module(tmp_path / "both" / "last.ckpt")
    blocks, ref_blocks = module.net.blocks, reference.blocks
    assert torch.equal(blocks[0][0].weight, ref_blocks[0][0].weight)     # never unfrozen
    assert not torch.equal(blocks[-1][0].weight, ref_blocks[-1][0].weight)  # trained in phase 2
    history = read_history(tmp_path / "both" / "history.csv")
    assert [r["phase"] for r in history] == [1, 2]
    assert [r["lr"] for r in history] == pytest.approx([1e-3, 1e-3])  # the head's rate
    assert best.exists()


def test_phase_two_batch_norm_trains_in_the_unfrozen_blocks():
    """Issue 28: the unfrozen blocks' BatchNorm must be in training mode in phase 2 (running
    statistics move), although phase 1 put it in inference mode and Lightning restores every
    module's mode after validation. Random init and random faces: only the mechanics count."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from emotrace.training.callbacks import TwoPhaseFinetuning
    from emotrace.training.module import EmotionModule

    config = load_config("mobilenetv2-fer2013-cpu", image_size=48, pretrained=False,
                         freeze_epochs=1, scheduler="none", threads=2)
    torch.manual_seed(0)
    module = EmotionModule(config.to_dict())
    norm = next(m for m in module.net.blocks[-1].modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    seen = []

    class Probe(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):  # after this epoch's validation
            seen.append((norm.training, all(p.requires_grad for p in norm.parameters()),
                         norm.running_mean.clone()))

    faces = TensorDataset(torch.rand(64, 1, 48, 48), torch.randint(0, 7, (64,)))
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[TwoPhaseFinetuning(1, None, 0.1), Probe()])
    trainer.fit(module, DataLoader(faces, batch_size=16), DataLoader(faces, batch_size=32))
    (frozen, frozen_grad, mean0), *phase2 = seen
    assert not frozen and not frozen_grad  # phase 1: inference mode, frozen
    before = mean0
    for epoch, (training, grad, mean) in enumerate(phase2, start=2):
        assert training and grad, f"epoch {epoch}: BatchNorm not training in phase 2"
        assert not torch.equal(mean, before), f"epoch {epoch}: running_mean did not move"
        before = mean


def test_class_weights_and_balanced_sampler_run(fer_slice, tmp_path):
    for balance in ("weights", "sampler"):
        train(_config(fer_slice, epochs=1, balance=balance, model="plain_cnn", pretrained=False),
              tmp_path / balance, progress_bar=False)
        assert len(read_history(tmp_path / balance / "history.csv")) == 1


def test_onnx_export_matches_torch_and_writes_a_card(short_run):
    model = export_run(short_run, out=short_run / "m.onnx", flip_average=False)
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["input"]["shape"] == ["batch", 1, 48, 48]
    assert card["metrics"]["val"]["n"] == 35
    assert card["epochs_trained"] == len(read_history(short_run / "history.csv"))
    assert card["training_time_s"] > 0
    module = load_module(short_run / "best.ckpt")
    faces = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        expected = module.net(faces).softmax(1).numpy()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = session.run(None, {"faces": faces.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)



def test_init_from_a_checkpoint_starts_from_its_weights(short_run, fer_slice, tmp_path):
    from emotrace.training.module import EmotionModule

    config = _config(fer_slice, init_from=str(short_run / "best.ckpt"))
    module = EmotionModule(config.to_dict())
    trained = load_module(short_run / "best.ckpt")
    for (name, a), (_, b) in zip(module.net.state_dict().items(), trained.net.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="init_from checkpoint not found"):
        EmotionModule(_config(fer_slice, init_from=str(tmp_path / "none.ckpt")).to_dict())


def test_measured_training_split_and_epoch_zero_row(fer_slice, tmp_path):
    """measure_train: an epoch-0 row before any update, and the training split measured like
    validation (inference mode, plain CE) after every epoch, batch norm left as it was."""
    from emotrace.data.module import FERDataModule

    config = _config(fer_slice, epochs=2, measure_train=True)
    train(config, tmp_path / "run", progress_bar=False)
    history = read_history(tmp_path / "run" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert np.isnan(history[0]["train_loss"]) and not np.isnan(history[0]["train_eval_loss"])
    data = FERDataModule(str(fer_slice), image_size=config.image_size, batch_size=16)
    data.setup()
    module = load_module(tmp_path / "run" / "last.ckpt")
    again = module.measure(data.train_eval_dataloader())
    assert again["acc"] == pytest.approx(history[-1]["train_eval_acc"])
    assert again["loss"] == pytest.approx(history[-1]["train_eval_loss"], rel=1e-4)
    val = module.measure(data.val_dataloader())
    assert val["acc"] == pytest.approx(history[-1]["val_acc"])


def test_export_of_the_last_epoch_with_per_image_predictions(short_run, tmp_path):
    out = export_run(short_run, out=tmp_path / "last.onnx", evaluate_splits=("val",),
                     checkpoint="last", save_predictions=True)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["checkpoint"] == "last"
    predictions = json.loads(out.with_suffix(".predictions.json").read_text())
    assert len(predictions["val"]) == card["metrics"]["val"]["n"] == 35
    with pytest.raises(ValueError, match="best' or 'last"):
        export_run(short_run, out=tmp_path / "x.onnx", checkpoint="epoch3")


def test_distillation_learns_from_the_teachers_soft_targets(fer_slice, tmp_path):
    """With all the weight on the teacher, the student is pulled towards the teacher's
    answers, which here are the opposite of the labels' (a deliberately wrong teacher)."""
    from emotrace.data import load_dataset, select_split
    from emotrace.training.fit import teacher_targets

    faces = select_split(load_dataset(fer_slice), "train")
    probs = teacher_targets("fast", faces.images, tmp_path / "teacher.npy")
    assert probs.shape == (140, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert np.array_equal(np.load(tmp_path / "teacher.npy"), probs)  # cached for resumes
    np.save(tmp_path / "teacher.npy", probs[::-1])  # the same teacher and faces: cache used
    assert np.array_equal(teacher_targets("fast", faces.images, tmp_path / "teacher.npy"),
                          probs[::-1])
    np.save(tmp_path / "copy.npy", probs[::-1])
    (tmp_path / "copy.json").write_text((tmp_path / "teacher.json").read_text())
    other = teacher_targets("fast", faces.images[::-1], tmp_path / "copy.npy")
    np.testing.assert_allclose(other, probs[::-1], atol=1e-5)  # other faces: recomputed
    with pytest.raises(ValueError, match="teacher model"):
        teacher_targets("nope.onnx", faces.images, tmp_path / "none.npy")
    # a wrong teacher: it always says "happy"; all the loss on it
    wrong = tmp_path / "run"
    wrong.mkdir()
    np.save(wrong / "teacher-train.npy", np.tile(np.eye(7, dtype=np.float32)[3], (140, 1)))
    (wrong / "teacher-train.json").write_text((tmp_path / "teacher.json").read_text())
    config = _config(fer_slice, teacher="fast", distill_weight=1.0, epochs=3, lr=3e-3)
    train(config, wrong, progress_bar=False)
    student = load_module(wrong / "last.ckpt").net.eval()
    images = torch.from_numpy(faces.images[:, None].astype(np.float32) / 255)
    with torch.no_grad():
        answers = student(images).argmax(1)
    assert (answers == 3).float().mean() > 0.9
    card = json.loads(export_run(wrong, out=tmp_path / "student.onnx", evaluate_splits=())
                      .with_suffix(".json").read_text())
    assert card["distillation"] == {
        "teacher": "fast", "soft_target_weight": 1.0, "temperature": config.distill_temperature,
        "teacher_sha1": hashlib.sha1(model_path("fast").read_bytes()).hexdigest()}


def test_every_shipped_preset_is_a_valid_recipe():
    from emotrace.training.config import list_presets

    names = list_presets()
    assert {"mobilenetv2-fer2013-cpu", "mobilenetv2-96-distilled"} <= set(names)
    for name in names:  # a misspelt option or value in a preset fails here, not hours into a run
        config = load_config(name)
        assert config.epochs >= 1 and config.image_size >= 32, name
        assert config.model in BACKBONES, name
    with pytest.raises(ConfigError, match="scheduler: 'onecylce' is not one of"):
        load_config("mobilenetv2-fer2013-cpu", scheduler="onecylce")


def test_recipe_numbers_are_checked_where_they_are_read():
    """--set lr=2e-4 reaches the recipe as the string '2e-4' (YAML 1.1 wants a dot): it is a
    number all the same; a word where a number goes is an error naming the option, not a crash
    in the optimizer hours later."""
    from emotrace.cli.commands import _overrides

    config = load_config("mobilenetv2-fer2013-cpu", **_overrides(["lr=2e-4", "epochs=2"]))
    assert config.lr == pytest.approx(2e-4) and isinstance(config.lr, float)
    assert config.epochs == 2
    for option, value, message in (("lr", "fast", "lr: expected a number"),
                                   ("epochs", 2.5, "epochs: expected a whole number"),
                                   ("batch_size", "64", "batch_size: expected a whole number"),
                                   ("pretrained", "yes", "pretrained: expected true or false")):
        with pytest.raises(ConfigError, match=message):
            load_config("mobilenetv2-fer2013-cpu", **{option: value})


def _faces(fer_slice, split: str, size: int = 96) -> torch.Tensor:
    from emotrace.training.fit import build_datamodule

    datamodule = build_datamodule(_config(fer_slice, image_size=size))
    datamodule.setup()
    loaders = {"train": datamodule.train_eval_dataloader, "val": datamodule.val_dataloader}
    dataset = loaders[split]().dataset
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def test_init_from_the_shipped_onnx_model_rebuilds_its_network(fer_slice):
    """The shipped fast model (BatchNorm folded into its convolutions) read back into a fresh
    MobileNetV2: the same probabilities as ONNX Runtime on faces it never saw, and BatchNorm
    statistics that keep its predictions in training mode (batch statistics)."""
    from emotrace.training.module import EmotionModule
    from emotrace.training.onnx_init import start_from_onnx

    module = EmotionModule(_config(fer_slice, image_size=96, init_from="fast").to_dict())
    start_from_onnx(module.net, "fast", "mobilenet_v2", _faces(fer_slice, "train"))
    unseen = _faces(fer_slice, "val")
    session = ort.InferenceSession(str(model_path("fast")), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"faces": unseen.numpy()})[0]
    with torch.no_grad():
        module.net.eval()
        np.testing.assert_allclose(module.net(unseen).softmax(1).numpy(), expected, atol=1e-4)
        module.net.train()
        module.net.head.eval()  # no dropout: only BatchNorm's batch statistics differ
        in_training_mode = module.net(unseen).softmax(1).numpy()
    assert (in_training_mode.argmax(1) == expected.argmax(1)).mean() >= 0.85


def test_training_from_the_shipped_model_starts_where_it_stands(fer_slice, tmp_path):
    config = _config(fer_slice, image_size=96, init_from="fast", epochs=1, lr=1e-5,
                     scheduler="onecycle")
    train(config, tmp_path, progress_bar=False)
    history = read_history(tmp_path / "history.csv")
    # measured: 22 of these 35 PublicTest faces from fast, 6 from an ImageNet start
    assert history[0]["val_acc"] >= 18 / 35
    out = export_run(tmp_path, out=tmp_path / "m.onnx", evaluate_splits=("val",))
    parent = json.loads(out.with_suffix(".json").read_text())["init_from"]
    assert parent["name"] == "emotrace-mobilenetv2-fer2013"
    assert parent["sha1"] == hashlib.sha1(model_path("fast").read_bytes()).hexdigest()


def test_init_from_an_onnx_that_cannot_start_this_recipe_says_why(fer_slice, tmp_path):
    import shutil

    from emotrace.errors import EmotraceError
    from emotrace.training.module import EmotionModule
    from emotrace.training.onnx_init import start_from_onnx

    faces = _faces(fer_slice, "train")[:8]
    module = EmotionModule(_config(fer_slice, image_size=96, init_from="accurate").to_dict())
    with pytest.raises(ConfigError, match="an ensemble cannot be a starting point"):
        start_from_onnx(module.net, "accurate", "mobilenet_v2", faces)
    with pytest.raises(ConfigError, match="it is a mobilenet_v2 model.*set model: mobilenet_v2"):
        start_from_onnx(module.net, "fast", "efficientnet_lite0", faces)
    with pytest.raises(FileNotFoundError, match="init_from model not found"):
        start_from_onnx(module.net, str(tmp_path / "gone.onnx"), "mobilenet_v2", faces)
    lonely = tmp_path / "no-card.onnx"
    shutil.copy(model_path("fast"), lonely)
    with pytest.raises(FileNotFoundError, match="its card no-card.json is missing"):
        start_from_onnx(module.net, str(lonely), "mobilenet_v2", faces)
    shutil.copy(model_path("fast").with_suffix(".json"), lonely.with_suffix(".json"))
    lonely.write_bytes(b"not onnx")
    with pytest.raises(EmotraceError, match="not a readable ONNX file"):
        start_from_onnx(module.net, str(lonely), "mobilenet_v2", faces)


def test_a_run_from_an_onnx_file_resumes_and_exports_without_it(fer_slice, tmp_path):
    """The file is read once, when the run starts: resuming takes last.ckpt, and the card
    records the file as it was then."""
    import shutil

    source = tmp_path / "start.onnx"
    shutil.copy(model_path("fast"), source)
    shutil.copy(model_path("fast").with_suffix(".json"), source.with_suffix(".json"))
    run = tmp_path / "run"
    values = dict(image_size=96, init_from=str(source), lr=1e-5, scheduler="plateau")
    train(_config(fer_slice, epochs=1, **values), run, progress_bar=False)
    sha1 = hashlib.sha1(source.read_bytes()).hexdigest()
    source.unlink()
    train(_config(fer_slice, epochs=2, **values), run, progress_bar=False)
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1, 2]
    out = export_run(run, out=tmp_path / "m.onnx", evaluate_splits=("val",))
    parent = json.loads(out.with_suffix(".json").read_text())["init_from"]
    assert parent["sha1"] == sha1 and parent["name"] == "emotrace-mobilenetv2-fer2013"


def test_init_from_a_file_exported_with_test_time_views(fer_slice, tmp_path):
    """A single model exported with --flip / --zoom holds the same network: it is accepted,
    checked through its own views."""
    from emotrace.models import create_model
    from emotrace.training.export import ExportWrapper
    from emotrace.training.onnx_init import start_from_onnx

    faces = _faces(fer_slice, "train")
    net = create_model("mobilenet_v2", pretrained=False)
    start_from_onnx(net, "fast", "mobilenet_v2", faces)
    viewed = tmp_path / "viewed.onnx"
    torch.onnx.export(ExportWrapper(net.eval(), True, (0.92,)), faces[:2], str(viewed),
                      input_names=["faces"], output_names=["probs"],
                      dynamic_axes={"faces": {0: "batch"}}, dynamo=False)
    card = json.loads(model_path("fast").with_suffix(".json").read_text())
    viewed.with_suffix(".json").write_text(json.dumps({**card, "flip_average": True,
                                                        "zoom_views": [0.92]}))
    rebuilt = create_model("mobilenet_v2", pretrained=False)
    start_from_onnx(rebuilt, str(viewed), "mobilenet_v2", faces)
    with torch.no_grad():
        for a, b in zip(net.eval().state_dict().values(), rebuilt.eval().state_dict().values()):
            if a.is_floating_point():
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _session_probs(path, faces: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"faces": faces.numpy()})[0]


def test_a_soup_of_a_model_with_itself_is_that_model(fer_slice, tmp_path, capsys):
    """Averaging a network with itself must give it back exactly, through the CLI's file and
    card; renormalising (REPAIR) such a soup changes next to nothing."""
    from emotrace.cli.main import main

    fast = str(model_path("fast"))
    out = tmp_path / "soup.onnx"
    assert main(["soup", fast, fast, "--out", str(out), "--data", str(fer_slice)]) == 0
    assert "soup val accuracy" in capsys.readouterr().out
    unseen = _faces(fer_slice, "val")
    expected = _session_probs(fast, unseen)
    np.testing.assert_allclose(_session_probs(out, unseen), expected, atol=1e-4)
    card = json.loads(out.with_suffix(".json").read_text())
    sha1 = hashlib.sha1(model_path("fast").read_bytes()).hexdigest()
    assert [i["sha1"] for i in card["soup"]["ingredients"]] == [sha1, sha1]
    assert card["metrics"]["val"]["n"] == 35 and card["backbone"] == "mobilenet_v2"

    # REPAIR measures on the first model's training data: fast's card, naming this slice (140
    # faces) instead of the 2,048 faces of FER-2013 (the soup of a network with itself needs
    # no more to show that renormalising it changes next to nothing)
    here = tmp_path / "fast-here.onnx"
    here.write_bytes(model_path("fast").read_bytes())
    here.with_suffix(".json").write_text(json.dumps(
        {**json.loads(model_path("fast").with_suffix(".json").read_text()),
         "data": str(fer_slice)}))
    repaired = tmp_path / "repaired.onnx"
    assert main(["soup", str(here), str(here), "--repair", "--out", str(repaired),
                 "--data", str(fer_slice)]) == 0
    got = _session_probs(repaired, unseen)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.94
    assert np.abs(got - expected).max() < 0.1


def _last_norm_spread(net, faces: torch.Tensor) -> torch.Tensor:
    from emotrace.training.onnx_init import conv_norm_pairs

    outputs = []  # a copy: the ReLU6 after it works in place
    hook = conv_norm_pairs(net)[-1][1].register_forward_hook(
        lambda m, i, o: outputs.append(o.clone()))
    with torch.no_grad():
        for batch in faces.split(16):  # eval mode: a face's output is its own; small is fast
            net.eval()(batch)
    hook.remove()
    return torch.cat(outputs).transpose(0, 1).flatten(1).std(1)


def test_a_soup_averages_weights_and_repair_restores_the_lost_spread(fer_slice):
    """fast and the distilled network started from different networks: their average loses
    most of its activations' spread, and REPAIR gives each channel back the two networks'
    average spread."""
    import copy

    from emotrace.training.onnx_init import conv_norm_pairs, folded_network
    from emotrace.training.soup import repair, soup_network

    other = "models/distilled/emotrace-mobilenetv2-96-distilled-3.onnx"
    a, _ = folded_network("fast")
    b, _ = folded_network(other)
    soup, cards = soup_network(["fast", other])
    assert [c.name for c in cards] == ["emotrace-mobilenetv2-fer2013",
                                          "emotrace-mobilenetv2-96-distilled-3"]
    (conv_a, _), (conv_b, _), (conv_s, _) = (conv_norm_pairs(n)[5] for n in (a, b, soup))
    torch.testing.assert_close(conv_s.weight, (conv_a.weight + conv_b.weight) / 2)

    faces = _faces(fer_slice, "train")
    wanted = (_last_norm_spread(a, faces) + _last_norm_spread(b, faces)) / 2
    lost = _last_norm_spread(soup, faces) / wanted
    repaired, _ = soup_network(["fast", other], repair_on=faces)
    restored = _last_norm_spread(repaired, faces) / wanted
    assert lost.median() < 0.5  # measured: 0.10
    assert (restored - 1).abs().max() < 0.02  # measured: 0.005 (one batch of 140 faces)
    in_batches = copy.deepcopy(soup)
    repair(in_batches, [a, b], faces, batch_size=32)  # five batches of 28
    # batches this small miss some of the spread between batches: measured 0.021
    assert (_last_norm_spread(in_batches, faces) / wanted - 1).abs().median() < 0.05


def test_a_soup_refuses_what_it_cannot_average(tmp_path):
    from emotrace.errors import EmotraceError
    from emotrace.training.soup import soup_network

    with pytest.raises(ConfigError, match="at least two"):
        soup_network(["fast"])
    with pytest.raises(ConfigError, match="not one network.*cannot be averaged"):
        soup_network(["fast", "accurate"])
    with pytest.raises(ConfigError, match="its input .* differs"):
        soup_network(["fast", "models/members/emotrace-mobilenetv2-112-refine-member.onnx"])
    with pytest.raises(FileNotFoundError, match="soup model not found"):
        soup_network(["fast", str(tmp_path / "gone.onnx")])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    broken.with_suffix(".json").write_text(model_path("fast").with_suffix(".json").read_text())
    with pytest.raises(EmotraceError, match="soup .*broken.onnx: not a readable ONNX file"):
        soup_network(["fast", str(broken)])


def test_soup_cli_says_what_is_wrong_and_reads_the_card_it_is_given(fer_slice, tmp_path, capsys):
    """Missing files and cards without an input shape are one clear line (exit 2); a card
    without recipe or dataset still soups with --data; a recipe's split is the one measured."""
    import shutil

    from emotrace.cli.main import main

    fast_card = json.loads(model_path("fast").with_suffix(".json").read_text())

    def copy_of_fast(name: str, card: dict) -> str:
        shutil.copy(model_path("fast"), tmp_path / f"{name}.onnx")
        (tmp_path / f"{name}.json").write_text(json.dumps(card))
        return str(tmp_path / f"{name}.onnx")

    out = str(tmp_path / "soup.onnx")
    assert main(["soup", "fast", str(tmp_path / "gone.onnx"), "--out", out]) == 2
    assert "soup model not found" in capsys.readouterr().err
    shapeless = copy_of_fast("shapeless", {k: v for k, v in fast_card.items() if k != "input"})
    assert main(["soup", shapeless, "fast", "--out", out]) == 2
    assert "its card has no input shape" in capsys.readouterr().err
    assert not (tmp_path / "soup.onnx").exists()

    bare = copy_of_fast("bare", {k: v for k, v in fast_card.items()
                                 if k not in ("recipe", "data")})
    assert main(["soup", bare, "fast", "--out", out]) == 2
    assert "give one with --data" in capsys.readouterr().err
    assert main(["soup", bare, "fast", "--out", out, "--data", str(fer_slice)]) == 0
    stratified = copy_of_fast("stratified", {**fast_card, "recipe": {
        **fast_card["recipe"], "split": "stratified"}})
    assert main(["soup", stratified, "fast", "--out", out, "--data", str(fer_slice)]) == 0
    card = json.loads((tmp_path / "soup.json").read_text())
    assert card["metrics"]["val"]["split_scheme"] == "stratified"

