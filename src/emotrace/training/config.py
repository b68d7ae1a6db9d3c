"""Training recipes as data: a dataclass mirrored by the YAML presets in ``presets/``."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from emotrace.errors import ConfigError
from emotrace.data.transforms import AugmentConfig


#: The options that take one of a few words, and those words.
CHOICES = {"split": ("official", "stratified"), "subset_splits": ("all", "train"),
           "scaling": ("fixed", "minmax", "clahe"), "balance": ("none", "sampler", "weights"),
           "optimizer": ("adam", "adamw", "sgd"),
           "scheduler": ("onecycle", "cosine", "plateau", "none")}


@dataclass
class TrainConfig:
    """Everything a run depends on; saved next to its checkpoints as ``config.yaml``."""

    data: str = "../shared/data/fer2013"
    split: str = "official"           # official | stratified (70/10/20)
    subset: float = 1.0               # class-stratified fraction of the splits (budgets, tests)
    subset_splits: str = "all"        # all | train (val and test stay whole)
    model: str = "mobilenet_v2"
    pretrained: bool = True
    weights: str | None = None        # a weights file for backbones with none cached
    init_from: str | None = None      # start from a run's .ckpt, or an exported single model
                                      # (.onnx with its card, or fast) instead of ImageNet
    head_hidden: list[int] = field(default_factory=list)
    dropout: float = 0.2
    batch_norm: bool = False
    image_size: int = 96
    scaling: str = "fixed"            # fixed (x/255) | minmax (per image) | clahe (equalised)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    balance: str = "none"             # none | sampler | weights
    epochs: int = 12
    batch_size: int = 64
    optimizer: str = "adamw"          # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    scheduler: str = "onecycle"       # onecycle | cosine | plateau | none
    plateau_patience: int = 2
    label_smoothing: float = 0.1
    teacher: str | None = None        # distillation: a teacher model (shipped name or .onnx file)
    distill_weight: float = 0.5       # share of the loss on the teacher's soft targets
    distill_temperature: float = 2.0  # softens both distributions in the distillation term
    freeze_epochs: int = 0            # phase 1: backbone frozen for this many epochs
    unfreeze_top: int | None = None   # phase 2: unfreeze the top N backbone blocks (None = all)
    phase2_lr_factor: float = 0.1
    early_stopping: int | None = None  # patience in epochs on val accuracy
    seed: int = 42                    # weights init, batch order, augmentation
    split_seed: int = 42              # the stratified split and the subset (fixed across seeds)
    measure_train: bool = False       # also measure the training split like validation, per epoch
    num_workers: int = 0
    threads: int | None = None        # torch CPU threads (None = torch's default)

    def __post_init__(self) -> None:
        self._check_scalars()
        if not isinstance(self.augment, AugmentConfig):
            self.augment = AugmentConfig.from_mapping(self.augment)
        for option, allowed in CHOICES.items():
            if getattr(self, option) not in allowed:
                raise ConfigError(f"{option}: {getattr(self, option)!r} is not one of "
                                  f"{', '.join(allowed)}")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ConfigError("distill_weight must be in [0, 1] and distill_temperature > 0")
        if self.freeze_epochs and self.scheduler == "onecycle":
            raise ConfigError("two-phase fine-tuning (freeze_epochs > 0) needs scheduler "
                             "plateau, cosine or none: one-cycle owns the learning rate")

    def _check_scalars(self) -> None:
        """Numbers and switches of the right kind. YAML 1.1 reads ``2e-4`` (no dot) as a
        string, so numeric strings are accepted for the decimal options."""
        for option in dataclasses.fields(self):
            kind, value = str(option.type), getattr(self, option.name)
            if value is None and kind.endswith("| None"):
                continue
            if kind.startswith("float"):
                try:
                    number = float(value) if not isinstance(value, bool) else math.nan
                except (TypeError, ValueError):
                    number = math.nan
                if not math.isfinite(number):
                    raise ConfigError(f"{option.name}: expected a number, got {value!r}")
                setattr(self, option.name, number)
            elif kind.startswith("int"):
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise ConfigError(f"{option.name}: expected a whole number, got {value!r}")
                setattr(self, option.name, int(value))  # numpy integers do not dump to YAML
            elif kind == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{option.name}: expected true or false, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, **changes: Any) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        merged = self.to_dict() | changes
        if isinstance(changes.get("augment"), dict):
            merged["augment"] = self.to_dict()["augment"] | changes["augment"]
        return TrainConfig(**merged)


def list_presets() -> list[str]:
    folder = resources.files("emotrace.training") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(preset_or_file: str, **overrides: Any) -> TrainConfig:
    """A preset name (``mobilenetv2-fer2013-cpu``) or a YAML file path, with overrides applied."""
    path = Path(preset_or_file)
    if not path.is_file():
        path = Path(str(resources.files("emotrace.training") / "presets" / f"{preset_or_file}.yaml"))
    if not path.is_file():
        raise ConfigError(f"unknown preset {preset_or_file!r}: not a YAML file and not one of "
                         f"{', '.join(list_presets())}")
    values = yaml.safe_load(path.read_text()) or {}
    values.pop("description", None)
    return TrainConfig().updated(**values).updated(**overrides)
