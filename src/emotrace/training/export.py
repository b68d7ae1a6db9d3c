"""Export a trained run to ONNX (softmax and optional test-time views: mirror image, closer
crops, baked in) + model card."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emotrace.errors import ConfigError, NotFoundError
from emotrace.data.labels import EMOTIONS
from emotrace.evaluation.convergence import read_history, trained_epochs
from emotrace.models.onnx_weights import store_weights_as_float16
from emotrace.training.fit import PARENT_RECORD, load_module
from emotrace.training.onnx_init import is_onnx_source
from emotrace.utils import atomic_path


class ExportWrapper(nn.Module):
    """Grey faces ``(N, 1, S, S)`` in [0, 1] -> class probabilities ``(N, 7)``.

    Test-time augmentation (decided on the validation split): ``zooms`` adds a view per factor
    (the central ``z`` share of the face, resized back to ``S``), ``flip_average`` the mirror
    image of every view; the views' probabilities are averaged.
    """

    def __init__(self, net: nn.Module, flip_average: bool, zooms: Sequence[float] = ()) -> None:
        super().__init__()
        self.net, self.flip_average = net, flip_average
        self.zooms = tuple(float(z) for z in zooms)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        views = [faces] + [zoom_view(faces, z) for z in self.zooms]
        if self.flip_average:
            views += [view.flip(-1) for view in views]
        if len(views) == 1:
            return self.net(faces).softmax(dim=1)
        # One network call on all views: cheaper than one call each.
        probs = self.net(torch.cat(views)).softmax(dim=1)
        return probs.reshape(len(views), -1, probs.shape[1]).mean(dim=0)


def zoom_view(faces: torch.Tensor, zoom: float) -> torch.Tensor:
    """The central ``zoom`` share of each square face, resized back to its size (a closer crop).
    The margins are equal on every side, so a face and its mirror image get mirrored views."""
    check_zoom(zoom)
    size = int(faces.shape[-1])  # fixed in the exported graph: only the batch axis is dynamic
    if int(faces.shape[-2]) != size:
        raise ConfigError(f"zoom views need square faces, not {tuple(faces.shape[-2:])}")
    margin = round(size * (1 - zoom) / 2)
    centre = faces[..., margin:size - margin, margin:size - margin]
    return nn.functional.interpolate(centre, size=(size, size), mode="bilinear",
                                     align_corners=False)


def check_zoom(zoom: float) -> None:
    """A zoom view keeps between half the face and less than all of it."""
    if not 0.5 <= zoom < 1:
        raise ConfigError(f"zoom {zoom}: give the share of the face to keep, from 0.5 to below 1 "
                          "(e.g. 0.92)")


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


def new_card(name: str, image_size: int, scaling: str, flip_average: bool,
             command: str | None, **fields: Any) -> dict[str, Any]:
    """A model card before its metrics are measured: what the ONNX file takes and returns, the
    model's own ``fields`` (backbone, recipe, members, ...), when and by which command it was
    exported."""
    return {"name": name, "format": "onnx",
            "input": {"name": "faces", "shape": ["batch", 1, image_size, image_size],
                      "color": "gray", "range": [0.0, 1.0], "scaling": scaling,
                      "framing": "tight face crop like FER-2013"},
            "output": {"name": "probs", "classes": list(EMOTIONS)},
            "flip_average": flip_average,
            **fields,
            "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "export_command": command,
            "metrics": {}}


def write_card(model: Path, card: dict[str, Any], data: str,
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
        card.setdefault("metrics", {})[split] = {**result.summary(), "split_scheme": scheme}
        predicted[split] = "".join(map(str, result.predictions.tolist()))
    if predictions is not None:
        with atomic_path(predictions) as tmp:
            tmp.write_text(json.dumps(predicted))
    with atomic_path(model.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(card, indent=2))
    return model


def export_run(run_dir: str | Path, out: str | Path | None = None, flip_average: bool = False,
               evaluate_splits: tuple[str, ...] = ("val",), name: str | None = None,
               command: str | None = None, checkpoint: str = "best",
               save_predictions: bool = False) -> Path:
    """Export ``run_dir/best.ckpt`` to ``out`` (default ``run_dir/model.onnx``) and write its card
    (``out`` with ``.json``): recipe, data, training time and the metrics of ``evaluate_splits``
    measured on the exported file itself. ``flip_average`` bakes mirror-image averaging in
    (slightly more accurate, twice the compute per face). ``command``: the command line to record
    in the card. ``checkpoint``: ``best`` (highest validation accuracy) or ``last`` (the last
    epoch, for recipes without a best-checkpoint callback). ``save_predictions``: per-image
    predictions of each split beside the model (``.predictions.json``)."""
    run_dir = Path(run_dir)
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', not {checkpoint!r}")
    weights = run_dir / f"{checkpoint}.ckpt"
    if not weights.exists():
        raise NotFoundError(f"{weights} not found: train a model into {run_dir} first")
    module = load_module(weights)
    config = module.config
    out = Path(out) if out else run_dir / "model.onnx"
    with model_with_card(out) as staged:
        export_onnx(module.net, staged, config.image_size, flip_average)
        _write_run_card(run_dir, module, out, staged, flip_average, evaluate_splits, name,
                        command, checkpoint, save_predictions)
    return out


def _write_run_card(run_dir: Path, module: Any, out: Path, staged: Path, flip_average: bool,
                    evaluate_splits: Sequence[str], name: str | None, command: str | None,
                    checkpoint: str, save_predictions: bool) -> None:
    config = module.config
    summary = _run_summary(run_dir)
    card = new_card(name or out.stem, config.image_size, config.scaling, flip_average, command,
                    backbone=config.model, pretrained=config.pretrained, checkpoint=checkpoint,
                    data=config.data, recipe=config.to_dict(), **summary,
                    **_parent_summary(run_dir, config.init_from, summary),
                    **_teacher_summary(run_dir, config))
    write_card(staged, card, config.data, evaluate_splits, config.split, config.split_seed,
               out.with_suffix(".predictions.json") if save_predictions else None)


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
