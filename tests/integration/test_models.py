import pytest

torch = pytest.importorskip("torch", reason="needs the train extra")  # the plain install skips

from conftest import WEIGHTS
from emotrace.models import WeightsNotFoundError, create_model, list_models


def test_pretrained_mobilenet_loads_imagenet_weights_and_changes_outputs():
    state = torch.load(WEIGHTS / "mobilenet_v2-b0353104.pth", weights_only=True)
    torch.manual_seed(0)
    pretrained = create_model("mobilenet_v2", pretrained=True).eval()
    torch.manual_seed(0)
    random = create_model("mobilenet_v2", pretrained=False).eval()
    first_conv = pretrained.backbone[0][0].weight
    assert torch.equal(first_conv, state["features.0.0.weight"])
    assert not torch.equal(random.backbone[0][0].weight, state["features.0.0.weight"])
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        assert not torch.allclose(pretrained(x), random(x))
        assert pretrained(x).shape == (2, 7)


def test_missing_weights_name_the_file_and_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="mobilenet_v2-b0353104.pth.*checkpoints"):
        create_model("mobilenet_v2", pretrained=True)


def test_resnet50_needs_a_weights_file_and_loads_one(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="weights file"):
        create_model("resnet50", pretrained=True)
    import torchvision

    torch.manual_seed(1)
    source = torchvision.models.resnet50()
    torch.save(source.state_dict(), tmp_path / "resnet50.pth")
    model = create_model("resnet50", pretrained=True, weights=str(tmp_path / "resnet50.pth"))
    assert torch.equal(model.backbone[0].weight, source.conv1.weight)


def test_wrong_weights_file_is_refused(tmp_path):
    torch.save({"foo": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit"):
        create_model("mobilenet_v2", weights=str(tmp_path / "wrong.pth"))


@pytest.mark.parametrize("name", ["plain_cnn", "inception_v3", "resnet50", "mobilenet_v2"])
def test_every_backbone_builds_from_random_init(name):
    model = create_model(name, pretrained=False, head_hidden=[64, 32], batch_norm=True).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 96, 96)).shape == (2, 7)
    assert len(model.blocks) >= 4


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        create_model("vgg_face")
    assert "plain_cnn" in list_models()
