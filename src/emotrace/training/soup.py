"""Model soups (Wortsman et al. 2022): one network whose weights are the average of several
exported networks fine-tuned from the same start. Such networks often lie in one basin of the
loss, so their average can score like a small ensemble at one network's cost; networks trained
from different starts average into noise, which the soup's measured accuracy shows at once.

Each ingredient is read back from its ``.onnx`` file (BatchNorms folded into the convolutions,
see :mod:`emotrace.training.onnx_init`), so the average is taken over exactly the weights that
run at inference.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Sequence

import torch

from emotrace.cards import ModelCard, describe_source
from emotrace.errors import ConfigError
from emotrace.training.export import ExportOptions, export_onnx, model_with_card, write_card
from emotrace.training.onnx_init import conv_norm_pairs, folded_network, measure_norm_inputs

#: Card entries that must agree for networks to be averaged weight by weight.
SAME_IN_EVERY_INGREDIENT = ("backbone", "input")


def _head(card: ModelCard) -> dict[str, Any]:
    """What shapes the head, as the card's recipe records it (defaults where it does not)."""
    recipe = card.recipe or {}
    return {"head_hidden": list(recipe.get("head_hidden") or ()),
            "batch_norm": bool(recipe.get("batch_norm"))}


def _check_compatible(cards: Sequence[ModelCard], sources: Sequence[str]) -> None:
    first = cards[0].to_dict()
    for source, card in zip(sources[1:], cards[1:]):
        fields = card.to_dict()
        for key in SAME_IN_EVERY_INGREDIENT:
            if fields.get(key) != first.get(key):
                raise ConfigError(f"{source}: its {key} ({fields.get(key)}) differs from "
                                  f"{sources[0]}'s ({first.get(key)}); a soup averages networks "
                                  "of one architecture and input")
        if _head(card) != _head(cards[0]):
            raise ConfigError(f"{source}: its head {_head(card)} differs from {sources[0]}'s "
                              f"{_head(cards[0])}; a soup averages networks of one architecture")


def average_weights(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts with the same keys and shapes (summed in float64);
    integer entries (BatchNorm batch counters) are taken from the first."""
    averaged = {}
    for key, first in states[0].items():
        if not first.is_floating_point():
            averaged[key] = first.clone()
            continue
        total = sum(state[key].double() for state in states) / len(states)
        averaged[key] = total.to(first.dtype)
    return averaged


def _output_statistics(net: torch.nn.Module,
                       faces: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and standard deviation of each BatchNorm's output on ``faces`` (each
    BatchNorm of a folded network adds its bias: the output is its input shifted)."""
    norms = [norm for _, norm in conv_norm_pairs(net)]
    measured = measure_norm_inputs(net, norms, faces)
    return [(mean + norm.bias.detach(), var.sqrt()) for norm, (mean, var) in zip(norms, measured)]


@torch.no_grad()
def repair(soup: torch.nn.Module, ingredients: Sequence[torch.nn.Module],
           faces: torch.Tensor, batch_size: int = 512) -> None:
    """REPAIR (Jordan et al. 2023): an average of networks loses activation variance layer
    after layer. Give each BatchNorm channel of ``soup`` the ingredients' average mean and
    standard deviation on ``faces`` (un-augmented training faces); the soup's own statistics are
    recorded in one pass in which each layer already sees the corrected layers before it."""
    targets = [_output_statistics(net, faces) for net in ingredients]
    norms = [norm for _, norm in conv_norm_pairs(soup)]
    momenta = [norm.momentum for norm in norms]
    for k, norm in enumerate(norms):
        norm.bias.copy_(torch.stack([t[k][0] for t in targets]).mean(0))
        norm.weight.copy_(torch.stack([t[k][1] for t in targets]).mean(0))
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches of the pass
    soup.eval()
    for norm in norms:
        norm.train()  # normalise by the soup's own statistics while they are recorded
    # mixed batches of (nearly) equal size: the faces come grouped by class, each batch's
    # statistics normalise the layers after it, and the pass averages batches equally
    order = torch.randperm(len(faces), generator=torch.Generator().manual_seed(0))
    for batch in faces[order].tensor_split(-(-len(faces) // batch_size)):
        soup(batch)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    soup.eval()


@functools.lru_cache(maxsize=2)  # a search over soups renormalises many on the same faces
def training_faces_for(data: str, image_size: int, scaling: str = "fixed",
                       split: str = "official", split_seed: int = 42) -> torch.Tensor:
    """2,048 un-augmented training faces of ``data`` spread over its classes, as a network of
    that input sees them."""
    from emotrace.training.config import TrainConfig
    from emotrace.training.fit import build_datamodule, training_faces

    config = TrainConfig(data=data, image_size=image_size, scaling=scaling, split=split,
                         split_seed=split_seed)
    datamodule = build_datamodule(config)
    datamodule.setup()
    return training_faces(datamodule)


def _ingredients(sources: Sequence[str | Path]) -> tuple[list[torch.nn.Module],
                                                         list[ModelCard]]:
    """Each exported model read back into its network, with its card, checked to average."""
    if len(sources) < 2:
        raise ConfigError("a soup needs at least two exported models")
    names = [str(s) for s in sources]
    nets, cards = zip(*(folded_network(s) for s in names))
    _check_compatible(cards, names)
    return list(nets), list(cards)


def _soup_of(nets: Sequence[torch.nn.Module],
             repair_on: torch.Tensor | None) -> torch.nn.Module:
    soup = copy.deepcopy(nets[0])
    soup.load_state_dict(average_weights([net.state_dict() for net in nets]))
    if repair_on is not None:
        repair(soup, nets, repair_on)
    return soup.eval()


def soup_network(sources: Sequence[str | Path], repair_on: torch.Tensor | None = None
                 ) -> tuple[torch.nn.Module, list[ModelCard]]:
    """The uniform soup of the exported single models ``sources`` and their cards;
    ``repair_on``: training faces to renormalise the soup on (see :func:`repair`)."""
    nets, cards = _ingredients(sources)
    return _soup_of(nets, repair_on), cards


def _ingredient_record(source: str, card: ModelCard) -> dict[str, Any]:
    return {**describe_source(source), "val_acc": card.val_accuracy}


def build_soup(sources: Sequence[str | Path], out: str | Path, renormalise: bool = False,
               options: ExportOptions | None = None, **option_fields: Any) -> Path:
    """Export the uniform soup of ``sources`` as one ONNX model with its card.

    The card records the ingredients (file, SHA-1, their own validation accuracy and training
    command) and the soup's metrics on ``options.evaluate_splits``, measured on the exported
    file on the split the ingredients trained with.

    Args:
        sources: exported single models fine-tuned from the same start (two or more).
        out: the ``.onnx`` file to write; the card goes beside it.
        renormalise: apply :func:`repair` on 2,048 faces of the data the first ingredient
            trained on (``options.data`` when its card names none).
        options: how to export (:class:`ExportOptions`), or its fields as keywords.
            ``options.data``: the dataset to measure on (default: the first ingredient's).

    Returns:
        The exported model's path.

    Example:
        >>> build_soup(["a.onnx", "b.onnx"], "soup.onnx", renormalise=True)  # doctest: +SKIP
    """
    options = options or ExportOptions(**option_fields)
    nets, cards = _ingredients(sources)
    first = cards[0]
    recipe = first.recipe or {}
    split, split_seed = recipe.get("split", "official"), recipe.get("split_seed", 42)
    measured_on = options.data or first.data
    if not measured_on:
        raise ConfigError(f"{sources[0]}: its card names no dataset; give one with --data")
    faces = (training_faces_for(first.data or measured_on, first.image_size, first.scaling,
                                split, split_seed) if renormalise else None)
    net = _soup_of(nets, faces)
    out = Path(out)
    method = "uniform average of the exported weights (BatchNorm folded)" + (
        ", renormalised (REPAIR) on 2,048 training faces" if renormalise else "")
    card = ModelCard.new(options.name or out.stem, first.image_size, first.scaling,
                    options.flip_average, options.command,
                    backbone=first.backbone, pretrained=first.pretrained,
                    data=measured_on, recipe=recipe,
                    soup={"method": method,
                          "ingredients": [_ingredient_record(str(s), c)
                                          for s, c in zip(sources, cards)]})
    with model_with_card(out) as staged:
        export_onnx(net, staged, first.image_size, flip_average=options.flip_average)
        write_card(staged, card, measured_on, options.evaluate_splits, split, split_seed)
    return out
