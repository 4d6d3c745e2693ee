"""Quantisation-aware fine-tuning: the student sees the INT8 copy's rounding exactly where the copy rounds,
so that the copy the CPU counts with, not only the FP32 model, learns what the fine-tune teaches.

`simulate_int8` wraps a training.finetune student (an engines.onnx_torch module) in place: each activation
the copy quantises is rounded with the copy's own calibrated scale and zero point (a Conv followed by Clip
at the Conv, over the Clip's range, as ONNX Runtime fuses them), the input too, every quantised
convolution's weights per output channel to 7 bits (engines.quantize writes `reduce_range` weights) and its
bias to int32 steps; gradients pass straight through. The first recipe quantised every Conv, Clip and Add
over its own MinMax range with 8-bit weights; its student counted +35 % over the real INT8 copy on training
tiles and the copy of what it learned undercounted (model card, stage 6). This one computes the copy's
own activations, to one quantum on its first ten quantised tensors where the plain FP32 student is tens of
quanta off (tests/test_quantisation_aware.py); on stage 3's 7-bit copy it counted 0.83 people per training
tile from the copy, the FP32 model 2.8.

>>> weight_scale(torch.tensor([[1.28, -0.64], [0.5, 0.25]])).tolist()
[0.019999999552965164, 0.0078125]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import torch

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.onnx_passes import optimised_model

WEIGHT_LEVELS = 64
"""engines.quantize writes 7-bit weights (ONNX Runtime's reduce_range): max |w| maps to 64."""

Step = tuple[Callable, list[str], str]


def fake_activation(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """`x` rounded to the uint8 grid of (scale, zero_point), straight-through."""
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per output channel, as ONNX Runtime's symmetric weights: max |w| maps to WEIGHT_LEVELS."""
    return w.detach().abs().amax(dim=tuple(range(1, w.dim()))).clamp_min(1e-12) / WEIGHT_LEVELS


def fake_weight(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`w` rounded per output channel to multiples of `scale` (weight_scale(w)), straight-through."""
    return torch.fake_quantize_per_channel_affine(
        w, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -WEIGHT_LEVELS, WEIGHT_LEVELS
    )


def fake_bias(b: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The bias as QLinearConv holds it: int32 in steps of input scale × weight scale, saturating (a
    channel whose weights are all near 0 gets a tiny step, and its bias is cut to what int32 can hold)."""
    held = torch.clamp(torch.round(b.detach() / step), -(2**31), 2**31 - 1) * step
    return b + (held - b.detach())


def quantisation_params(int8_model: Path) -> dict[str, tuple[float, int]]:
    """Scale and zero point of every activation the INT8 copy quantises (QOperator names each
    `<tensor>_scale` / `<tensor>_zero_point`; quantised weights have a `<weight>_quantized` beside them)."""
    values = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(int8_model)).graph.initializer}
    tensors = [name.removesuffix("_scale") for name in values if name.endswith("_scale")]
    return {
        tensor: (float(values[f"{tensor}_scale"]), int(values[f"{tensor}_zero_point"]))
        for tensor in tensors
        if f"{tensor}_quantized" not in values
    }


def rounded_convolution(function: Callable, input_scale: float) -> Callable:
    """A Conv step whose weights and bias are rounded as the copy holds them."""

    def run(x, w, b=None, *rest):
        scale = weight_scale(w)
        held_bias = None if b is None else fake_bias(b, input_scale * scale)
        return function(x, fake_weight(w, scale), held_bias, *rest)

    return run


def rounded_input(function: Callable, params: tuple[float, int]) -> Callable:
    return lambda x, *rest: function(fake_activation(x, *params), *rest)


def rounded_output(function: Callable, params: tuple[float, int]) -> Callable:
    return lambda *inputs: fake_activation(function(*inputs), *params)


def simulate_int8(module: torch.nn.Module, fp32_model: Path, int8_model: Path) -> list[Step]:
    """Make `module` (loaded from `fp32_model`) round where `int8_model`, its INT8 copy, rounds; returns its
    plain steps, to put back before the FP32 weights are written and checked."""
    params = quantisation_params(int8_model)
    graph = onnx.load_from_string(optimised_model(fp32_model)).graph
    convolutions = {node.output[0] for node in graph.node if node.op_type == "Conv"}
    scale_of = {name: scale for name, (scale, _) in params.items()}
    for node in graph.node:  # a Clip or Relu the copy fused away passes its input's scale on
        if node.op_type in ("Clip", "Relu") and node.input[0] in scale_of:
            scale_of.setdefault(node.output[0], scale_of[node.input[0]])
    outputs = {out for _, _, out in module.steps}
    missing = sorted(set(params) - outputs - set(module.input_names))
    if missing:
        raise CrowdstreamError(
            f"{int8_model} is not an INT8 copy of {fp32_model}: it quantises {missing[0]}, which that "
            f"model does not compute ({len(missing)} such tensors)"
        )
    plain = list(module.steps)
    wrapped = []
    for function, names, out in plain:
        if names and names[0] in module.input_names and names[0] in params:
            function = rounded_input(function, params[names[0]])
        if out in convolutions and out in params:
            function = rounded_convolution(function, scale_of[names[0]])
        if out in params:
            function = rounded_output(function, params[out])
        wrapped.append((function, names, out))
    module.steps = wrapped
    return plain
