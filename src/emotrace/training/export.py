"""Export a trained run to ONNX (softmax and optional test-time views: mirror image, closer
crops, baked in) + model card."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emotrace.cards import ModelCard, is_onnx_source
from emotrace.errors import NotFoundError
from emotrace.evaluation.convergence import read_history, trained_epochs
from emotrace.models.onnx_weights import store_weights_as_float16
from emotrace.training.fit import PARENT_RECORD, load_module
from emotrace.training.views import ExportWrapper, check_zoom, zoom_view  # noqa: F401 (API)
from emotrace.utils import atomic_path


def export_onnx(net: nn.Module, path: str | Path, image_size: int, flip_average: bool,
                zooms: Sequence[float] = (), half_weights: bool = False) -> Path:
    """Write ``net`` as an ONNX file with a dynamic batch axis (input ``faces``, output ``probs``),
    then check that onnxruntime reproduces torch's probabilities on a random batch.
    ``half_weights`` stores the weights as float16 (half the file; computed in float32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.to(memory_format=torch.contiguous_format)
    wrapper = ExportWrapper(net, flip_average, zooms).eval()
    # A fixed batch: the check is the same on every run.
    example = torch.rand(3, 1, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(wrapper, (example[:2],), str(tmp), input_names=["faces"],
                          output_names=["probs"], dynamic_axes={"faces": {0: "batch"},
                                                                "probs": {0: "batch"}},
                          opset_version=17, dynamo=False)
        full = _check_export(tmp, wrapper(example).numpy(), example, EXPORT_TOLERANCE)
        if half_weights:
            store_weights_as_float16(tmp)
            _check_export(tmp, full, example, HALF_WEIGHTS_TOLERANCE,
                          hint=": try again without --half-weights")
    return path


#: Largest difference in any probability between torch and onnxruntime on the same batch.
EXPORT_TOLERANCE = 1e-3
#: ... and between the float32 file and the same file with float16-rounded weights (rounding
#: alone moves probabilities by about 1e-3).
HALF_WEIGHTS_TOLERANCE = 5e-3


def _check_export(path: Path, expected: Any, example: torch.Tensor, tolerance: float,
                  hint: str = "") -> Any:
    """onnxruntime's probabilities for ``example`` from the file at ``path``, checked against
    ``expected`` (raises when any differs by more than ``tolerance``)."""
    from emotrace.inference.classifier import onnxruntime

    ort = onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"faces": example.numpy()})[0]
    error = float(abs(got - expected).max())
    if error > tolerance:
        raise RuntimeError(f"ONNX export of {path.name} differs from the network by {error:.2g} "
                           f"(tolerance {tolerance:g}){hint}")
    return got


def _run_summary(run_dir: Path) -> dict[str, Any]:
    """Training command, epochs, best epoch and time, from the run folder's files."""
    command = run_dir / "command.txt"
    summary: dict[str, Any] = {"train_command": command.read_text().strip() if command.exists()
                               else None}
    history = run_dir / "history.csv"
    if not history.exists():
        return summary
    rows = trained_epochs(read_history(history))
    best = max(rows, key=lambda r: r["val_acc"])
    return {**summary, "epochs_trained": len(rows), "best_epoch": best["epoch"],
            "training_time_s": rows[-1]["elapsed_s"], "best_val_acc_during_training": best["val_acc"]}


def _parent_summary(run_dir: Path, init_from: str | None,
                    own: dict[str, Any]) -> dict[str, Any]:
    """For a run started from another run's checkpoint or from an exported model: that run's or
    model's summary and the total time."""
    if not init_from:
        return {}
    if is_onnx_source(init_from):
        record = run_dir / PARENT_RECORD  # written when the run started
        parent = json.loads(record.read_text()) if record.exists() else {"model": init_from}
        parent_time = parent.get("total_training_time_s", parent.get("training_time_s", 0.0))
        return {"init_from": parent,
                "total_training_time_s": round(own.get("training_time_s", 0.0) + parent_time, 1)}
    parent = _run_summary(Path(init_from).parent)
    total = own.get("training_time_s", 0.0) + parent.get("training_time_s", 0.0)
    return {"init_from": {"checkpoint": init_from, **parent},
            "total_training_time_s": round(total, 1)}


def _teacher_summary(run_dir: Path, config: Any) -> dict[str, Any]:
    """For a distilled run: which teacher (name and the SHA-1 of the file whose soft targets it
    learnt from) and how its loss mixed them with the labels."""
    stamp = run_dir / "teacher-train.json"
    if not config.teacher or not stamp.exists():
        return {}
    return {"distillation": {"teacher": config.teacher,
                             "teacher_sha1": json.loads(stamp.read_text())["teacher"],
                             "soft_target_weight": config.distill_weight,
                             "temperature": config.distill_temperature}}


@dataclass(frozen=True)
class ExportOptions:
    """How a model is exported and what its card measures: one value for every builder
    (:func:`export_run`, :func:`~emotrace.training.ensemble.build_ensemble`,
    :func:`~emotrace.training.soup.build_soup`).

    Attributes:
        name: the model's name in its card (default: the output file's stem).
        flip_average: also average each face's mirror image (twice the compute).
        zooms: closer central crops to average too, each a share of the face's side.
        half_weights: store the weights as float16 (half the file; computed in float32).
        evaluate_splits: the splits measured on the exported file for the card.
        command: the command line recorded in the card.
        predictions: write each split's per-image predicted classes there (paired tests).
        data: the dataset to measure on (default: the one the model trained on).
    """

    name: str | None = None
    flip_average: bool = False
    zooms: tuple[float, ...] = ()
    half_weights: bool = False
    evaluate_splits: tuple[str, ...] = ("val",)
    command: str | None = None
    predictions: Path | None = None
    data: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "zooms", tuple(float(z) for z in self.zooms))
        object.__setattr__(self, "evaluate_splits", tuple(self.evaluate_splits))
        for zoom in self.zooms:
            check_zoom(zoom)


def write_card(model: Path, card: ModelCard, data: str,
               evaluate_splits: Sequence[str], scheme: str = "official", split_seed: int = 42,
               predictions: Path | None = None) -> Path:
    """Measure ``evaluate_splits`` of ``data`` on the exported file itself, put them in the card's
    ``metrics`` and write the card beside the model (``.json``). ``scheme``/``split_seed``: the
    run's own split, so a run trained on a stratified split is never scored on official images
    it trained on. ``predictions``: also write each split's per-image predicted classes there
    (``{split: "0362..."}``, one digit per image in dataset order) for paired tests. Returns the
    model path."""
    from emotrace.evaluation import evaluate
    from emotrace.inference.classifier import EmotionClassifier

    classifier = EmotionClassifier(model, card=card)
    predicted = {}
    for split in evaluate_splits:
        result = evaluate(classifier, data, split=split, scheme=scheme, split_seed=split_seed)
        card.metrics[split] = {**result.summary(), "split_scheme": scheme}
        predicted[split] = "".join(map(str, result.predictions.tolist()))
    if predictions is not None:
        with atomic_path(predictions) as tmp:
            tmp.write_text(json.dumps(predicted))
    card.write(model)
    return model


def export_run(run_dir: str | Path, out: str | Path | None = None, flip_average: bool = False,
               evaluate_splits: tuple[str, ...] = ("val",), name: str | None = None,
               command: str | None = None, checkpoint: str = "best",
               save_predictions: bool = False) -> Path:
    """Export a training run's checkpoint to ONNX with its card.

    The card records the recipe, data, training time and the metrics of ``evaluate_splits``
    measured on the exported file itself.

    Args:
        run_dir: the training run folder.
        out: the ``.onnx`` file to write (default ``run_dir/model.onnx``); the card goes beside.
        flip_average: bake mirror-image averaging in (slightly more accurate, twice the compute).
        evaluate_splits: the splits to measure for the card.
        name: the model's name in its card (default: ``out``'s stem).
        command: the command line to record in the card.
        checkpoint: ``best`` (highest validation accuracy) or ``last`` (the last epoch, for
            recipes without a best-checkpoint callback).
        save_predictions: write per-image predictions of each split beside the model
            (``.predictions.json``).

    Returns:
        The exported model's path.

    Example:
        >>> export_run("runs/mobilenetv2-fer2013-cpu", out="fast.onnx")  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', not {checkpoint!r}")
    weights = run_dir / f"{checkpoint}.ckpt"
    if not weights.exists():
        raise NotFoundError(f"{weights} not found: train a model into {run_dir} first")
    module = load_module(weights)
    out = Path(out) if out else run_dir / "model.onnx"
    options = ExportOptions(name=name, flip_average=flip_average, command=command,
                            evaluate_splits=evaluate_splits,
                            predictions=out.with_suffix(".predictions.json")
                            if save_predictions else None)
    with model_with_card(out) as staged:
        export_onnx(module.net, staged, module.config.image_size, flip_average)
        _write_run_card(run_dir, module, out, staged, checkpoint, options)
    return out


def _write_run_card(run_dir: Path, module: Any, out: Path, staged: Path, checkpoint: str,
                    options: ExportOptions) -> None:
    config = module.config
    summary = _run_summary(run_dir)
    card = ModelCard.new(options.name or out.stem, config.image_size, config.scaling,
                    options.flip_average, options.command,
                    backbone=config.model, pretrained=config.pretrained, checkpoint=checkpoint,
                    data=config.data, recipe=config.to_dict(), **summary,
                    **_parent_summary(run_dir, config.init_from, summary),
                    **_teacher_summary(run_dir, config))
    write_card(staged, card, config.data, options.evaluate_splits, config.split,
               config.split_seed, options.predictions)


@contextmanager
def model_with_card(out: Path) -> Iterator[Path]:
    """Yield a temporary path to export the model to and write its card beside (``.json``); only
    when the block succeeds do both move onto ``out`` and ``out.json``. A build that fails
    halfway (a missing dataset while measuring the card, say) leaves any older model and card
    as they were, never a new model beside an old card."""
    with atomic_path(out.with_suffix(".json")) as card, atomic_path(out) as model:
        staged_card = model.with_suffix(".json")
        try:
            yield model
            os.replace(staged_card, card)
        finally:
            staged_card.unlink(missing_ok=True)
