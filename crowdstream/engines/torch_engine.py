"""PyTorch backend on the CPU or a CUDA GPU: the shipped ONNX model itself (engines.onnx_torch turns
its graph into torch calls) or a TorchScript export (`crowdstream export ... --format torchscript`).

TorchScript loads with `torch.jit.load`, so engines never imports training. On CUDA the model runs in
half precision, channels-last, and replays a CUDA graph per batch-size bucket (batches are padded to
the next power of two, so the stream's changing batch sizes reuse a few graphs; a replay skips the
per-kernel launch cost that dominates a small network). There the whole frame pipeline moves to the
GPU too (engines.device_counting): `frame_counter` is what engines.counting.count_frames then uses.
torch is imported lazily: the service installs without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crowdstream.engines.errors import EngineError
from crowdstream.engines.spec import SPEC, check_batch

TORCH_MISSING = "torch: not installed (pip install 'crowdstream[train]')"
MAX_GRAPH_BATCH = 128
"""Batches up to this size run as CUDA graphs of power-of-two sizes (8 graphs: 1, 2, 4, ... 128, each
holding its own buffers); larger ones run eagerly, where launch costs are small next to the work."""


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise EngineError(TORCH_MISSING) from exc
    return torch


class CudaGraphRunner:
    """One captured CUDA graph for a fixed batch shape: copy in, replay, read the static outputs."""

    def __init__(self, module, example):
        torch = import_torch()
        self.static_input = example.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph, as torch.cuda.graph requires
                module(self.static_input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_output = module(self.static_input)

    def __call__(self, batch):
        self.static_input.copy_(batch)
        self.graph.replay()
        return self.static_output


def pick_device(torch, device: str):
    """`auto`: the first CUDA GPU when torch sees one, else the CPU. Asking for CUDA where there is none
    is a user error with the reason (a CPU-only torch build, or no GPU visible)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise EngineError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        why = (
            f"torch {torch.__version__} is a CPU-only build (pip install torch from PyPI gets a CUDA build)"
            if torch.version.cuda is None
            else "no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
        raise EngineError(f"device {device!r} asked for, but {why}")
    if chosen.type not in ("cpu", "cuda"):
        raise EngineError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return chosen


class TorchEngine:
    """An ONNX or TorchScript model with the engines.spec signature on `device` (`auto`: CUDA when
    present). `half`, `channels_last` and `device_frames` (frame preprocessing on the device) default to
    on for CUDA and off for the CPU, where OpenCV's tiling is faster than matrix products."""

    backend = "torch"

    def __init__(
        self,
        model_path: Path,
        threads: int = 0,
        device: str = "auto",
        half: bool | None = None,
        cuda_graphs: bool = True,
        channels_last: bool | None = None,
        device_frames: bool | None = None,
    ):
        torch = import_torch()
        self.model_path = Path(model_path)
        self.device = pick_device(torch, device)
        if threads > 0:
            torch.set_num_threads(threads)
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            torch.backends.cudnn.benchmark = (
                True  # fixed shapes per graph bucket: pick the fastest kernels once
            )
        self.half = on_cuda if half is None else half
        self.channels_last = on_cuda if channels_last is None else channels_last
        self.module = self._load(torch)
        self.use_graphs = cuda_graphs and on_cuda
        self._graphs: dict[int, CudaGraphRunner] = {}
        self._check_signature()
        self.frame_counter = None
        if on_cuda if device_frames is None else device_frames:
            from crowdstream.engines.device_counting import DeviceCounter

            self.frame_counter = DeviceCounter(self.run, self.device)

    def _load(self, torch):
        if self.model_path.suffix.lower() == ".onnx":
            from crowdstream.engines.onnx_torch import load_onnx_module

            module = self._prepare(torch, load_onnx_module(self.model_path).to(self.device))
            return module
        try:
            module = torch.jit.load(str(self.model_path), map_location=self.device)
        except (
            Exception
        ) as exc:  # torch raises RuntimeError/ValueError/pickle errors for non-TorchScript files
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(
                f"{self.model_path}: not a TorchScript model ({reason[:160]}); "
                "export one with: crowdstream export MODEL_OR_CHECKPOINT --format torchscript"
            ) from exc
        return torch.jit.freeze(self._prepare(torch, module))

    def _prepare(self, torch, module):
        module = module.eval()
        if self.half:
            module = module.half()
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def _check_signature(self) -> None:
        size = SPEC.input_size
        try:
            density, count = self.infer(np.zeros((1, 3, size, size), np.float32))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(
                f"{self.model_path}: model does not accept a (N, 3, {size}, {size}) batch "
                f"({str(exc).strip().splitlines()[0][:160]})"
            ) from exc
        expected = (1, 1, SPEC.output_size, SPEC.output_size)
        if density.shape != expected or count.shape != (1,):
            raise EngineError(
                f"{self.model_path}: outputs have shapes {density.shape} and {count.shape}, "
                f"expected {expected} and (1,)"
            )

    def _forward(self, batch):
        """The module on a prepared batch. On CUDA the batch is padded to the next power of two, so the
        stream's ever-changing batch sizes meet only a few shapes (cuDNN autotunes each shape once) and
        reuse a CUDA graph per size up to MAX_GRAPH_BATCH."""
        size = batch.shape[0]
        bucket = 1 << (size - 1).bit_length()
        if self.device.type == "cuda" and size < bucket:
            batch = import_torch().cat([batch, batch.new_zeros((bucket - size, *batch.shape[1:]))])
        if not self.use_graphs or bucket > MAX_GRAPH_BATCH:
            outputs = self.module(batch)
        else:
            runner = self._graphs.get(bucket)
            if runner is None:
                runner = self._graphs[bucket] = CudaGraphRunner(self.module, batch)
            outputs = runner(batch)
        if not isinstance(outputs, tuple | list) or len(outputs) != 2:
            raise EngineError(
                f"{self.model_path}: model must return (density, count), got {type(outputs).__name__}"
            )
        density, count = outputs
        return density[:size], count[:size]

    def run(self, batch):
        """(N, 3, 224, 224) float32 tensor on the device → (density, count) float32 tensors there; the
        results are copies, safe to keep while the next batch runs."""
        torch = import_torch()
        with torch.no_grad():
            batch = batch.half() if self.half else batch.float()
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            density, count = self._forward(batch)
            return density.to(torch.float32, copy=True), count.reshape(-1).to(torch.float32, copy=True)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = import_torch()
        batch = check_batch(batch, SPEC.input_size)
        density, count = self.run(torch.from_numpy(batch).to(self.device, non_blocking=True))
        return density.cpu().numpy(), count.cpu().numpy()
