"""Storing an ONNX model's weights as float16 and reading them back as float32 (with onnx
alone: Grad-CAM and ensemble members read them without the training stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Smaller tensors (biases, normalisation constants) stay float32: they weigh nothing.
HALF_MIN_SIZE = 1024
_HALF_SUFFIX = "::float16"


def store_weights_as_float16(path: Path) -> None:
    """Rewrite the ONNX file at ``path`` with its large float32 weights stored as float16, each
    cast back to float32 by a ``Cast`` node: half the file, float32 arithmetic on weights rounded
    to float16 (onnxruntime folds the casts when it loads the model).

    Args:
        path: the ONNX file, rewritten in place (checked with ``onnx.checker`` first).

    Example:
        >>> import os, shutil, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "fast.onnx"
        >>> _ = shutil.copy("src/emotrace/assets/emotrace-mobilenetv2-fer2013.onnx", path)
        >>> before = os.path.getsize(path)
        >>> store_weights_as_float16(path)
        >>> round(os.path.getsize(path) / before, 2)
        0.51
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph, casts, kept = model.graph, [], []
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        if (tensor.data_type != TensorProto.FLOAT or array.size < HALF_MIN_SIZE
                or np.abs(array).max() > np.finfo(np.float16).max):
            kept.append(tensor)
            continue
        half = tensor.name + _HALF_SUFFIX
        kept.append(numpy_helper.from_array(array.astype(np.float16), half))
        casts.append(helper.make_node("Cast", [half], [tensor.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)  # the casts first keep the nodes in topological order
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def float32_weights(model: Any) -> Any:
    """Undo :func:`store_weights_as_float16` on a loaded ONNX model (onnx2torch wants weights
    as initializers, not as the outputs of casts); other models are returned unchanged.

    Args:
        model: a loaded ``onnx.ModelProto``; changed in place.

    Returns:
        The same model, its float16-stored weights float32 initializers again.

    Example:
        >>> import onnx
        >>> model = onnx.load("src/emotrace/assets/emotrace-accurate-fer2013.onnx")
        >>> casts = lambda m: sum(node.op_type == "Cast" for node in m.graph.node)
        >>> casts(model), casts(float32_weights(model))
        (210, 0)
    """
    from onnx import numpy_helper

    graph = model.graph
    halves = {t.name: t for t in graph.initializer if t.name.endswith(_HALF_SUFFIX)}
    casts = [n for n in graph.node if n.op_type == "Cast" and n.input[0] in halves]
    restored = [numpy_helper.from_array(numpy_helper.to_array(halves[c.input[0]]).astype("float32"),
                                        c.output[0]) for c in casts]
    kept = [t for t in graph.initializer if t.name not in halves] + restored
    nodes = [n for n in graph.node if not (n.op_type == "Cast" and n.input[0] in halves)]
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(kept)
    graph.node.extend(nodes)
    return model


def shared_weights_as_initializers(model: Any) -> Any:
    """Give every weight its own initializer: the ONNX exporter stores a weight two members share
    (an ensemble listing one file twice) once, and names the second use with an ``Identity`` of
    it, which onnx2torch cannot read as a layer's weight.

    Args:
        model: a loaded ``onnx.ModelProto``; changed in place.

    Returns:
        The same model, each ``Identity`` of an initializer replaced by a copy of it.

    Example:
        >>> import onnx
        >>> model = onnx.load("src/emotrace/assets/emotrace-mobilenetv2-fer2013.onnx")
        >>> len(shared_weights_as_initializers(model).graph.node) > 0
        True
    """
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    aliases = [n for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers]
    for node in aliases:
        copy = graph.initializer.add()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
    copied = {node.output[0] for node in aliases}
    nodes = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in copied)]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def weights_as_initializers(model: Any) -> Any:
    """An emotrace ONNX model with every weight a float32 initializer of its own, as onnx2torch
    (Grad-CAM, ensembles of exported models) needs.

    Args:
        model: a loaded ``onnx.ModelProto``; changed in place.

    Returns:
        The same model, ready for ``onnx2torch.convert``.

    Example:
        >>> import onnx
        >>> model = weights_as_initializers(onnx.load("src/emotrace/assets/emotrace-accurate-fer2013.onnx"))
        >>> sum(node.op_type == "Cast" for node in model.graph.node)
        0
    """
    return shared_weights_as_initializers(float32_weights(model))
