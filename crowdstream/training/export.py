"""Export a trained checkpoint to the ONNX contract of engines.spec (dynamic batch, outputs `density` and
`count`). When the count head is shipped, the density map is rescaled per tile so that its integral equals
the calibrated count: zone counts and the total then always agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crowdstream.engines.engine_cache import file_sha256
from crowdstream.engines.errors import CrowdstreamError
from crowdstream.engines.spec import SPEC
from crowdstream.training.models import CrowdLite0, model_from_state, read_checkpoint


class ExportWrapper(nn.Module):
    """CrowdLite0 → (density, count) with the count head applied (or the plain integral)."""

    def __init__(self, model: CrowdLite0, use_count_head: bool):
        super().__init__()
        self.model = model
        self.use_count_head = use_count_head

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        density = self.model(image)
        integral = density.flatten(1).sum(1)
        if not self.use_count_head:
            return density, integral
        count = self.model.count_head(density)
        ratio = torch.where(integral > 1e-6, count / integral.clamp_min(1e-6), torch.ones_like(integral))
        return density * ratio[:, None, None, None], count


def export_onnx(model: CrowdLite0, out: Path, use_count_head: bool, opset: int = 17) -> Path:
    """Write the model as ONNX with a dynamic batch axis; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.eval(), use_count_head).eval()
    example = torch.zeros(1, *SPEC.input_shape)
    torch.onnx.export(
        wrapper,
        (example,),
        str(out),
        input_names=[SPEC.input_name],
        output_names=[SPEC.density_name, SPEC.count_name],
        dynamic_axes={
            SPEC.input_name: {0: "batch"},
            SPEC.density_name: {0: "batch"},
            SPEC.count_name: {0: "batch"},
        },
        opset_version=opset,
        dynamo=False,
    )
    check_parity(wrapper, out)
    return out


def check_parity(wrapper: nn.Module, path: Path) -> None:
    """Refuse to ship an ONNX file that does not reproduce the PyTorch model (any module returning
    (density, count): the export wrapper, or a fine-tuned ONNX graph run by torch)."""
    import onnxruntime as ort

    batch = torch.randn(2, *SPEC.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(batch)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([SPEC.density_name, SPEC.count_name], {SPEC.input_name: batch.numpy()})
    for name, a, b in zip((SPEC.density_name, SPEC.count_name), expected, got, strict=True):
        if not np.allclose(a, b, rtol=1e-3, atol=1e-5):
            raise RuntimeError(f"ONNX export of {name} differs from PyTorch by {np.abs(a - b).max():.3g}")


def checkpoint_model(checkpoint: Path, use_count_head: bool | None = None) -> tuple[CrowdLite0, bool, dict]:
    """(model, count head on, checkpoint state); `use_count_head=None` follows the checkpoint's own
    decision (if recorded)."""
    state = read_checkpoint(checkpoint)
    model = model_from_state(state)
    calibration = state.get("count_head", {})
    if use_count_head is None:
        use_count_head = bool(calibration.get("ship", False))
    if use_count_head:
        if "coefficients" not in calibration:
            raise CrowdstreamError(
                f"{checkpoint}: the count head was never fitted (run `crowdstream train --resume`)"
            )
        model.count_head.coefficients.data = torch.tensor(calibration["coefficients"], dtype=torch.float32)
    return model, use_count_head, state


def export_checkpoint(
    checkpoint: Path, out: Path, use_count_head: bool | None = None, fmt: str = "onnx"
) -> dict:
    """Export a checkpoint as ONNX (`fmt="onnx"`, with a JSON record beside it) or TorchScript."""
    model, use_count_head, state = checkpoint_model(checkpoint, use_count_head)
    exporter = export_onnx if fmt == "onnx" else export_torchscript
    path = exporter(model, out, use_count_head)
    info = {
        "checkpoint": str(checkpoint),
        fmt: str(path),
        "sha256": file_sha256(path),
        "count_head": use_count_head,
        "epoch": state.get("epoch", -1) + 1,
    }
    if fmt == "onnx":
        Path(out).with_suffix(".json").write_text(json.dumps(info, indent=2))
    return info


def export_torchscript(model: CrowdLite0, out: Path, use_count_head: bool) -> Path:
    """The same graph as TorchScript, for the PyTorch backend of engines (loads without this package)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.eval(), use_count_head).eval()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, torch.zeros(1, *SPEC.input_shape), check_trace=False)
    traced.save(str(out))
    return out
