"""Subcommands of `engines`: `engine info`, `engine build`, `engine quantize`, `bench engine`.

Only argparse here; runtimes are imported inside the handlers so `crowdstream --help` stays instant
and `engine info` / `bench engine` work on an install without torch or TensorRT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crowdstream.commands import Subcommands
from crowdstream.engines.data_root import DATA_ROOT_HELP
from crowdstream.engines.frames import HOLDOUT_EVERY
from crowdstream.engines.spec import DEFAULT_TILES

RAW = argparse.RawDescriptionHelpFormatter


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def progress(message: str) -> None:
    """Progress goes to stderr so `--json` output on stdout stays machine-readable."""
    print(f"[engine] {message}", file=sys.stderr, flush=True)


def engine_info(args: argparse.Namespace) -> int:
    from crowdstream.engines.info import backend_statuses

    statuses = backend_statuses()
    if args.json:
        print(json.dumps([vars(s) for s in statuses], indent=2))
        return 0
    for status in statuses:
        print(
            f"{status.backend:<12} {'available' if status.available else 'unavailable':<12} {status.detail}"
        )
    return 0


def engine_build(args: argparse.Namespace) -> int:
    from crowdstream.engines.engine_cache import cached_engine
    from crowdstream.engines.models import resolve_model

    source = resolve_model(args.model)
    progress(f"building a TensorRT engine from {source} (minutes on first build; cached afterwards)")
    path = cached_engine(source, args.precision, args.max_batch, args.opt_batch, args.cache_dir, args.force)
    print(path)
    return 0


def default_quantized_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}-int8.onnx")


def engine_quantize(args: argparse.Namespace) -> int:
    from crowdstream.engines.data_root import resolve_data_root
    from crowdstream.engines.models import resolve_model
    from crowdstream.engines.quantize import calibration_tiles, quantize_model

    source = resolve_model(args.model)
    out = args.output or default_quantized_path(source)
    data_root = resolve_data_root(args.data_root)
    progress(f"cutting calibration tiles from {args.images} training images under {data_root}")
    tiles = calibration_tiles(data_root, args.images)
    quantize_model(source, out, tiles, progress)
    print(out)
    return 0


def bench_engine(args: argparse.Namespace) -> int:
    from crowdstream.engines.bench import BENCH_COLUMNS, load_frames, run_bench
    from crowdstream.engines.errors import CrowdstreamError
    from crowdstream.engines.preprocess import parse_tiles
    from crowdstream.engines.table import format_table

    try:
        parse_tiles(args.tiles)
    except ValueError as exc:
        raise CrowdstreamError(f"--tiles: {exc}") from exc

    frames = load_frames(args.frames, args.data_root, args.frame_count)
    rows = run_bench(
        args.model,
        args.backend,
        args.batch,
        frames,
        args.threads,
        args.inputs,
        args.warmup,
        progress,
        tuple(args.frame_batch),
        args.max_batch,
        args.device,
        args.tiles,
    )
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_table(rows, BENCH_COLUMNS, rule=True))
    return 0


def add_engine_commands(commands: Subcommands) -> None:
    engine = commands.add_parser(
        "engine",
        help="inference engines: backends available here, TensorRT builds, INT8 quantisation",
        description="Inspect and prepare inference engines for the density model.",
        formatter_class=RAW,
        epilog="examples:\n  crowdstream engine info\n  crowdstream engine build crowd-lite0\n"
        "  crowdstream engine quantize crowd-lite0",
    )
    engine.set_defaults(handler=lambda _args: engine.print_help() or 2)
    actions = engine.add_subparsers(dest="engine_command", metavar="ACTION", title="actions")

    info = actions.add_parser(
        "info",
        help="backends usable on this machine, and why the others are not",
        description="List ONNX Runtime, TensorRT and PyTorch: version and device where usable, else the reason.",
        formatter_class=RAW,
        epilog="example:\n  crowdstream engine info --json",
    )
    info.add_argument("--json", action="store_true", help="print a JSON list of {backend, available, detail}")
    info.set_defaults(handler=engine_info)

    build = actions.add_parser(
        "build",
        help="build (or reuse) a TensorRT engine for an ONNX model",
        description="Build a serialized TensorRT engine with a dynamic-batch profile and cache it, keyed by the "
        "model's SHA-256, the GPU name and the TensorRT version; prints the engine path. Needs an "
        "NVIDIA GPU with tensorrt and cuda-python (pip install 'crowdstream[gpu]').",
        formatter_class=RAW,
        epilog="example:\n  crowdstream engine build crowd-lite0 --precision fp16 --max-batch 64",
    )
    build.add_argument(
        "model", nargs="?", default="default", help="ONNX file or shipped model name (default: default)"
    )
    build.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp16", "fp32"],
        help="auto: FP16 on TensorRT 10; on TensorRT 11 the ONNX graph's own precision",
    )
    build.add_argument("--max-batch", type=positive_int, default=32, help="largest batch the engine accepts")
    build.add_argument(
        "--opt-batch", type=positive_int, default=8, help="batch size TensorRT tunes kernels for"
    )
    build.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="engine cache folder (default: $CROWDSTREAM_ENGINE_CACHE or ~/.cache/crowdstream/engines)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if a cached engine exists")
    build.set_defaults(handler=engine_build)

    quantize = actions.add_parser(
        "quantize",
        help="INT8 copy of an ONNX model, calibrated on training tiles",
        description="Static INT8 quantisation with ONNX Runtime (QLinearConv, per-channel weights), calibrated on tiles "
        f"of ShanghaiTech training images (the held-out every-{HOLDOUT_EVERY}th images are never used).",
        formatter_class=RAW,
        epilog="example:\n  crowdstream engine quantize crowd-lite0 --images 64 "
        "-o crowd-lite0-int8.onnx --data-root /srv/data",
    )
    quantize.add_argument("model", nargs="?", default="default", help="ONNX file or shipped model name")
    quantize.add_argument(
        "-o", "--output", type=Path, default=None, help="output file (default: <model>-int8.onnx)"
    )
    quantize.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help=DATA_ROOT_HELP,
    )
    quantize.add_argument("--images", type=positive_int, default=64, help="training images to calibrate on")
    quantize.set_defaults(handler=engine_quantize)


def add_bench_command(bench: Subcommands) -> None:
    parser = bench.add_parser(
        "engine",
        help="inputs/s and latency p50/p99 per backend and batch size, on real frames",
        description="Time engine.infer on batches of real tiles (after warm-up) for each model, backend and batch "
        "size (mode 'batch'), then whole 1024x768 frames through count_frames, --frame-batch frames per call, "
        "end to end (mode 'frame': tiling, inference, stitching; frames/s). Progress goes to stderr; --json "
        "prints a list of objects with backend, model, mode, batch, inputs_per_second, frames_per_second, "
        "latency_ms_p50, latency_ms_p99 and calls.",
        formatter_class=RAW,
        epilog="examples:\n  crowdstream bench engine --batch 1 8 32 --json\n"
        "  crowdstream bench engine --model crowd-lite0 crowd-lite0-int8 --threads 2\n"
        "  crowdstream bench engine --backend torch --device cuda --batch 32 256 --frame-batch 1 64 256 "
        "--max-batch 256",
    )
    parser.add_argument(
        "--model", nargs="+", default=["default"], help="ONNX/engine/TorchScript files or shipped names"
    )
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["auto"],
        choices=["auto", "onnxruntime", "tensorrt", "torch"],
        help="backends to measure",
    )
    parser.add_argument(
        "--batch", nargs="+", type=positive_int, default=[1, 4, 8, 16, 32], help="batch sizes"
    )
    parser.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument(
        "--inputs",
        type=positive_int,
        default=256,
        help="tiles timed per batch size (>= 20 calls) and per frame batch (>= 10 calls)",
    )
    parser.add_argument(
        "--frame-batch",
        nargs="+",
        type=positive_int,
        default=[1, 8],
        help="frames per count_frames call in frame mode (default 1 8)",
    )
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=32,
        help="most tiles per engine call in frame mode (default 32)",
    )
    parser.add_argument("--device", default="auto", help="torch backend: auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--tiles",
        default=DEFAULT_TILES,
        help=f"frame mode tiling: adaptive, auto or RxC (default {DEFAULT_TILES})",
    )
    parser.add_argument(
        "--warmup", type=non_negative_int, default=3, help="untimed calls before each measurement"
    )
    parser.add_argument(
        "--frames",
        type=Path,
        default=None,
        help="image file or folder (default: ShanghaiTech under the data root)",
    )
    parser.add_argument("--frame-count", type=positive_int, default=16, help="real frames to cut tiles from")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help=DATA_ROOT_HELP,
    )
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.set_defaults(handler=bench_engine)


def register(commands: Subcommands, bench: Subcommands) -> None:
    """Add `engine ...` and `bench engine`."""
    add_engine_commands(commands)
    add_bench_command(bench)
