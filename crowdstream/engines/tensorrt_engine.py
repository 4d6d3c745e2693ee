"""TensorRT on an NVIDIA GPU: runs a serialized engine (see engines.engine_cache for building one).

Written against the TensorRT 10/11 name-based API: `set_input_shape`, `set_tensor_address` and
`execute_async_v3` on a CUDA stream. Device memory and copies go through cuda-python's runtime
bindings (`cuda.bindings.runtime`, or `cuda.cudart` in older releases) rather than torch, so a GPU
server needs neither torch nor pycuda. Both packages come from the optional `gpu` extra and are
imported lazily; without them every entry point raises an EngineError that says what to install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crowdstream.engines.errors import EngineError
from crowdstream.engines.spec import SPEC, check_batch

INSTALL_HINT = "pip install --extra-index-url https://pypi.nvidia.com 'crowdstream[gpu]'"


def import_tensorrt():
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # OSError: wheel present but CUDA/TensorRT libraries missing
        raise EngineError(f"tensorrt: not installed ({INSTALL_HINT})") from exc
    return tensorrt


def import_cudart():
    """cuda-python's runtime API module (its import path moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except (ImportError, OSError) as exc:
            raise EngineError(f"cuda-python: not installed ({INSTALL_HINT})") from exc
    return runtime


def cuda_call(result):
    """Unpack a cuda-python `(error, *values)` tuple, raising EngineError on a CUDA error."""
    cudart = import_cudart()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(error)
        raise EngineError(f"CUDA call failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values) or None


def cuda_device_name(device: int = 0) -> str:
    """The GPU's marketing name (e.g. 'NVIDIA H100 80GB HBM3'); raises EngineError without a GPU."""
    cudart = import_cudart()
    try:
        count = cuda_call(cudart.cudaGetDeviceCount())
    except EngineError as exc:  # no driver, or a driver without devices
        raise EngineError(f"no usable CUDA GPU ({exc})") from exc
    if count <= device:
        raise EngineError(f"no CUDA GPU number {device} on this machine ({count} found)")
    name = cuda_call(cudart.cudaGetDeviceProperties(device)).name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()


class DeviceBuffer:
    """A CUDA allocation of `nbytes`, freed with the object."""

    def __init__(self, nbytes: int):
        self.cudart = import_cudart()
        self.nbytes = nbytes
        self.pointer = cuda_call(self.cudart.cudaMalloc(nbytes))

    def __del__(self):
        if getattr(self, "pointer", None) is not None:
            self.cudart.cudaFree(self.pointer)
            self.pointer = None


class TensorRTEngine:
    """A deserialized TensorRT engine with a dynamic-batch optimisation profile.

    Buffers for the profile's largest batch are allocated once; bigger batches run in chunks."""

    backend = "tensorrt"

    def __init__(self, model_path: Path, engine):
        self.model_path = Path(model_path)
        self.trt = import_tensorrt()
        self.cudart = import_cudart()
        self.engine = engine
        self.context = engine.create_execution_context()
        self._check_signature()
        self.max_batch = int(engine.get_tensor_profile_shape(SPEC.input_name, 0)[2][0])
        self.dtypes = {
            name: np.dtype(self.trt.nptype(engine.get_tensor_dtype(name)))
            for name in (SPEC.input_name, SPEC.density_name, SPEC.count_name)
        }
        self.buffers = {name: DeviceBuffer(self._nbytes(name, self.max_batch)) for name in self.dtypes}
        for name, buffer in self.buffers.items():
            self.context.set_tensor_address(name, int(buffer.pointer))
        self.stream = cuda_call(self.cudart.cudaStreamCreate())

    @classmethod
    def open(cls, path: Path) -> TensorRTEngine:
        """Deserialize an engine file built by `crowdstream engine build` on this GPU and TensorRT version."""
        trt = import_tensorrt()
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"{path}: TensorRT engine file not found")
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineError(
                f"{path}: not a TensorRT engine for TensorRT {trt.__version__} on this GPU "
                "(engines are tied to both; rebuild with `crowdstream engine build`)"
            )
        return cls(path, engine)

    def _check_signature(self) -> None:
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        missing = {SPEC.input_name, SPEC.density_name, SPEC.count_name} - names
        if missing:
            raise EngineError(f"{self.model_path}: engine lacks tensor(s) {', '.join(sorted(missing))}")
        shape = tuple(self.engine.get_tensor_shape(SPEC.input_name))
        if len(shape) != 4 or shape[1:] != SPEC.input_shape:
            raise EngineError(
                f"{self.model_path}: input {SPEC.input_name!r} has shape {shape}, "
                f"expected (N, {', '.join(map(str, SPEC.input_shape))})"
            )

    def _nbytes(self, name: str, batch: int) -> int:
        per_item = int(np.prod(tuple(self.engine.get_tensor_shape(name))[1:], dtype=np.int64))
        return batch * per_item * self.dtypes[name].itemsize

    def _copy(self, destination: int, source: int, nbytes: int, kind) -> None:
        cuda_call(self.cudart.cudaMemcpyAsync(destination, source, nbytes, kind, self.stream))

    def _run_chunk(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kinds = self.cudart.cudaMemcpyKind
        batch = np.ascontiguousarray(batch, dtype=self.dtypes[SPEC.input_name])
        self.context.set_input_shape(SPEC.input_name, batch.shape)
        self._copy(
            self.buffers[SPEC.input_name].pointer,
            batch.ctypes.data,
            batch.nbytes,
            kinds.cudaMemcpyHostToDevice,
        )
        if not self.context.execute_async_v3(int(self.stream)):
            raise EngineError(f"{self.model_path}: TensorRT execution failed")
        outputs = []
        for name in (SPEC.density_name, SPEC.count_name):
            host = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name])
            self._copy(
                host.ctypes.data, self.buffers[name].pointer, host.nbytes, kinds.cudaMemcpyDeviceToHost
            )
            outputs.append(host)
        cuda_call(self.cudart.cudaStreamSynchronize(self.stream))
        density, count = outputs
        return density.astype(np.float32, copy=False), count.astype(np.float32, copy=False).reshape(-1)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = check_batch(batch, SPEC.input_size)
        parts = [self._run_chunk(batch[i : i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def __del__(self):
        stream = getattr(self, "stream", None)
        if stream is not None:
            self.cudart.cudaStreamDestroy(stream)
