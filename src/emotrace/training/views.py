"""The network as exported: grey faces in, probabilities out, with the test-time views (mirror
image, closer crops) baked in. Its own module because both the exporter and the ONNX importer
(:mod:`emotrace.training.onnx_init`, which checks a rebuilt network through the same views)
use it: in ``export`` it closed the import circle export -> fit -> module -> onnx_init -> export.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from emotrace.errors import ConfigError


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
