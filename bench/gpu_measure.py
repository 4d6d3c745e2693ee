"""In-process measurements for bench/gpu_check.py, each printed as one JSON document:

    python bench/gpu_measure.py frames --frames DIR --count 12     # real frames from the demo clip
    python bench/gpu_measure.py parity --frames DIR --script crowd-lite0.ts --device cuda
    python bench/gpu_measure.py breakdown --frames DIR --device cuda --frame-batch 256

`parity` compares the torch backend with ONNX Runtime on the CPU (counts, maps, tiles); `breakdown`
times the stages of the device frame pipeline with a device synchronisation between them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_CLIP = ROOT / "stream" / "demo" / "crowd-demo.mp4"


def extract_frames(folder: Path, count: int) -> list[Path]:
    """`count` frames spread over the demo clip (real crowds), as lossless PNG files."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 300
    wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
    paths, index = [], 0
    while len(paths) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            paths.append(folder / f"demo-{index:04d}.png")
            cv2.imwrite(str(paths[-1]), frame)
        index += 1
    capture.release()
    if not paths:
        raise SystemExit(f"could not decode {DEMO_CLIP} with OpenCV")
    return paths


def load_check_frames(folder: Path):
    """The demo frames (1280x720) plus 1024x768 resizes of them: the sizes the targets speak of."""
    import cv2

    from crowdstream.engines.frames import frame_paths, read_frame

    frames = [read_frame(p) for p in frame_paths(folder)]
    return frames + [cv2.resize(f, (1024, 768), interpolation=cv2.INTER_AREA) for f in frames[::2]]


def parity(args: argparse.Namespace) -> dict:
    """Counts and maps of the torch backend vs ONNX Runtime on the CPU (the reference)."""
    import numpy as np

    from crowdstream.engines.counting import count_frames
    from crowdstream.engines.engine import load_engine
    from crowdstream.engines.preprocess import prepare_frame

    frames = load_check_frames(args.frames)
    reference_engine = load_engine("default", "onnxruntime")
    reference = count_frames(reference_engine, frames)
    tiles = np.concatenate([prepare_frame(f)[0] for f in frames])[:32]
    expected_density, expected_count = reference_engine.infer(tiles)
    report = {"frames": len(frames), "reference_counts": [round(r.count, 2) for r in reference]}
    for name, model in (("onnx_on_torch", "default"), ("torchscript", args.script)):
        engine = load_engine(model, "torch", device=args.device, device_frames=True)  # on a CPU too
        got = count_frames(engine, frames, max_batch=64)
        density, count = engine.infer(tiles)
        report[name] = {
            "device_frames": engine.frame_counter is not None,
            "half": engine.half,
            "count_max_rel_diff": max(
                abs(g.count - r.count) / max(r.count, 1.0) for g, r in zip(got, reference, strict=True)
            ),
            "map_max_rel_diff": max(
                float(np.abs(g.density - r.density).max() / r.density.max())
                for g, r in zip(got, reference, strict=True)
            ),
            "tile_density_max_rel_diff": float(
                np.abs(density - expected_density).max() / expected_density.max()
            ),
            "tile_count_max_abs_diff": float(np.abs(count - expected_count).max()),
        }
    return report


def median_ms(call, repeats: int, sync) -> float:
    """Median milliseconds of `call` (synchronised) after two untimed calls (allocation, autotuning)."""
    import numpy as np

    times = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - started) * 1e3)
    return round(float(np.median(times[2:])), 2)


def breakdown(args: argparse.Namespace) -> dict:
    """Milliseconds per stage for a batch of 1024x768 frames (each stage synchronised on its own), the
    whole count with the stages overlapping as in production, and the model alone NHWC vs NCHW."""
    import torch

    from crowdstream.engines.device_counting import DeviceCounter
    from crowdstream.engines.engine import load_engine

    frames = [f for f in load_check_frames(args.frames) if f.shape[:2] == (768, 1024)]
    batch = [frames[i % len(frames)] for i in range(args.frame_batch)]
    engine = load_engine("default", "torch", device=args.device)
    counter = engine.frame_counter or DeviceCounter(engine.run, engine.device)
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    plan = counter.plan(768, 1024, "auto", 0.25)
    counter.reserve(sum(f.nbytes for f in batch))
    pixels, _ = counter.upload(batch)
    inputs = counter.cut(pixels, plan)
    density, _ = counter.infer(inputs, args.max_batch)
    stages = {
        "upload": lambda: counter.upload(batch),
        "cut": lambda: counter.cut(pixels, plan),
        "model": lambda: counter.infer(inputs, args.max_batch),
        "stitch_and_read_back": lambda: counter.stitch(density, plan, len(batch)).cpu(),
    }
    report = {
        "frames": len(batch),
        **{f"{k}_ms": median_ms(v, args.repeats, sync) for k, v in stages.items()},
    }
    report["sum_ms"] = round(sum(report[f"{k}_ms"] for k in stages), 2)
    report["count_ms"] = median_ms(
        lambda: counter.count(batch, "auto", max_batch=args.max_batch), args.repeats, sync
    )
    report["frames_per_second"] = round(len(batch) / report["count_ms"] * 1e3, 1)
    x = inputs[: args.max_batch]
    for label, channels_last in (("model_nhwc_ms", True), ("model_nchw_ms", False)):
        variant = load_engine("default", "torch", device=args.device, channels_last=channels_last)
        report[label] = median_ms(lambda v=variant: v.run(x), args.repeats, sync)
    report["model_batch"] = len(x)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["frames", "parity", "breakdown"])
    parser.add_argument("--frames", type=Path, required=True, help="folder of frames (written by 'frames')")
    parser.add_argument("--count", type=int, default=12, help="(frames) how many to extract")
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--script", type=Path, help="(parity) the exported TorchScript file")
    parser.add_argument("--frame-batch", type=int, default=256, help="(breakdown) frames per batch")
    parser.add_argument("--max-batch", type=int, default=256, help="(breakdown) tiles per model call")
    parser.add_argument("--repeats", type=int, default=5, help="(breakdown) timed repeats")
    args = parser.parse_args(argv)
    if args.mode == "frames":
        report = {"frames": [str(p) for p in extract_frames(args.frames, args.count)]}
    else:
        report = parity(args) if args.mode == "parity" else breakdown(args)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
