"""An ONNX model as a torch module, so the PyTorch backend (CUDA, half precision, CUDA graphs) runs the
shipped `.onnx` file itself: no checkpoint, no training code, no second copy of the weights.

The graph is first simplified by ONNX Runtime's portable constant folding and the pad folding of
engines.onnx_passes (the exporter's shape-computing subgraphs become constants), then each node becomes
one torch call. Shape-like inputs (pads, axes, target shapes, resize scales) are read once here, so
`forward` never reads a value back from the GPU and can be captured in a CUDA graph. Initialisers are
buffers: `.to(device)`, `.half()` and channels-last conversion work as on any module.

Why not a converter library: onnx2torch, the usual one, imports torchvision at import time, and the
torchvision wheel on PyPI for the pinned CPU torch is a CUDA build that fails to import beside it
("operator torchvision::nms does not exist"); its last release is from 2024. The operators here are the
ones density networks exported from PyTorch use; any other one is refused by name at load time.
Only engines.torch_engine imports this module, after checking that torch is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from crowdstream.engines.errors import EngineError

UNARY: dict[str, Callable] = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Softplus": F.softplus,
    "Exp": torch.exp,
    "Log": torch.log,
    "Sqrt": torch.sqrt,
    "Neg": torch.neg,
    "Abs": torch.abs,
    "Identity": lambda x: x,
}
BINARY: dict[str, Callable] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Pow": torch.pow,
    "Greater": torch.gt,
    "Less": torch.lt,
    "Equal": torch.eq,
    "Max": torch.maximum,
    "Min": torch.minimum,
}
CAST_TYPES = {
    1: torch.float32,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
}


def _conv(x, weight, bias=None, *, pads, strides, dilations, group):
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):  # asymmetric ("same" padding for even inputs): pad, then convolve
        x, top, left = F.pad(x, (left, right, top, bottom)), 0, 0
    return F.conv2d(x, weight, bias, strides, (top, left), dilations, group)


def _cast(x, *, dtype):
    """Float-to-float casts keep the module's precision, so a half-precision module stays half."""
    return x if dtype.is_floating_point and x.is_floating_point() else x.to(dtype)


def _reduce(x, *, function, axes, keepdims):
    return function(x, dim=axes, keepdim=keepdims) if axes else function(x)


def _reshape(x, *, shape, allowzero):
    return x.reshape([x.shape[i] if v == 0 and not allowzero else v for i, v in enumerate(shape)])


def _unsqueeze(x, *, axes):
    for axis in sorted(a % (x.dim() + len(axes)) for a in axes):
        x = x.unsqueeze(axis)
    return x


def _pad(x, *, pads):
    """ONNX pads (all begins, then all ends, first axis first) → torch's (last axis first) pairs."""
    half = len(pads) // 2
    return F.pad(x, [v for axis in reversed(range(half)) for v in (pads[axis], pads[axis + half])])


def _fill_value(tensor) -> float:
    """ConstantOfShape's `value` attribute (a one-element tensor; zero when absent)."""
    from onnx import numpy_helper

    return 0.0 if tensor is None else float(numpy_helper.to_array(tensor).reshape(-1)[0])


class OnnxModule(torch.nn.Module):
    """Runs an ONNX graph node by node with torch operators; returns the graph outputs as a tuple."""

    def __init__(self, model, source: str = "model"):
        super().__init__()
        from onnx import numpy_helper

        self.source = source
        graph = model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in self.constants]
        self.output_names = [o.name for o in graph.output]
        self.shape_sources: dict[str, str] = {}  # output of a Shape node → the tensor it measures
        self.steps: list[tuple[Callable, list[str], str]] = []
        for node in graph.node:
            self._add_node(node)
        used = {name for _, names, _ in self.steps for name in names if name in self.constants}
        self.buffer_names = {name: f"c{index}" for index, name in enumerate(sorted(used))}
        for name, buffer in self.buffer_names.items():
            self.register_buffer(buffer, torch.from_numpy(np.array(self.constants[name])))

    def _unsupported(self, node, why: str) -> EngineError:
        return EngineError(
            f"{self.source}: the torch backend cannot run ONNX {node.op_type} node {node.name!r} ({why}); "
            "export TorchScript from the checkpoint instead: crowdstream export CHECKPOINT --format torchscript"
        )

    def _static(self, node, index: int) -> list | None:
        """A shape-like input (pads, axes, shape, scales) as a Python list, read once now."""
        if len(node.input) <= index or not node.input[index]:
            return None
        if node.input[index] not in self.constants:
            raise self._unsupported(node, f"input {index} is computed at run time")
        return np.asarray(self.constants[node.input[index]]).tolist()

    def _add_node(self, node) -> None:
        from onnx import helper, numpy_helper

        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant" and "value" in attrs:
            self.constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
            return
        if len(node.output) != 1:
            raise self._unsupported(node, "more than one output")
        if node.op_type == "Shape" and not attrs.get("start") and attrs.get("end") is None:
            self.shape_sources[node.output[0]] = node.input[0]
            return
        function, inputs = self._function(node, attrs)
        self.steps.append((function, inputs, node.output[0]))

    def _function(self, node, attrs: dict) -> tuple[Callable, list[str]]:
        """The torch call for a node and the names of the inputs it takes at run time."""
        op, inputs = node.op_type, list(node.input)
        if op in UNARY:
            return UNARY[op], inputs[:1]
        if op in BINARY:
            return BINARY[op], inputs[:2]
        if op in ("Clip", "Where"):
            return (torch.clamp if op == "Clip" else torch.where), inputs[:3]
        if op == "Concat":
            return (lambda *xs, axis=attrs["axis"]: torch.cat(xs, axis)), inputs
        if op == "BatchNormalization":
            eps = attrs.get("epsilon", 1e-5)
            return (lambda x, s, b, m, v: F.batch_norm(x, m, v, s, b, False, 0.0, eps)), inputs[:5]
        if op == "Conv":
            return self._conv(node, attrs), inputs[:3]
        if op == "ConstantOfShape" and inputs[0] in self.shape_sources:
            return partial(torch.full_like, fill_value=_fill_value(attrs.get("value"))), [
                self.shape_sources[inputs[0]]
            ]
        builder = {
            "ReduceSum": self._reduce,
            "ReduceMean": self._reduce,
            "Flatten": lambda _node, a: partial(torch.flatten, start_dim=a.get("axis", 1)),
            "Transpose": lambda _node, a: partial(torch.permute, dims=tuple(a["perm"])),
            "Reshape": lambda n, a: partial(
                _reshape, shape=self._static(n, 1), allowzero=a.get("allowzero", 0)
            ),
            "Unsqueeze": lambda n, a: partial(_unsqueeze, axes=self._static(n, 1) or a["axes"]),
            "Squeeze": self._squeeze,
            "Cast": self._cast,
            "Pad": self._pad,
            "Resize": self._resize,
        }.get(op)
        if builder is None:
            raise self._unsupported(node, "operator not supported")
        return builder(node, attrs), inputs[:1]

    def _conv(self, node, attrs: dict) -> Callable:
        if attrs.get("auto_pad", b"NOTSET") != b"NOTSET" or len(attrs.get("kernel_shape", [1, 1])) != 2:
            raise self._unsupported(node, "only 2-D convolutions with explicit pads")
        return partial(
            _conv,
            pads=tuple(attrs.get("pads", [0, 0, 0, 0])),
            strides=tuple(attrs.get("strides", [1, 1])),
            dilations=tuple(attrs.get("dilations", [1, 1])),
            group=attrs.get("group", 1),
        )

    def _reduce(self, node, attrs: dict) -> Callable:
        function = torch.sum if node.op_type == "ReduceSum" else torch.mean
        axes = self._static(node, 1) or attrs.get("axes")
        return partial(_reduce, function=function, axes=axes, keepdims=bool(attrs.get("keepdims", 1)))

    def _squeeze(self, node, attrs: dict) -> Callable:
        axes = self._static(node, 1) or attrs.get("axes")
        return torch.squeeze if axes is None else partial(torch.squeeze, dim=tuple(axes))

    def _cast(self, node, attrs: dict) -> Callable:
        if attrs["to"] not in CAST_TYPES:
            raise self._unsupported(node, f"cast to ONNX type {attrs['to']}")
        return partial(_cast, dtype=CAST_TYPES[attrs["to"]])

    def _pad(self, node, attrs: dict) -> Callable:
        if attrs.get("mode", b"constant") != b"constant" or (len(node.input) > 2 and node.input[2]):
            raise self._unsupported(node, "only zero padding")
        return partial(_pad, pads=self._static(node, 1))

    def _resize(self, node, attrs: dict) -> Callable:
        mode = attrs.get("mode", b"nearest").decode()
        transform = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
        if mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            torch_mode, align = "bilinear", transform == "align_corners"
        elif mode == "nearest" and transform == "asymmetric" and attrs.get("nearest_mode") == b"floor":
            torch_mode, align = "nearest", None
        else:
            raise self._unsupported(node, f"mode {mode} with {transform} coordinates")
        if attrs.get("antialias"):
            raise self._unsupported(node, "antialias")
        scales, sizes = self._static(node, 2), self._static(node, 3)
        if sizes:
            return partial(F.interpolate, size=sizes[2:], mode=torch_mode, align_corners=align)
        if not scales or scales[:2] != [1.0, 1.0]:
            raise self._unsupported(node, "scales on the batch or channel axis")
        return partial(F.interpolate, scale_factor=scales[2:], mode=torch_mode, align_corners=align)

    def forward(self, *inputs):
        values = dict(zip(self.input_names, inputs, strict=True))
        for name, buffer in self.buffer_names.items():
            values[name] = getattr(self, buffer)
        for function, names, output in self.steps:
            values[output] = function(*(values[n] if n else None for n in names))
        return tuple(values[name] for name in self.output_names)


def load_onnx_module(path: Path) -> OnnxModule:
    """The module for an ONNX file, after constant and pad folding (engines.onnx_passes)."""
    import onnx

    from crowdstream.engines.onnx_passes import optimised_model

    try:
        model = onnx.load_from_string(optimised_model(Path(path)))
    except Exception as exc:  # ONNX Runtime and onnx raise their own types for corrupt or invalid graphs
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"{path}: not a usable ONNX model ({reason[:160]})") from exc
    return OnnxModule(model, str(path)).eval()


def export_torchscript(path: Path, out: Path) -> Path:
    """Trace the module of an ONNX file to TorchScript (a file the PyTorch backend loads without the
    ONNX conversion) and refuse to write it unless it reproduces ONNX Runtime at two batch sizes."""
    import onnxruntime as ort

    module = load_onnx_module(path)
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(2, 3, 224, 224), check_trace=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        image = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
        expected = session.run(None, {module.input_names[0]: image.numpy()})
        with torch.no_grad():
            got = [t.numpy() for t in traced(image)]
        for name, a, b in zip(module.output_names, expected, got, strict=True):
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-3, atol=1e-5):
                raise EngineError(
                    f"{path}: the TorchScript {name} differs from ONNX Runtime at batch {batch}"
                )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(out))
    return out
