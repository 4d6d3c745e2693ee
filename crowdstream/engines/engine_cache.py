"""Build TensorRT engines from the ONNX contract and cache them on disk.

A serialized engine only runs on the GPU model and TensorRT version that built it, and building takes
minutes, so each engine is stored under a key made of the ONNX file's SHA-256, the GPU name, the
TensorRT version, the precision and the batch profile. A worker that finds its key on disk
deserializes in a second; anything else in the key changing means a fresh build, never a stale engine.

Reduced precision follows the TensorRT version: TensorRT 10 takes `BuilderFlag.FP16` on a weakly
typed network; TensorRT 11 removed that flag and builds strongly typed networks only, so FP16 there
comes from an FP16 ONNX graph (e.g. `python -m modelopt.onnx.autocast`), detected from its weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from crowdstream.engines.errors import EngineError
from crowdstream.engines.spec import SPEC

PRECISIONS = ("auto", "fp16", "fp32")
DEFAULT_MAX_BATCH = 32
DEFAULT_OPT_BATCH = 8
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class CacheKey:
    """Everything a serialized engine depends on."""

    model_sha256: str
    gpu: str
    tensorrt: str
    precision: str
    max_batch: int
    opt_batch: int

    def filename(self, stem: str) -> str:
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-") or "gpu"
        return (
            f"{stem}-{self.model_sha256[:16]}-{gpu}-trt{self.tensorrt}-{self.precision}"
            f"-b{self.opt_batch}-{self.max_batch}.engine"
        )


def cache_dir() -> Path:
    """$CROWDSTREAM_ENGINE_CACHE, else $XDG_CACHE_HOME/crowdstream/engines, else ~/.cache/..."""
    if os.environ.get("CROWDSTREAM_ENGINE_CACHE"):
        return Path(os.environ["CROWDSTREAM_ENGINE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "crowdstream" / "engines"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensorrt_major(version: str) -> int:
    match = re.match(r"\s*(\d+)", version)
    if not match:
        raise EngineError(f"cannot read a TensorRT version from {version!r}")
    return int(match.group(1))


def onnx_precision(onnx_path: Path) -> str:
    """'fp16' when the ONNX graph stores FP16 weights (an FP16 export or AutoCast output), else 'fp32'."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise EngineError(f"{onnx_path}: not an ONNX model ({str(exc).strip()[:160]})") from exc
    half = onnx.TensorProto.FLOAT16
    return "fp16" if any(t.data_type == half for t in model.graph.initializer) else "fp32"


def resolve_precision(requested: str, tensorrt_version: str, graph_precision: str) -> str:
    """The precision an engine will have. TensorRT 11 can only follow the graph; TensorRT 10 can
    lower an FP32 graph to FP16 itself (`auto` does, since every supported GPU has fast FP16)."""
    if requested not in PRECISIONS:
        raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if tensorrt_major(tensorrt_version) >= 11 or graph_precision == "fp16":
        if requested not in ("auto", graph_precision):
            raise EngineError(
                f"TensorRT {tensorrt_version} builds strongly typed networks: the precision comes "
                f"from the ONNX graph, which is {graph_precision} (for FP16 convert it first: "
                "python -m modelopt.onnx.autocast --onnx_path MODEL.onnx --output_path MODEL-fp16.onnx)"
            )
        return graph_precision
    return "fp16" if requested == "auto" else requested


def check_batches(opt_batch: int, max_batch: int) -> None:
    if not 1 <= opt_batch <= max_batch:
        raise EngineError(f"batch sizes must satisfy 1 <= opt ({opt_batch}) <= max ({max_batch})")


def cache_key(
    onnx_path: Path,
    precision: str = "auto",
    max_batch: int = DEFAULT_MAX_BATCH,
    opt_batch: int = DEFAULT_OPT_BATCH,
    gpu: str | None = None,
    tensorrt_version: str | None = None,
) -> CacheKey:
    """The key of an engine for this ONNX file; GPU and TensorRT version default to this machine's."""
    check_batches(opt_batch, max_batch)
    if tensorrt_version is None:
        from crowdstream.engines.tensorrt_engine import import_tensorrt

        tensorrt_version = import_tensorrt().__version__
    if gpu is None:
        from crowdstream.engines.tensorrt_engine import cuda_device_name

        gpu = cuda_device_name()
    effective = resolve_precision(precision, tensorrt_version, onnx_precision(onnx_path))
    return CacheKey(file_sha256(onnx_path), gpu, tensorrt_version, effective, max_batch, opt_batch)


def engine_path(onnx_path: Path, key: CacheKey, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / key.filename(Path(onnx_path).stem)


def find_cached_engine(onnx_path: Path) -> Path | None:
    """The default-settings engine for this model if one is already built here; None when TensorRT,
    cuda-python or a GPU is missing or nothing was built. Never raises: `auto` backends ask it."""
    try:
        path = engine_path(onnx_path, cache_key(onnx_path))
    except (EngineError, OSError):
        return None
    return path if path.is_file() else None


def build_serialized(onnx_path: Path, precision: str, max_batch: int, opt_batch: int) -> bytes:
    """Parse the ONNX file into a TensorRT network and build it with a dynamic-batch profile."""
    from crowdstream.engines.tensorrt_engine import import_tensorrt

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = tensorrt_major(trt.__version__) >= 11 or onnx_precision(onnx_path) == "fp16"
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT cannot parse the ONNX model ({errors[:300]})")
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if SPEC.input_name not in inputs:
        raise EngineError(
            f"{onnx_path}: model has no input named {SPEC.input_name!r} (inputs: {', '.join(inputs)})"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    shape = SPEC.input_shape
    profile.set_shape(SPEC.input_name, (1, *shape), (opt_batch, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    if precision == "fp16" and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    return bytes(serialized)


def cached_engine(
    onnx_path: Path,
    precision: str = "auto",
    max_batch: int = DEFAULT_MAX_BATCH,
    opt_batch: int = DEFAULT_OPT_BATCH,
    directory: Path | None = None,
    force: bool = False,
) -> Path:
    """The engine file for this ONNX model on this machine, built (and recorded) on first use."""
    onnx_path = Path(onnx_path)
    key = cache_key(onnx_path, precision, max_batch, opt_batch)
    path = engine_path(onnx_path, key, directory)
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = build_serialized(onnx_path, key.precision, max_batch, opt_batch)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a concurrent worker sees no engine or a whole one
    record = {
        **asdict(key),
        "onnx": str(onnx_path.resolve()),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return path
