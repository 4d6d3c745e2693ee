"""PyTorch backend: a TorchScript export (training.export.export_torchscript) on the CPU or a CUDA GPU.

It loads with `torch.jit.load`, so engines never imports training. On CUDA it runs in half precision
and replays a CUDA graph per batch size (the stream sends a handful of batch sizes over and over, and a
graph replay skips the per-kernel launch cost that dominates a small network). torch is imported
lazily: the service installs without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.errors import EngineError
from engines.spec import SPEC, check_batch

TORCH_MISSING = "torch: not installed (pip install 'crowdstream[train]')"
MAX_CUDA_GRAPHS = 8
"""Batch sizes captured as CUDA graphs; others run eagerly (each graph holds its own buffers)."""


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


class TorchEngine:
    """A TorchScript model with the engines.spec signature, on `device` (`auto`: CUDA when present)."""

    backend = "torch"

    def __init__(
        self,
        model_path: Path,
        threads: int = 0,
        device: str = "auto",
        half: bool | None = None,
        cuda_graphs: bool = True,
    ):
        torch = import_torch()
        self.model_path = Path(model_path)
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"device {device!r} asked for, but this torch build sees no CUDA GPU")
        if threads > 0:
            torch.set_num_threads(threads)
        self.half = self.device.type == "cuda" if half is None else half
        self.module = self._load(torch)
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, CudaGraphRunner] = {}
        self._check_signature()

    def _load(self, torch):
        try:
            module = torch.jit.load(str(self.model_path), map_location=self.device)
        except (
            Exception
        ) as exc:  # torch raises RuntimeError/ValueError/pickle errors for non-TorchScript files
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(
                f"{self.model_path}: not a TorchScript model ({reason[:160]}); "
                "export one with training.export.export_torchscript"
            ) from exc
        module = module.eval()
        if self.half:
            module = module.half()
        return torch.jit.freeze(module)

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

    def _run(self, batch):
        if not self.use_graphs:
            return self.module(batch)
        runner = self._graphs.get(batch.shape[0])
        if runner is None:
            if len(self._graphs) >= MAX_CUDA_GRAPHS:
                return self.module(batch)
            runner = self._graphs[batch.shape[0]] = CudaGraphRunner(self.module, batch)
        return runner(batch)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = import_torch()
        batch = check_batch(batch, SPEC.input_size)
        with torch.no_grad():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            outputs = self._run(x.half() if self.half else x)
            if not isinstance(outputs, tuple | list) or len(outputs) != 2:
                raise EngineError(
                    f"{self.model_path}: model must return (density, count), got {type(outputs).__name__}"
                )
            density, count = outputs
            return density.float().cpu().numpy(), count.float().reshape(-1).cpu().numpy()
