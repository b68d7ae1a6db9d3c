"""Model cards: what an exported model takes and returns, how it was made and how it scored.

Every emotrace ONNX file has a card beside it (same name, ``.json``). This module is the one
place that reads and writes them (:meth:`ModelCard.read` / :meth:`ModelCard.write`, symmetric
like safetensors' load and save), and it knows the shipped models by name. It is the ground
floor: it imports nothing else from emotrace but the labels and the errors, so training,
evaluation and inference all build on it without circles.

Example:
    >>> from emotrace.cards import ModelCard, model_path
    >>> card = ModelCard.read(model_path("fast"))
    >>> card.image_size, card.scaling, card.views
    (96, 'fixed', 1)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emotrace.data.labels import EMOTIONS
from emotrace.errors import EmotraceError, NotFoundError

DEFAULT_MODEL = "emotrace-mobilenetv2-fer2013.onnx"
#: Models shipped in the package, by name: ``fast`` (the default) and ``accurate`` (an ensemble).
SHIPPED_MODELS = {"fast": DEFAULT_MODEL, "accurate": "emotrace-accurate-fer2013.onnx"}
#: What a run's card records about the model it started from.
PARENT_FIELDS = ("train_command", "epochs_trained", "best_epoch", "training_time_s",
                 "total_training_time_s")
FRAMING = "tight face crop like FER-2013"


class ModelError(EmotraceError, ValueError):
    """A model file that is missing or unusable; the message names it."""


def model_path(model: str | os.PathLike | None) -> Path:
    """The file of a model given by name or path.

    Args:
        model: a shipped model's name (``fast``, ``accurate``; None means ``fast``) or a path to
            an ``.onnx`` file.

    Returns:
        The shipped file inside the package, or ``model`` as a path.

    Example:
        >>> model_path("fast").name
        'emotrace-mobilenetv2-fer2013.onnx'
    """
    name = "fast" if model is None else os.fspath(model)
    if name in SHIPPED_MODELS:
        return Path(str(resources.files("emotrace") / "assets" / SHIPPED_MODELS[name]))
    return Path(name)


def default_model_path() -> Path:
    """The default model shipped inside the package (``fast``)."""
    return model_path("fast")


def card_path(model: Path) -> Path:
    """The card beside ``model``: same name, ``.json``."""
    return Path(model).with_suffix(".json")


# The card's own fields, in the order a new card writes them; anything else a card holds (the
# training summary, speed, real-face scores, ...) is kept in ``extra`` in its place.
_STRUCTURE = ("name", "format", "input", "output", "flip_average")
_TAIL = ("exported", "export_command", "metrics")
_TYPED = ("zoom_views", "backbone", "pretrained", "data", "recipe", "ensemble", "soup",
          "calibration", "exported", "export_command", "metrics")


@dataclass
class ModelCard:
    """A model card, typed: read with :meth:`read`, written with :meth:`write`.

    A card read and written again is byte-identical (its fields keep their order), so tools
    that add one section (calibration, speed) change only that section.

    Attributes:
        name: the model's name (``emotrace-mobilenetv2-fer2013``).
        image_size: the side of the square grey face the model takes.
        scaling: input scaling, ``fixed`` (pixels / 255), ``minmax`` or ``clahe``.
        classes: the output classes, in order.
        framing: how faces are cropped for it.
        flip_average: whether the file averages each face with its mirror image.
        zoom_views: the closer central crops it also averages (shares of the face's side).
        backbone: the network (``mobilenet_v2``, ``ensemble``, ...).
        pretrained: whether training started from ImageNet weights.
        data: the dataset it was trained (or measured) on.
        recipe: the training recipe (``TrainConfig`` as a dict).
        ensemble: ``{"weighting", "members": [...]}`` for ensembles.
        soup: ``{"method", "ingredients": [...]}`` for weight averages.
        metrics: per split, the scores measured on the exported file.
        calibration: the temperature fitted on validation faces, with its scores.
        exported: when it was exported (ISO 8601, UTC).
        export_command: the command line that exported it.
        extra: every other field, kept as it is.
    """

    name: str
    image_size: int
    scaling: str = "fixed"
    classes: tuple[str, ...] = EMOTIONS
    framing: str = FRAMING
    flip_average: bool = False
    zoom_views: tuple[float, ...] = ()
    backbone: str | None = None
    pretrained: bool | None = None
    data: str | None = None
    recipe: dict[str, Any] | None = None
    ensemble: dict[str, Any] | None = None
    soup: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    exported: str | None = None
    export_command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    # --- building -----------------------------------------------------------------------------
    @classmethod
    def new(cls, name: str, image_size: int, scaling: str, flip_average: bool,
            command: str | None, **fields: Any) -> ModelCard:
        """A card before its metrics are measured, stamped with the time and ``command``.

        Args:
            name: the model's name.
            image_size: the input side in pixels.
            scaling: the input scaling.
            flip_average: whether the file averages mirror images.
            command: the export command line to record.
            **fields: the model's own fields (backbone, recipe, ensemble, training summary...).

        Returns:
            The card, with empty ``metrics``.
        """
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        raw = {"name": name, "format": "onnx", "input": _input(image_size, scaling, FRAMING),
               "output": _output(EMOTIONS), "flip_average": flip_average, **fields,
               "exported": now, "export_command": command, "metrics": {}}
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str | Path = "card") -> ModelCard:
        """A card from its JSON object; ``source`` names it in errors.

        Raises:
            ModelError: the object lacks a square input shape or its classes.
        """
        if not isinstance(raw, Mapping):
            raise ModelError(f"{source}: a model card is a JSON object, not {type(raw).__name__}")
        spec = raw.get("input") if isinstance(raw.get("input"), Mapping) else {}
        shape = spec.get("shape")
        if not (isinstance(shape, list) and shape and isinstance(shape[-1], int)):
            raise ModelError(f"{source}: its card has no input shape (input.shape); export the "
                             "model with 'emotrace export'")
        output = raw.get("output") if isinstance(raw.get("output"), Mapping) else {}
        typed = {key: raw[key] for key in _TYPED if key in raw}
        typed["zoom_views"] = tuple(float(z) for z in typed.get("zoom_views") or ())
        typed["metrics"] = dict(typed.get("metrics") or {})
        return cls(name=str(raw.get("name", Path(str(source)).stem)), image_size=int(shape[-1]),
                   scaling=str(spec.get("scaling", "fixed")),
                   classes=tuple(output.get("classes", EMOTIONS)),
                   framing=str(spec.get("framing", FRAMING)),
                   flip_average=bool(raw.get("flip_average", False)), **typed,
                   extra={k: v for k, v in raw.items()
                          if k not in _TYPED and k not in _STRUCTURE},
                   order=tuple(raw))

    # --- reading and writing ------------------------------------------------------------------
    @classmethod
    def read(cls, model: str | os.PathLike) -> ModelCard:
        """The card beside ``model`` (an ``.onnx`` file or a shipped model's name).

        Raises:
            ModelError: the card is missing or not a card; the message names the file.
        """
        path = card_path(model_path(model))
        if not path.is_file():
            raise ModelError(f"{model_path(model)}: its model card {path.name} is missing (it "
                             "records the input size); export models with 'emotrace export'")
        try:
            raw = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path}: not a readable model card ({error})") from None
        return cls.from_dict(raw, source=path)

    def write(self, model: str | os.PathLike) -> Path:
        """Write the card beside ``model`` atomically (never a half-written card).

        Returns:
            The card's path.
        """
        from emotrace.utils import atomic_path

        path = card_path(Path(model))
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json())
        return path

    def to_json(self) -> str:
        """The card as the JSON text that :meth:`write` stores (ending in a newline)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The card as a JSON object, its fields in the order they were read (new fields last)."""
        values: dict[str, Any] = {
            "name": self.name, "format": "onnx",
            "input": _input(self.image_size, self.scaling, self.framing),
            "output": _output(self.classes), "flip_average": self.flip_average}
        for key in _TYPED:
            value = getattr(self, key)
            if key == "zoom_views":
                value = list(value)
            if key in self.order or value not in (None, {}, [], ()):
                values[key] = value
        values.update(self.extra)
        if self.order:  # a card read from a file keeps exactly its own structural fields
            for key in ("format", "output", "flip_average"):
                if key not in self.order:
                    values.pop(key)
        order = list(self.order) or [*_STRUCTURE, *(k for k in values if k not in _STRUCTURE
                                                    and k not in _TAIL), *_TAIL]
        return {key: values[key] for key in [*order, *(k for k in values if k not in order)]
                if key in values}

    # --- what inference and evaluation ask of a card ------------------------------------------
    @property
    def temperature(self) -> float:
        """The calibration temperature (1.0 when the card has none)."""
        return float((self.calibration or {}).get("temperature", 1.0))

    @property
    def val_accuracy(self) -> float | None:
        """Validation accuracy measured on the exported file, if the card has it."""
        return self.metrics.get("val", {}).get("accuracy")

    @property
    def member_sizes(self) -> list[int]:
        """The input side of each network inside (one for a single model)."""
        members = (self.ensemble or {}).get("members") or [{"image_size": self.image_size}]
        return [int(m.get("image_size", self.image_size)) for m in members]

    @property
    def views(self) -> int:
        """Network passes per face: the face, its closer crops, and their mirror images."""
        return (2 if self.flip_average else 1) * (1 + len(self.zoom_views))


def _input(size: int, scaling: str, framing: str) -> dict[str, Any]:
    return {"name": "faces", "shape": ["batch", 1, size, size], "color": "gray",
            "range": [0.0, 1.0], "scaling": scaling, "framing": framing}


def _output(classes: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {"name": "probs", "classes": list(classes)}


# --- models that training starts from (init_from, soup ingredients) ---------------------------
def is_onnx_source(init_from: str | None) -> bool:
    """Whether ``init_from`` names an exported model rather than a Lightning checkpoint."""
    return bool(init_from) and (init_from in SHIPPED_MODELS
                                or Path(init_from).suffix.lower() == ".onnx")


def source_path(init_from: str, role: str = "init_from") -> Path:
    """The exported model file that ``init_from`` names; it and its card must exist.

    Args:
        init_from: a shipped model's name or an ``.onnx`` file.
        role: what the file is for, as the error messages say it.

    Raises:
        NotFoundError: the file or its card is missing.
    """
    path = model_path(init_from)
    if not path.is_file():
        raise NotFoundError(f"{role} model not found: {path.resolve()}; give fast or an "
                            "exported .onnx file with its card beside it")
    if not card_path(path).is_file():
        raise NotFoundError(f"{role} {path}: its card {card_path(path).name} is "
                            "missing; it names the backbone: put the .json written with the "
                            "model beside it")
    return path


def describe_source(init_from: str) -> dict[str, Any]:
    """The started-from model as a run's card records it: name, file SHA-1, its own training."""
    path = source_path(init_from)
    card = ModelCard.read(path)
    return {"model": init_from, "name": card.name,
            "sha1": hashlib.sha1(path.read_bytes()).hexdigest(),
            **{k: card.extra[k] for k in PARENT_FIELDS if k in card.extra}}
