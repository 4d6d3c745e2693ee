"""What can run here: each backend, whether it is usable on this machine, and if not, why.

`crowdstream engine info` prints this; it imports each runtime in turn but needs none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from crowdstream.engines.errors import EngineError


@dataclass(frozen=True)
class BackendStatus:
    """One backend: `available` on this machine, with its version and device, or the reason it is not."""

    backend: str
    available: bool
    detail: str


EXACT_INT8_FLAGS = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags as Linux lists them; empty elsewhere."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def int8_products(flags: set[str]) -> str:
    """How this x86 CPU adds INT8 products in ONNX Runtime: exactly with VNNI or AMX; without, pairs of
    uint8 × int8 products are added into int16 and saturate, so an 8-bit-weight model counts differently
    here than elsewhere (the shipped copy and `engine quantize` use 7-bit weights, which cannot saturate)."""
    exact = [name for flag, name in EXACT_INT8_FLAGS.items() if flag in flags]
    if exact:
        return f"INT8 products exact ({', '.join(exact)})"
    if "avx2" in flags:
        return (
            "INT8 products in saturating int16 pairs (AVX2, no VNNI): use 7-bit INT8 models (engine quantize)"
        )
    return ""


def onnxruntime_status() -> BackendStatus:
    try:
        import onnxruntime as ort
    except ImportError:
        return BackendStatus("onnxruntime", False, "not installed (pip install onnxruntime)")
    providers = ", ".join(ort.get_available_providers())
    products = int8_products(cpu_flags())
    return BackendStatus(
        "onnxruntime",
        True,
        f"{ort.__version__} on {os.cpu_count()} CPU cores; providers: {providers}"
        + (f"; {products}" if products else ""),
    )


def torch_status() -> BackendStatus:
    from crowdstream.engines.torch_engine import TORCH_MISSING

    try:
        import torch
    except ImportError:
        return BackendStatus("torch", False, TORCH_MISSING.removeprefix("torch: "))
    if torch.cuda.is_available():
        device = (
            f"CUDA {torch.version.cuda} on {torch.cuda.get_device_name(0)} "
            "(half precision, channels-last, CUDA graphs, frames tiled on the GPU)"
        )
    else:
        built = "built without CUDA" if torch.version.cuda is None else "no CUDA GPU visible"
        device = f"CPU only ({built})"
    return BackendStatus(
        "torch",
        True,
        f"{torch.__version__}, {device}; runs ONNX models (shipped ones too) and TorchScript "
        "(crowdstream export MODEL --format torchscript)",
    )


def tensorrt_status() -> BackendStatus:
    from crowdstream.engines.tensorrt_engine import cuda_device_name, import_cudart, import_tensorrt

    try:
        trt = import_tensorrt()
        import_cudart()
        gpu = cuda_device_name()
    except EngineError as exc:
        return BackendStatus("tensorrt", False, str(exc).removeprefix("tensorrt: "))
    return BackendStatus("tensorrt", True, f"{trt.__version__} on {gpu}")


def backend_statuses() -> list[BackendStatus]:
    return [onnxruntime_status(), tensorrt_status(), torch_status()]
