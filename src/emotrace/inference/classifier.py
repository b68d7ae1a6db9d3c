"""The emotion classifier: an ONNX model run by onnxruntime, with its model card."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from emotrace.data.images import equalize_face, resize_face
from emotrace.cards import (DEFAULT_MODEL, SHIPPED_MODELS, ModelCard, ModelError,  # noqa: F401
                            default_model_path, model_path)


def onnxruntime():
    """onnxruntime, imported with its telemetry off: otherwise it writes a device id and an
    event database under ``~/.cache/Microsoft`` on every run (a user's explicit
    ``ORT_DISABLE_TELEMETRY`` is respected; it must be set before the first import)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    return ort


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling: ``softmax(log(probs) / temperature)`` row by row (the predicted
    class never changes; see :mod:`emotrace.evaluation.calibration`)."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(probs.dtype, copy=False)


class EmotionClassifier:
    """Classifies face crops into the seven emotions.

    ``predict_faces`` takes a batch of crops (grey ``(N, H, W)`` uint8, or a list of grey / BGR
    images of any size) and returns ``(N, 7)`` probabilities in :data:`EMOTIONS` order. One
    onnxruntime session is created and reused.
    """

    def __init__(self, model: str | os.PathLike | None = None,
                 card: ModelCard | Mapping[str, Any] | None = None,
                 threads: int | None = None) -> None:
        path = model_path(model)
        if not path.is_file():
            shipped = model is None or os.fspath(model) in SHIPPED_MODELS
            hint = (" (a shipped model is missing: reinstall emotrace)" if shipped
                    else f"; give a shipped model's name ({', '.join(SHIPPED_MODELS)}) or an "
                         ".onnx file exported by 'emotrace export'")
            raise ModelError(f"model file not found: {path}{hint}")
        self.path = path
        if card is None:
            card = ModelCard.read(path)
        elif not isinstance(card, ModelCard):
            card = ModelCard.from_dict(card, source=path)
        self.card: ModelCard = card
        self.size = card.image_size
        self.scaling = card.scaling
        self.classes = card.classes
        #: fitted by 'emotrace calibrate' (temperature scaling); 1 = the network's own scores
        self.temperature = card.temperature
        ort = onnxruntime()
        options = ort.SessionOptions()
        # No busy-waiting between calls: the detector needs those cores between two batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: not a usable ONNX model ({error})") from None
        self.input_name = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return self.card.name

    def preprocess(self, faces: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Crops -> ``(N, 1, S, S)`` float32 in [0, 1], as in training."""
        batch = np.empty((len(faces), 1, self.size, self.size), np.float32)
        for i, face in enumerate(faces):
            if face.ndim == 3:
                face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY if face.shape[2] == 3
                                    else cv2.COLOR_BGRA2GRAY)
            face = resize_face(face, self.size)
            batch[i, 0] = equalize_face(face) if self.scaling == "clahe" else face
        batch /= 255.0
        if self.scaling == "minmax":
            low = batch.min(axis=(2, 3), keepdims=True)
            high = batch.max(axis=(2, 3), keepdims=True)
            batch = (batch - low) / np.maximum(high - low, 1e-6)
        return batch

    def predict_faces(self, faces: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """``(N, 7)`` emotion probabilities for N face crops (one batched model call)."""
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        probs = self.session.run(None, {self.input_name: self.preprocess(faces)})[0]
        return apply_temperature(probs, self.temperature)
