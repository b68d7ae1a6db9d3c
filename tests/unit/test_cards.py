"""Model cards: typed, read and written in one place, byte-identical on a round trip; and the
package's import graph has no circle. Needs no data: the shipped cards are package files."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import pytest

from emotrace.cards import (SHIPPED_MODELS, ModelCard, ModelError, describe_source,
                            is_onnx_source, model_path, source_path)
from emotrace.errors import EmotraceError, NotFoundError

SRC = Path(__file__).resolve().parents[2] / "src" / "emotrace"


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_a_shipped_card_reads_typed_and_writes_back_byte_identical(name, tmp_path):
    source = model_path(name)
    card = ModelCard.read(name)
    assert card.image_size == json.loads(source.with_suffix(".json").read_text())[
        "input"]["shape"][-1]
    assert card.classes[0] == "angry" and len(card.classes) == 7
    copy = tmp_path / source.name
    assert card.write(copy) == copy.with_suffix(".json")
    assert copy.with_suffix(".json").read_text() == source.with_suffix(".json").read_text()


def test_the_accurate_card_knows_its_members_views_and_temperature():
    card = ModelCard.read("accurate")
    assert card.backbone == "ensemble" and len(card.member_sizes) == len(
        card.ensemble["members"]) >= 2
    assert card.views == (2 if card.flip_average else 1) * (1 + len(card.zoom_views))
    assert card.temperature == card.calibration["temperature"] != 1.0
    assert replace(card, calibration=None).temperature == 1.0


def test_a_new_card_has_the_documented_field_order_and_a_section_added_goes_last():
    card = ModelCard.new("m", 64, "clahe", True, "emotrace export run", backbone="resnet18",
                         recipe={"lr": 0.001})
    fields = card.to_dict()
    assert list(fields) == ["name", "format", "input", "output", "flip_average", "backbone",
                            "recipe", "exported", "export_command", "metrics"]
    assert fields["input"]["shape"] == ["batch", 1, 64, 64] and fields["input"]["scaling"] == "clahe"
    card.calibration = {"temperature": 1.5}
    again = ModelCard.from_dict(json.loads(card.to_json()))
    assert list(again.to_dict())[-1] == "calibration" and again.temperature == 1.5
    assert again.views == 2 and again.member_sizes == [64]


def test_unknown_fields_are_kept_in_their_place():
    raw = {"name": "m", "format": "onnx", "input": {"shape": ["batch", 1, 48, 48]},
           "speed": {"ms": 1.0}, "metrics": {"val": {"accuracy": 0.5}}, "later": [1, 2]}
    card = ModelCard.from_dict(raw)
    assert card.extra == {"speed": {"ms": 1.0}, "later": [1, 2]} and card.val_accuracy == 0.5
    assert list(card.to_dict()) == ["name", "format", "input", "speed", "metrics", "later"]


@pytest.mark.parametrize("raw", [[], {"name": "m"}, {"input": {"shape": []}},
                                 {"input": {"shape": ["batch", 1, "x", "x"]}}])
def test_a_card_without_an_input_shape_is_refused_with_its_name(raw):
    with pytest.raises(ModelError, match="broken.json"):
        ModelCard.from_dict(raw, source="broken.json")


def test_missing_or_unreadable_cards_name_the_file(tmp_path):
    model = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match="m.json is missing"):
        ModelCard.read(model)
    model.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="not a readable model card"):
        ModelCard.read(model)
    assert issubclass(ModelError, EmotraceError)


def test_init_from_sources_are_named_models_or_onnx_files_with_cards(tmp_path):
    assert is_onnx_source("fast") and is_onnx_source("x.ONNX")
    assert not is_onnx_source("runs/a/best.ckpt") and not is_onnx_source(None)
    assert source_path("fast") == model_path("fast")
    described = describe_source("fast")
    assert described["name"] == ModelCard.read("fast").name and len(described["sha1"]) == 40
    lone = tmp_path / "lone.onnx"
    with pytest.raises(NotFoundError, match="not found"):
        source_path(str(lone))
    lone.write_bytes(b"onnx")
    with pytest.raises(NotFoundError, match="lone.json is missing"):
        source_path(str(lone), role="soup")


def _imports(path: Path, package: str) -> set[str]:
    """The emotrace modules a module imports, at any depth in its code (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith(package))
    return found


def test_no_import_circle_among_emotrace_modules():
    modules = {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(
        ".__init__"): p for p in SRC.rglob("*.py")}
    graph = {m: {i for i in _imports(p, "emotrace") if i in modules and i != m}
             for m, p in modules.items()}
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    # a package's __init__ re-exporting its own modules is not a circle
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    training = [c for c in circles if all(m.startswith("emotrace.training") for m in c)]
    assert not training, training
    assert not circles, circles
