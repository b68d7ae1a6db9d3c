"""Training recipes as data: every shipped preset is a valid recipe, and a wrong option or value
is a ConfigError naming it when the recipe is read (never a crash hours into a run). The recipe
holds the augmentation config, which lives with the torch transforms: skipped without torch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="recipes hold the augment config (the train extra)")

from emotrace.data.transforms import AugmentConfig  # noqa: E402
from emotrace.errors import ConfigError  # noqa: E402
from emotrace.training.config import list_presets, load_config  # noqa: E402

BASE = "mobilenetv2-fer2013-cpu"


def test_every_shipped_preset_loads_as_a_checked_recipe():
    names = list_presets()
    assert BASE in names and "plain-cnn-fer2013" in names and len(names) >= 10
    for name in names:
        config = load_config(name)
        assert isinstance(config.augment, AugmentConfig), name
        assert isinstance(config.lr, float) and isinstance(config.epochs, int), name


def test_the_shipped_recipe_reads_as_written():
    config = load_config(BASE)
    assert (config.model, config.image_size, config.epochs, config.batch_size) == (
        "mobilenet_v2", 96, 12, 64)
    assert (config.optimizer, config.scheduler, config.lr) == ("adamw", "onecycle", 1e-3)
    # YAML lists become the dataclass's tuples; options the preset omits keep their defaults
    assert config.augment.scale == (0.9, 1.1) and config.augment.erasing == 0.25
    assert config.augment.occlusion == 0.0 and config.freeze_epochs == 0
    assert "description" not in config.to_dict()


def test_overrides_and_yaml_numbers_without_a_dot():
    config = load_config(BASE, lr="2e-4", epochs=3, augment={"rotation": 30})
    assert config.lr == pytest.approx(2e-4) and isinstance(config.lr, float)
    assert config.epochs == 3
    # an augment override changes one strength and keeps the preset's others
    assert config.augment.rotation == 30 and config.augment.erasing == 0.25
    assert config.updated(seed=7).seed == 7 and config.seed == 42  # updated() copies


@pytest.mark.parametrize("option, value, message", [
    ("lr", "fast", "lr: expected a number, got 'fast'"),
    ("lr", float("nan"), "lr: expected a number"),
    ("dropout", True, "dropout: expected a number, got True"),
    ("epochs", 2.5, "epochs: expected a whole number, got 2.5"),
    ("batch_size", "64", "batch_size: expected a whole number, got '64'"),
    ("image_size", False, "image_size: expected a whole number"),
    ("pretrained", "yes", "pretrained: expected true or false, got 'yes'"),
    ("scheduler", "onecylce", "scheduler: 'onecylce' is not one of onecycle, cosine, plateau, none"),
    ("scaling", "histogram", "scaling: 'histogram' is not one of fixed, minmax, clahe"),
    ("optimizer", "rmsprop", "optimizer: 'rmsprop' is not one of adam, adamw, sgd"),
    ("distill_weight", 1.5, "distill_weight must be in"),
    ("distill_temperature", 0, "distill_temperature > 0"),
])
def test_a_wrong_value_names_its_option(option, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(BASE, **{option: value})
    assert message in str(error.value)


@pytest.mark.parametrize("augment, message", [
    ({"hflipp": True}, "unknown augment option(s): hflipp (known: hflip, rotation, shift, "),
    (3, "augment: expected options such as {rotation: 10, erasing: 0.25}, got 3"),
    ({"rotation": "abc"}, "augment.rotation: expected a number 0 or more, got 'abc'"),
    ({"rotation": float("nan")}, "augment.rotation: expected a number 0 or more, got nan"),
    ({"erasing": 1.5}, "augment.erasing: expected a number between 0 and 1, got 1.5"),
    ({"shift": -0.1}, "augment.shift: expected a number between 0 and 1, got -0.1"),
    ({"hflip": 1}, "augment.hflip: expected true or false, got 1"),
    ({"scale": [1.2, 0.8]}, "augment.scale: expected [low, high], two numbers above 0"),
    ({"scale": 1.1}, "augment.scale: expected [low, high]"),
])
def test_a_wrong_augment_option_names_itself_before_training(augment, message):
    """torchvision refused these only once training started ("internal error: TypeError")."""
    with pytest.raises(ConfigError) as error:
        load_config(BASE, augment=augment)
    assert message in str(error.value)


def test_augment_numbers_are_kept_as_written_and_yaml_text_numbers_read():
    # kept as written: a recipe's options are part of a study run's cache key
    assert load_config(BASE, augment={"rotation": 15}).augment.rotation == 15
    assert isinstance(load_config(BASE, augment={"rotation": 15}).augment.rotation, int)
    assert load_config(BASE, augment={"erasing": "2e-1"}).augment.erasing == pytest.approx(0.2)


def test_unknown_options_presets_and_impossible_combinations():
    with pytest.raises(ConfigError, match="unknown training option.*: learning_rate, warmup"):
        load_config(BASE, learning_rate=1e-3, warmup=2)
    with pytest.raises(ConfigError, match=f"unknown preset 'nope': .*{BASE}"):
        load_config("nope")
    with pytest.raises(ConfigError, match="one-cycle owns the learning rate"):
        load_config(BASE, freeze_epochs=2)  # the preset's scheduler is onecycle
    assert load_config(BASE, freeze_epochs=2, scheduler="plateau").freeze_epochs == 2


def test_a_recipe_file_and_its_saved_copy_round_trip(tmp_path):
    import yaml

    recipe = tmp_path / "mine.yaml"
    recipe.write_text("model: plain_cnn\npretrained: false\nimage_size: 48\nepochs: 2\n"
                      "scheduler: plateau\naugment:\n  hflip: false\n  scale: [0.8, 1.2]\n")
    config = load_config(str(recipe), seed=3)
    assert (config.model, config.pretrained, config.image_size, config.seed) == (
        "plain_cnn", False, 48, 3)
    assert config.augment.hflip is False and config.augment.scale == (0.8, 1.2)
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config.to_dict()))
    assert load_config(str(saved)) == config
