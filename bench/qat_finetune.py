"""Quantisation-aware fine-tune (issue 25, "stage 6" in the model card): a camera-like fine-tune whose student
sees the INT8 copy's rounding exactly where the copy rounds (fake_quantised: the copy's own activation scales
and zero points, 7-bit per-channel weights, int32 biases; straight-through gradients), so that the INT8
copy, not only the FP32 model, learns to read textures as empty.

The first run (40 CPU minutes from stage 5) quantised every Conv, Clip and Add over its own MinMax range and
8-bit weights; that student counted +35 % over the real INT8 copy on training tiles (the copy fuses each
Clip into its Conv), so the copy of what it learned undercounted (hold-out B −44 % bias). This simulation
matches the copy to 0.8 people per tile (stage 3's 7-bit copy, 33 training tiles; FP32 to the copy: 2.8).
Scratch-level: it wraps `training.finetune`'s student and skips its FP32 parity check (the student is the
fake-quantised graph).

    crowdstream engine quantize runs/camera5/stage5.onnx --images 128
    python bench/qat_finetune.py --data runs/camera5/data --base runs/camera5/stage5.onnx \
        --int8 runs/camera5/stage5-int8.onnx --out runs/qat/stage6.onnx --minutes 40
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx
import torch

import crowdstream.training.finetune as finetune
from crowdstream.engines.data_root import DATA_ROOT_HELP, resolve_data_root
from crowdstream.engines.onnx_passes import optimised_model


def fake_activation(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


WEIGHT_LEVELS = 64
"""engines.quantize writes 7-bit weights (ONNX Runtime's reduce_range: max |w| maps to 64)."""


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


def fake_quantised(module, fp32_model: Path, int8_model: Path):
    """`module` (training.finetune's student) with the INT8 copy's rounding simulated exactly where the
    copy rounds: each activation it quantises (with its calibrated scale and zero point; a Conv followed
    by Clip is quantised at the Conv over the Clip's range, as ONNX Runtime fuses them), the input, every
    quantised convolution's weights (per channel) and bias (int32). The first recipe quantised every
    Conv, Clip and Add over its own MinMax range; its student counted +35 % over the real INT8 copy on
    training tiles, and the copy of what it learned undercounted."""
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
        raise SystemExit(f"{int8_model}: quantised tensors not in the FP32 graph: {missing[:5]}")
    wrapped = []
    for function, names, out in module.steps:
        if names and names[0] in module.input_names and names[0] in params:
            function = (lambda f, p: lambda x, *a: f(fake_activation(x, *p), *a))(function, params[names[0]])
        if out in convolutions and out in params:
            scale = scale_of[names[0]]

            def conv(f, input_scale):
                def run(x, w, b=None, *rest):
                    scale = weight_scale(w)
                    b_q = None if b is None else fake_bias(b, input_scale * scale)
                    return f(x, fake_weight(w, scale), b_q, *rest)

                return run

            function = conv(function, scale)
        if out in params:
            function = (lambda f, p: lambda *a: fake_activation(f(*a), *p))(function, params[out])
        wrapped.append((function, names, out))
    module.steps = wrapped
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="snapshot folder (bench/camera_finetune.py's data/)"
    )
    parser.add_argument("--base", type=Path, required=True, help="FP32 model to start from")
    parser.add_argument(
        "--int8",
        type=Path,
        required=True,
        help="its INT8 copy (engine quantize), whose rounding is simulated",
    )
    parser.add_argument("--out", type=Path, required=True, help="model to write")
    parser.add_argument("--minutes", type=float, default=40.0, help="training budget (default 40)")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)
    args = parser.parse_args()
    data_root = resolve_data_root(args.data_root)
    plain_loader, loaded = finetune.load_onnx_module, []

    def load_student_fake_quantised(path):
        module = plain_loader(path)
        loaded.append(path)
        return (
            fake_quantised(module, Path(path), args.int8) if len(loaded) == 1 else module
        )  # then the teacher

    finetune.load_onnx_module = load_student_fake_quantised
    finetune.check_parity = lambda *_args, **_kwargs: None
    config = finetune.FinetuneRunConfig(
        dataset=args.data, base=str(args.base), out=args.out, minutes=args.minutes, lr=args.lr, last_blocks=4,
        replay_share=0.5, replay_weight=3.0, replay_images=80, replay_negatives="zero", holdout=40, threads=2,
        count_gain=False, data_root=data_root, checkpoint_minutes=5.0,
    )  # fmt: skip
    report = finetune.run_finetune_logged(config, args.out.with_name("progress.jsonl"))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, (list, dict))}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
