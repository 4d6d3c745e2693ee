"""Fine-tune an ONNX model's own weights: the graph runs as a torch module (engines.onnx_torch), the chosen
late layers' initialisers become trainable parameters, and the tuned tensors are written back by name into a
copy of the original graph.

Why the ONNX file and not a checkpoint: the shipped model comes without one, and its exporter folded every
BatchNorm into the convolution before it, so a CrowdLite0 rebuilt from the file would need its BatchNorms
faked as identities and its 48 trunk convolutions matched to unnamed `onnx::Conv_N` tensors by position.
Running the graph itself keeps the count head, the density rescaling and the exact operators the stream runs,
and the output is the same graph with new weights, so `crowdstream engine quantize` makes INT8 of it as of
the shipped model, and a fine-tuned model can be fine-tuned again.

Layers are told apart by the exporter's node scopes (`/model/backbone/_blocks.15/...`, `/model/lateral.32`):
the decoder (every convolution outside the backbone) and the last `last_blocks` backbone blocks are trained.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.spec import SPEC

BLOCK_SCOPE = re.compile(r"/backbone/_blocks\.(\d+)/")


def conv_weights_by_layer(model) -> dict[str, list[str]]:
    """Layer name (`block 15`, `decoder`, `stem`) → the initialiser names of its convolutions."""
    initialisers = {t.name for t in model.graph.initializer}
    layers: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        match = BLOCK_SCOPE.search(node.name)
        layer = f"block {match.group(1)}" if match else "stem" if "/backbone/" in node.name else "decoder"
        layers.setdefault(layer, []).extend(name for name in node.input[1:] if name in initialisers)
    return layers


def trainable_names(model, last_blocks: int) -> list[str]:
    """The decoder's and the last `last_blocks` backbone blocks' convolution weights and biases."""
    layers = conv_weights_by_layer(model)
    blocks = sorted(int(name.split()[1]) for name in layers if name.startswith("block "))
    if not blocks or "decoder" not in layers:
        raise CrowdstreamError(
            "this ONNX model does not name its layers like crowd-lite0 (/model/backbone/_blocks.N, a decoder "
            "after it), so fine-tuning cannot tell which layers to train; start from the shipped model"
        )
    chosen = blocks[len(blocks) - last_blocks :] if last_blocks > 0 else []
    return [name for block in chosen for name in layers[f"block {block}"]] + layers["decoder"]


def raw_density_name(model) -> str:
    """The density map before the count head: the exporter multiplies it by each tile's count / integral to
    make the `density` output. The loss must see this one, as in training: on the calibrated map the point
    loss would undo the calibration (the count head lifts sparse tiles 1.34×, so the loss would push the raw
    map down by as much and every count would drop). A graph without a count head has only `density`."""
    producers = {output: node for node in model.graph.node for output in node.output}
    final = producers.get(SPEC.density_name)
    if final is None or final.op_type != "Mul":
        return SPEC.density_name
    for name in final.input:
        if SPEC.count_name not in _ancestors(name, producers):
            return name
    return SPEC.density_name


def expose_raw_density(module: torch.nn.Module, model) -> list[str]:
    """Make an OnnxModule of `model` also return the raw density map, as its last output (for the loss);
    returns the output names it had, to restore before the module is compared with the written file."""
    outputs = list(module.output_names)
    module.output_names = [*outputs, raw_density_name(model)]
    return outputs


def _ancestors(name: str, producers: dict) -> set[str]:
    seen, stack = set(), [name]
    while stack:
        node = producers.get(stack.pop())
        for parent in node.input if node is not None else ():
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def make_trainable(module: torch.nn.Module, names: list[str]) -> list[torch.nn.Parameter]:
    """Turn the buffers holding `names` (engines.onnx_torch.OnnxModule keeps every initialiser as a buffer)
    into parameters; everything else stays a constant."""
    parameters = []
    for name in names:
        buffer = module.buffer_names[name]
        value = getattr(module, buffer).detach().clone().float()
        delattr(module, buffer)
        parameter = torch.nn.Parameter(value)
        module.register_parameter(buffer, parameter)
        parameters.append(parameter)
    return parameters


def tuned_tensors(module: torch.nn.Module, names: list[str]) -> dict[str, np.ndarray]:
    """The current values of the trained initialisers, by ONNX name."""
    return {name: getattr(module, module.buffer_names[name]).detach().cpu().numpy() for name in names}


def write_tuned(base: Path, out: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A copy of `base` with the named initialisers replaced (same graph, same names, same dtypes)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(base))
    by_name = {t.name: t for t in model.graph.initializer}
    for name, value in tensors.items():
        old = by_name[name]
        dtype = numpy_helper.to_array(old).dtype
        old.CopyFrom(numpy_helper.from_array(value.astype(dtype).reshape(tuple(old.dims)), name))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out
