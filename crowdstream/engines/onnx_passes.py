"""Graph rewrites that make an exported model faster on ONNX Runtime without changing its results.

The exporter writes TensorFlow-style "same" padding (EfficientNet weights expect it) as an explicit
`Pad` before each convolution. ONNX Runtime does not fuse those pads here, so every one of the 48
convolutions pays a layout round trip (NCHWc → NCHW → Pad → NCHWc) that costs about as much as the
convolution itself. A Conv has its own (possibly asymmetric) `pads`, so each constant zero `Pad` that
only feeds convolutions folds into them exactly. The pad amounts come from a shape-computing subgraph
in the export; ONNX Runtime's basic (hardware-independent) optimisation level folds that into
constants first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def constant_folded(path: Path):
    """The model after ONNX Runtime's basic, portable optimisations (constant folding, no-op removal)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(scratch) / "basic.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def spatial_zero_pads(pad, initializers: dict) -> np.ndarray | None:
    """(top, left, bottom, right) of a constant-zero NCHW `Pad` that pads only H and W, else None."""
    from onnx import numpy_helper

    modes = [a.s for a in pad.attribute if a.name == "mode"]
    has_value = len(pad.input) > 2 and pad.input[2]
    if (modes and modes[0] != b"constant") or has_value or pad.input[1] not in initializers:
        return None
    pads = numpy_helper.to_array(initializers[pad.input[1]])
    if pads.shape != (8,) or pads[[0, 1, 4, 5]].any() or (pads < 0).any():
        return None
    return pads[[2, 3, 6, 7]]


def absorbs_padding(node) -> bool:
    auto_pad = [a.s for a in node.attribute if a.name == "auto_pad"]
    return node.op_type == "Conv" and auto_pad in ([], [b"NOTSET"])


def add_conv_pads(conv, extra: np.ndarray) -> None:
    """Conv pads are (top, left, bottom, right) for 2-D: add the folded Pad's amounts."""
    from onnx import helper

    old = [a for a in conv.attribute if a.name == "pads"]
    current = np.array(old[0].ints if old else [0, 0, 0, 0])
    for attribute in old:
        conv.attribute.remove(attribute)
    conv.attribute.append(helper.make_attribute("pads", [int(v) for v in current + extra]))


def fold_pads(model) -> int:
    """Fold constant zero `Pad` nodes into the convolutions they feed, in place; returns how many."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    folded = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        amounts = spatial_zero_pads(pad, initializers)
        users = consumers.get(pad.output[0], [])
        feeds_data_only = all(u.input[0] == pad.output[0] and absorbs_padding(u) for u in users)
        if amounts is None or not users or pad.output[0] in outputs or not feeds_data_only:
            continue
        for conv in users:
            add_conv_pads(conv, amounts)
            conv.input[0] = pad.input[0]
        graph.node.remove(pad)
        consumers[pad.input[1]].remove(pad)
        if not consumers[pad.input[1]]:  # drop the orphaned pad amounts (ONNX Runtime warns about them)
            graph.initializer.remove(initializers.pop(pad.input[1]))
        folded += 1
    return folded


def optimised_model(path: Path) -> bytes:
    """The serialized model with constants folded and pads merged into convolutions."""
    model = constant_folded(path)
    fold_pads(model)
    return model.SerializeToString()
