"""Grad-CAM for any emotrace ONNX model: which face regions drive a prediction.

The ONNX file (shipped model, an export or an ensemble) is converted back to torch with
onnx2torch, so the heatmaps explain exactly the model that predicts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from emotrace.inference.classifier import EmotionClassifier, apply_temperature


@dataclass
class Explanation:
    """Per face: probabilities ``(N, 7)``, the explained class ``(N,)`` and Grad-CAM heatmaps
    ``(N, S, S)`` in [0, 1] at the model's input size.

    Attributes:
        probs: ``(N, 7)`` probabilities (calibrated, as the classifier reports them).
        targets: ``(N,)`` the class each heatmap explains.
        heatmaps: ``(N, S, S)`` maps scaled to peak 1, at the model's input size.
    """

    probs: np.ndarray
    targets: np.ndarray
    heatmaps: np.ndarray


def _torch_model(path: Path) -> nn.Module:
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as error:
        raise ImportError("Grad-CAM needs torch, onnx and onnx2torch: "
                          "pip install 'emotrace[train]'") from error
    from emotrace.models.onnx_weights import weights_as_initializers

    return convert(weights_as_initializers(onnx.load(str(path)))).eval()


class GradCAM:
    """Grad-CAM on the last convolution whose map is at least ``input / stride`` wide (stride 16
    keeps a 6x6 map at 96 px: coarser maps cannot say mouth from eyes). In an ensemble each
    member has such a layer; their maps are summed, as the gradients of the ensemble's score
    weight them.

    Needs the ``[train]`` extra (torch, onnx, onnx2torch).

    Args:
        model: a shipped model's name (``fast``, ``accurate``), an emotrace ``.onnx`` file with
            its card, or ``None`` for the default model.
        stride: the coarsest map explained is at least ``input size / stride`` wide.

    Raises:
        ImportError: torch, onnx or onnx2torch is missing.
        ValueError: the model has no convolution to explain.

    Example:
        >>> from emotrace.data import read_face_image
        >>> explanation = GradCAM("fast").explain([read_face_image("../shared/testdata/face.jpg", 96)])
        >>> explanation.probs.shape, explanation.heatmaps.shape
        ((1, 7), (1, 96, 96))
    """

    def __init__(self, model: str | os.PathLike | None = None, stride: int = 16) -> None:
        self.classifier = EmotionClassifier(model)
        self.net = _torch_model(self.classifier.path)
        self.layers, self.scores_module = self._pick_layers(stride)
        #: side of the coarsest explained activation map, before upsampling to the input
        self.map_size = min(self._widths[layer] for layer in self.layers)

    def _pick_layers(self, stride: int) -> tuple[list[nn.Module], nn.Module | None]:
        size = self.classifier.size
        convs: list[tuple[nn.Module, int]] = []
        softmaxes: list[nn.Module] = []

        def record(module, _, output):
            if isinstance(module, nn.Conv2d):
                convs.append((module, output.shape[-1]))
            else:
                softmaxes.append(module)

        hooks = [m.register_forward_hook(record) for m in self.net.modules()
                 if isinstance(m, nn.Conv2d) or "softmax" in type(m).__name__.lower()]
        with torch.no_grad():
            self.net(torch.zeros(1, 1, size, size))
        for hook in hooks:
            hook.remove()
        wide = max(size // stride, 2)
        # within one network maps only shrink; a map growing again starts the next member
        layers = [module for i, (module, width) in enumerate(convs) if width >= wide and (
            i + 1 == len(convs) or convs[i + 1][1] < wide or convs[i + 1][1] > width)]
        if not layers:
            raise ValueError(f"{self.classifier.path}: no convolution layer to explain")
        self._widths = {module: width for module, width in convs}
        # the last softmax is the model's output: its input is the score Grad-CAM explains
        return layers, softmaxes[-1] if softmaxes else None

    def explain(self, faces: np.ndarray | list[np.ndarray],
                targets: np.ndarray | None = None) -> Explanation:
        """Heatmaps for face crops (as ``EmotionClassifier.predict_faces`` takes them), for the
        ``targets`` classes (default: each face's predicted class).

        Args:
            faces: grey face crops, one array each or stacked (any size: resized to the
                model's input).
            targets: the class to explain for each face, or ``None`` for the predicted one.

        Returns:
            The probabilities, the explained classes and the heatmaps.

        Example:
            >>> from emotrace.data import read_face_image
            >>> face = read_face_image("../shared/testdata/face.jpg", 96)
            >>> GradCAM("fast").explain([face], targets=np.array([3])).targets.tolist()
            [3]
        """
        batch = torch.from_numpy(self.classifier.preprocess(faces))
        activations: list[torch.Tensor] = []
        store: dict[str, torch.Tensor] = {}

        def keep_activation(_, __, output):
            output.retain_grad()
            activations.append(output)

        def keep_scores(_, inputs, __):
            store["scores"] = inputs[0]  # pre-softmax: Grad-CAM explains the class score

        hooks = [layer.register_forward_hook(keep_activation) for layer in self.layers]
        if self.scores_module is not None:
            hooks.append(self.scores_module.register_forward_hook(keep_scores))
        try:
            with torch.enable_grad():
                probs = self.net(batch)
                scores = store.get("scores")
                if scores is None or len(scores) != len(batch):
                    # test-time views (mirror, zoom) run as one batch of views x faces: explain
                    # the score averaged over the views
                    scores = torch.log(probs + 1e-12)
                chosen = (torch.as_tensor(targets) if targets is not None
                          else probs.argmax(dim=1))
                scores.gather(1, chosen[:, None]).sum().backward()
        finally:
            for hook in hooks:
                hook.remove()
        cam = torch.zeros(len(batch), 1, *batch.shape[-2:])
        for activation in activations:
            # the first rows are the faces as given (views follow): their map is in image
            # coordinates, a mirrored or zoomed view's is not
            activation, grad = activation[:len(batch)], activation.grad[:len(batch)]
            weights = grad.mean(dim=(2, 3), keepdim=True)
            layer_cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
            cam += F.interpolate(layer_cam, size=batch.shape[-2:], mode="bilinear",
                                 align_corners=False)
        cam = cam[:, 0]
        peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
        # the scores predict_faces gives (calibrated); the heatmaps explain the network's own
        probs = apply_temperature(probs.detach().numpy(), self.classifier.temperature)
        return Explanation(probs, chosen.numpy(), (cam / peak).detach().numpy())


def class_mean_heatmaps(explainer: GradCAM, images: np.ndarray, labels: np.ndarray,
                        batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Mean Grad-CAM of each true class over ``images`` (explaining the true class), and the
    mean face of each class: two ``(7, S, S)`` arrays.

    Args:
        explainer: the Grad-CAM of the model to explain.
        images: ``(N, H, W)`` grey face crops.
        labels: ``(N,)`` their true classes (the class explained).
        batch_size: faces per Grad-CAM pass.

    Returns:
        The mean heatmap and the mean model input of each class (zeros for a class without
        faces).

    Example:
        >>> from emotrace.data import load_dataset, select_split
        >>> faces = select_split(load_dataset("../shared/data/fer2013"), "test").subset(np.arange(64))
        >>> maps, means = class_mean_heatmaps(GradCAM("fast"), faces.images, faces.labels)
        >>> maps.shape, means.shape
        ((7, 96, 96), (7, 96, 96))
    """
    from emotrace.utils import progress

    size = explainer.classifier.size
    sums, faces = np.zeros((7, size, size)), np.zeros((7, size, size))
    counts = np.zeros(7)
    for start in progress(range(0, len(images), batch_size), desc="grad-cam",
                          total=-(-len(images) // batch_size), unit="batch"):
        chunk, truth = images[start:start + batch_size], labels[start:start + batch_size]
        result = explainer.explain(chunk, targets=truth)
        inputs = explainer.classifier.preprocess(chunk)[:, 0]
        for label in np.unique(truth):
            mask = truth == label
            sums[label] += result.heatmaps[mask].sum(axis=0)
            faces[label] += inputs[mask].sum(axis=0)
            counts[label] += mask.sum()
    counts = np.maximum(counts, 1)[:, None, None]
    return sums / counts, faces / counts
