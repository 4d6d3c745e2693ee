"""The GPU check of the PyTorch backend, in one run with one table at the end (issue 12).

Steps, in order of importance, each a subprocess with its own time limit inside one overall budget
(a step that would start with too little time left is reported as skipped, never half-run):

1. `crowdstream engine info`;
2. `crowdstream export default --format torchscript` (the shipped ONNX model to TorchScript);
3. parity: counts and density maps of the torch backend (the ONNX file, and the TorchScript export)
   against ONNX Runtime on the CPU, on real frames of the bundled demo clip and on 1024x768 resizes;
4. `crowdstream bench engine --backend torch`: tile batches, and whole 1024x768 frames in batches
   (adaptive tiling, the default; `auto` tiling later, if time is left);
5. `crowdstream bench stream --backend torch` with 64 demo-clip cameras at 5 counted fps (and 32
   after the rest, if time is left);
6. the CUDA tests of tests/test_engines_torch.py and tests/test_device_counting.py;
7. where the time of a frame batch goes: upload, cutting tiles, the model, stitching and read-back,
   and the model alone channels-last vs NCHW;
8. ONNX Runtime on the CPU in frame mode, for comparison.

Steps 3 and 7 are bench/gpu_measure.py, run as subprocesses like the rest.

    bash bench/gpu_check.sh                                   # on the GPU machine (see its header)
    python bench/gpu_check.py --device cpu --quick --out /tmp/gpu-check   # the same steps, tiny, on a CPU

Writes summary.json, table.txt and gpu_check.log (every step's command and output) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE = Path(__file__).resolve().with_name("gpu_measure.py")
TARGET_FRAMES_PER_SECOND = 1000
TARGET_CAMERAS, TARGET_FPS, TARGET_AGE_P95_S = 64, 5.0, 0.5
GPU_TESTS = ("tests/test_engines_torch.py", "tests/test_device_counting.py")
"""Their CUDA tests run on the GPU machine; tests that need the ShanghaiTech data skip there."""


class Check:
    """Runs the steps within the budget, logs their output and keeps their results."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.deadline = out, time.monotonic() + budget_s
        self.results: dict[str, dict] = {}
        self.log = (out / "gpu_check.log").open("w")

    def step(self, name: str, argv: list[str], limit_s: float, as_json: bool = True) -> dict | None:
        """Run `argv` for at most `limit_s` (less if the budget is short); with `as_json` its stdout holds
        a JSON document, else its last line is kept (pytest's summary)."""
        left = self.deadline - time.monotonic()
        if left < min(limit_s, 20):
            self.results[name] = {"status": f"skipped: {left:.0f} s of the time budget left"}
            return None
        started = time.monotonic()
        print(f"[gpu-check] {name} (at most {min(limit_s, left):.0f} s)", file=sys.stderr, flush=True)
        self.log.write(f"\n=== {name}: {' '.join(argv)}\n")
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=min(limit_s, left), cwd=ROOT)
        except subprocess.TimeoutExpired as exc:
            for output in (exc.stdout, exc.stderr):  # bytes here, even with text=True
                self.log.write((output or b"").decode(errors="replace") + "\n")
            self.results[name] = {"status": f"timed out after {min(limit_s, left):.0f} s"}
            return None
        seconds = round(time.monotonic() - started, 1)
        self.log.write(f"{done.stdout}\n{done.stderr}\n(exit {done.returncode}, {seconds} s)\n")
        self.log.flush()
        if done.returncode != 0:
            last = ((done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"])[-1]
            self.results[name] = {
                "status": f"failed (exit {done.returncode}): {last[:200]}",
                "seconds": seconds,
            }
            return None
        data = parse_json(done.stdout) if as_json else done.stdout.strip().splitlines()[-1]
        self.results[name] = {"status": "ok", "seconds": seconds, "data": data}
        return data


def parse_json(text: str):
    """The JSON document a command printed (from its first line that opens one)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("{", "[")))
    return json.loads("\n".join(lines[start:]))


def crowdstream(command: str) -> list[str]:
    return [sys.executable, "-m", "crowdstream.cli", "--log-level", "warning", *command.split()]


def measure(command: str) -> list[str]:
    return [sys.executable, str(MEASURE), *command.split()]


def plan_steps(args: argparse.Namespace, frames: Path, script: Path) -> list[tuple[str, list[str], float]]:
    """(name, command, time limit) in order of importance; --quick shrinks every size for a CPU dry run."""
    quick, device = args.quick, f"--device {args.device}"
    batches, frame_batches = ("2", "2") if quick else ("1 8 32 128 256", "1 16 64 256")
    sizes = (
        "--max-batch 256 --inputs 2 --warmup 1 --json" if quick else "--max-batch 256 --inputs 1024 --json"
    )
    stream = "--max-fps 1 --seconds 5" if quick else "--max-fps 5 --seconds 20"
    cameras = ["2"] if quick else ["64", "32"]
    steps = [
        ("engine_info", crowdstream("engine info --json"), 45),
        ("export", crowdstream(f"export default --format torchscript -o {script}"), 90),
        ("parity", measure(f"parity --frames {frames} --script {script} {device}"), 90),
        (
            "bench_engine",
            crowdstream(
                f"bench engine --backend torch {device} --frames {frames} --batch {batches} "
                f"--frame-batch {frame_batches} {sizes}"
            ),
            90 if quick else 150,
        ),
    ]
    steps += [
        (
            f"bench_stream_{n}",
            crowdstream(
                f"bench stream --backend torch {device} --cameras {n} {stream} --max-batch 256 --json"
            ),
            90 if quick else 110,
        )
        for n in cameras[:1]
    ]
    steps += [
        (
            "bench_engine_auto",
            crowdstream(
                f"bench engine --backend torch {device} --frames {frames} --tiles auto --batch {batches.split()[-1]} "
                f"--frame-batch {frame_batches.split()[-1]} {sizes}"
            ),
            90 if quick else 60,
        ),
        (
            "gpu_tests",
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS],
            180 if quick else 90,
        ),
        (
            "breakdown",
            measure(
                f"breakdown --frames {frames} {device} --frame-batch {2 if quick else 256} --repeats {1 if quick else 3}"
            ),
            60,
        ),
    ]
    steps += [
        (
            f"bench_stream_{n}",
            crowdstream(
                f"bench stream --backend torch {device} --cameras {n} {stream} --max-batch 256 --json"
            ),
            110,
        )
        for n in cameras[1:]
    ]
    steps.append(
        (
            "onnxruntime_cpu",
            crowdstream(
                f"bench engine --backend onnxruntime --frames {frames} --batch 8 "
                f"--frame-batch 1 {2 if quick else 16} --inputs 8 --json"
            ),
            60,
        )
    )
    return steps


def run_all(args: argparse.Namespace) -> Check:
    check = Check(args.out, args.budget)
    frames, script = Path(args.work) / "frames", Path(args.work) / "crowd-lite0.ts"
    subprocess.run(measure(f"frames --frames {frames} --count {3 if args.quick else 12}"), check=True)
    for name, argv, limit in plan_steps(args, frames, script):
        check.step(name, argv, limit, as_json=name != "gpu_tests")
    return check


def _ok(check: Check, name: str):
    result = check.results.get(name, {"status": "not run"})
    return result.get("data"), result["status"]


def _verdict(value: float | None, met: bool) -> str:
    return "" if value is None else ("met" if met else "NOT met")


def table_rows(check: Check) -> list[tuple[str, str, str]]:
    """(what, measured, target and verdict) for every step, in the order they ran."""
    rows = []
    info, status = _ok(check, "engine_info")
    torch_line = next((r["detail"] for r in info or [] if r["backend"] == "torch"), status)
    rows.append(("engine info: torch", torch_line, ""))
    data, status = _ok(check, "export")
    rows.append(
        ("export default --format torchscript", f"ok, sha256 {data['sha256'][:12]}" if data else status, "")
    )
    data, status = _ok(check, "parity")
    for name in ("onnx_on_torch", "torchscript"):
        if not data:
            rows.append((f"parity {name} vs ONNX Runtime CPU", status, "counts within 1 %"))
            continue
        r = data[name]
        rows.append(
            (
                f"parity {name} vs ONNX Runtime CPU ({data['frames']} frames)",
                f"counts {100 * r['count_max_rel_diff']:.2f} %, maps {100 * r['map_max_rel_diff']:.2f} %, "
                f"tiles {100 * r['tile_density_max_rel_diff']:.2f} % (half={r['half']}, device frames={r['device_frames']})",
                f"within 1 %: {_verdict(1, r['count_max_rel_diff'] <= 0.01)}",
            )
        )
    data, status = _ok(check, "bench_engine")
    batch = [r for r in data or [] if r["mode"] == "batch"]
    frame = [r for r in data or [] if r["mode"] == "frame"]
    rows.append(
        (
            "bench engine, tiles per call: inputs/s",
            "  ".join(f"{r['batch']}: {r['inputs_per_second']:.0f}" for r in batch) or status,
            "",
        )
    )
    best = max((r["frames_per_second"] for r in frame), default=None)
    rows.append(
        (
            "bench engine, 1024x768 frames per call (adaptive tiles): frames/s",
            "  ".join(
                f"{r['batch']}: {r['frames_per_second']:.0f} ({r['latency_ms_p50']:.1f} ms)" for r in frame
            )
            or status,
            f">= {TARGET_FRAMES_PER_SECOND}: {_verdict(best, (best or 0) >= TARGET_FRAMES_PER_SECOND)}",
        )
    )
    data, status = _ok(check, "bench_engine_auto")
    frame = [r for r in data or [] if r["mode"] == "frame"]
    rows.append(
        (
            "the same with auto tiles (no second pass): frames/s",
            "  ".join(
                f"{r['batch']}: {r['frames_per_second']:.0f} ({r['latency_ms_p50']:.1f} ms)" for r in frame
            )
            or status,
            "",
        )
    )
    for name in sorted(n for n in check.results if n.startswith("bench_stream_")):
        data, status = _ok(check, name)
        if not data:
            rows.append((name.replace("_", " "), status, ""))
            continue
        age = data["frame_age_p95_s"] or 0
        met = (
            data["cameras"] >= TARGET_CAMERAS
            and data["fps_per_camera_min"] >= 0.95 * TARGET_FPS
            and age < TARGET_AGE_P95_S
        )
        rows.append(
            (
                f"bench stream {data['cameras']} cameras at {data['max_fps']:g} fps",
                f"fps min/mean {data['fps_per_camera_min']:.2f}/{data['fps_per_camera_mean']:.2f}, age p50/p95 "
                f"{1e3 * (data['frame_age_p50_s'] or 0):.0f}/{1e3 * age:.0f} ms, dropped {data['dropped_frames']}, "
                f"inference {1e3 * (data['inference_mean_s'] or 0):.0f} ms/cycle, {data['cpu_cores_used']:.1f} of "
                f"{data['cpu_count']} cores, RSS {data['rss_mb']:.0f} MB",
                f"64 cams >= 5 fps, p95 < 500 ms: {_verdict(1, met)}"
                if data["cameras"] >= TARGET_CAMERAS
                else "",
            )
        )
    data, status = _ok(check, "gpu_tests")
    rows.append(("pytest " + " ".join(GPU_TESTS), data or status, "CUDA tests must pass, not skip"))
    data, status = _ok(check, "breakdown")
    rows.append(
        (
            f"where {data['frames'] if data else '?'} frames of 1024x768 go (ms)",
            (
                f"upload {data['upload_ms']}, cut {data['cut_ms']}, model {data['model_ms']}, stitch+read "
                f"{data['stitch_and_read_back_ms']}: sum {data['sum_ms']}, overlapped {data['count_ms']} "
                f"({data['frames_per_second']:.0f} frames/s); "
                f"model alone batch {data['model_batch']}: NHWC {data['model_nhwc_ms']}, NCHW {data['model_nchw_ms']}"
            )
            if data
            else status,
            "",
        )
    )
    data, status = _ok(check, "onnxruntime_cpu")
    frame = [r for r in data or [] if r["mode"] == "frame"]
    rows.append(
        (
            "ONNX Runtime on the CPU, frames/s",
            "  ".join(f"{r['batch']}: {r['frames_per_second']:.1f}" for r in frame) or status,
            "for comparison",
        )
    )
    return rows


def machine_line() -> str:
    try:
        import torch
    except ImportError:
        return f"no torch; {os.cpu_count()} CPU cores"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    return f"{gpu}, torch {torch.__version__} (CUDA {torch.version.cuda}), {os.cpu_count()} CPU cores"


def format_checks(rows: list[tuple[str, str, str]], header: str) -> str:
    """What was measured against its target, one check a line (not a table: the cells vary in width)."""
    width = max(len(r[0]) for r in rows)
    lines = [header, "-" * len(header)]
    for what, measured, target in rows:
        lines.append(f"{what:<{width}}  {measured}" + (f"   [{target}]" if target else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script itself on a CPU")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu-check")))
    parser.add_argument("--work", default="/tmp/gpu-check-work", help="scratch folder (frames, TorchScript)")
    parser.add_argument("--budget", type=float, default=220.0, help="seconds for all steps together")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    check = run_all(args)
    header = f"crowdstream GPU check: {machine_line()}; {time.monotonic() - started:.0f} s"
    table = format_checks(table_rows(check), header)
    (args.out / "table.txt").write_text(table + "\n")
    (args.out / "summary.json").write_text(json.dumps({"machine": machine_line(), **check.results}, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
