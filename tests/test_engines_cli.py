"""`crowdstream engine info` and `crowdstream bench engine` as a user runs them, in a child process
where `import torch` fails, as on a service install without the `train` extra; and the benchmark's
arithmetic against an engine of known speed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from crowdstream.engines import bench as engine_bench
from crowdstream.engines import info
from crowdstream.engines.bench import bench_batches, bench_frames
from crowdstream.engines.frames import shanghaitech_images
from tests.data_paths import DATA_ROOT, needs_data

WITHOUT_TORCH = (
    "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
    "from crowdstream.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
ROW_FIELDS = {
    "backend",
    "model",
    "mode",
    "batch",
    "inputs_per_second",
    "latency_ms_p50",
    "latency_ms_p99",
    "calls",
    "frames_per_second",
}


def crowdstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_engine_info_without_torch_says_why() -> None:
    result = crowdstream("engine", "info")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == {"onnxruntime", "tensorrt", "torch"}
    assert "available" in lines["onnxruntime"].split()[1]
    assert lines["torch"].split()[1] == "unavailable"
    assert "not installed (pip install 'crowdstream[train]')" in lines["torch"]


def test_engine_info_json_lists_every_backend() -> None:
    result = crowdstream("engine", "info", "--json")
    assert result.returncode == 0, result.stderr
    statuses = {s["backend"]: s for s in json.loads(result.stdout)}
    assert statuses["onnxruntime"]["available"] is True
    assert statuses["torch"] == {
        "backend": "torch",
        "available": False,
        "detail": "not installed (pip install 'crowdstream[train]')",
    }
    if importlib.util.find_spec("tensorrt") is None:
        assert statuses["tensorrt"] == {
            "backend": "tensorrt",
            "available": False,
            "detail": "not installed (pip install --extra-index-url https://pypi.nvidia.com 'crowdstream[gpu]')",
        }
    else:  # a GPU machine: the version and the device it runs on
        import tensorrt

        assert statuses["tensorrt"]["detail"].startswith(f"{tensorrt.__version__} on ")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "INT8 products exact (AVX-512 VNNI)"),
        ({"avx2", "avx_vnni", "amx_int8"}, "INT8 products exact (AVX-VNNI, AMX)"),
        ({"sse4_2", "avx", "avx2", "avx512f", "avx512bw"}, "saturating int16 pairs (AVX2, no VNNI)"),
        ({"fp", "asimd"}, ""),  # not x86: nothing to say
    ],
)
def test_engine_info_says_how_int8_products_are_added(flags: set[str], says: str) -> None:
    assert says in info.int8_products(flags) and bool(says) == bool(info.int8_products(flags))


def test_cpu_flags_come_from_the_first_processor(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert info.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_vnni"}
    assert info.cpu_flags(tmp_path / "missing") == set()


@needs_data
def test_bench_engine_json_without_torch() -> None:
    result = crowdstream(
        "bench",
        "engine",
        "--batch",
        "1",
        "3",
        "--inputs",
        "3",
        "--frame-count",
        "2",
        "--warmup",
        "1",
        "--threads",
        "2",
        "--frame-batch",
        "1",
        "3",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)  # progress must not leak into stdout
    assert "[engine]" in result.stderr
    assert [(r["mode"], r["batch"]) for r in rows] == [("batch", 1), ("batch", 3), ("frame", 1), ("frame", 3)]
    for row in rows:
        assert set(row) == ROW_FIELDS
        assert row["backend"] == "onnxruntime" and row["calls"] >= (20 if row["mode"] == "batch" else 10)
        assert row["inputs_per_second"] > 0 and 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]


class KnownSpeed:
    """An engine that takes exactly 2 ms of a fake clock per input, plus 1 ms per call."""

    backend = "fake"

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.now += 0.001 + 0.002 * len(batch)
        return np.zeros((len(batch), 1, 56, 56), np.float32), np.zeros(len(batch), np.float32)


def test_bench_reports_an_engine_of_known_speed(monkeypatch) -> None:
    engine = KnownSpeed()
    monkeypatch.setattr(engine_bench, "time", SimpleNamespace(perf_counter=engine.clock))
    tiles = np.zeros((3, 3, 224, 224), np.float32)
    rows = bench_batches(engine, "fake", tiles, [1, 4], inputs=40, min_calls=5, warmup=2)
    # batch 1: 3 ms per call, 333.3 inputs/s; batch 4: 9 ms per call, 444.4 inputs/s; 40 inputs each
    assert [(r.batch, r.latency_ms_p50, r.latency_ms_p99, r.inputs_per_second, r.calls) for r in rows] == [
        (1, 3.0, 3.0, 333.3, 40),
        (4, 9.0, 9.0, 444.4, 10),
    ]
    assert all(r.frames_per_second is None for r in rows)


def test_frame_mode_reports_frames_of_known_speed(monkeypatch) -> None:
    engine = KnownSpeed()
    monkeypatch.setattr(engine_bench, "time", SimpleNamespace(perf_counter=engine.clock))
    frame = np.zeros((600, 800, 3), np.uint8)  # resized to 1024x768: 2x2 tiles
    rows = bench_frames(
        engine, "fake", [frame], [1, 2], max_batch=32, inputs=24, min_calls=2, warmup=1, tiles="auto"
    )
    # one call per count: 1 frame = 4 tiles, 9 ms; 2 frames = 8 tiles, 17 ms; about 24 inputs each
    assert [(r.mode, r.batch, r.latency_ms_p50, r.calls) for r in rows] == [
        ("frame", 1, 9.0, 6),
        ("frame", 2, 17.0, 3),
    ]
    assert [(r.frames_per_second, r.inputs_per_second) for r in rows] == [(111.1, 444.4), (117.6, 470.6)]


@needs_data
def test_bench_engine_table_on_a_given_frame() -> None:
    image = shanghaitech_images(DATA_ROOT, "validation")[0]
    result = crowdstream(
        "bench", "engine", "--frames", str(image), "--batch", "2", "--inputs", "2", "--warmup", "0"
    )
    assert result.returncode == 0, result.stderr
    header, _, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["backend", "model", "mode", "batch"]
    assert [row.split()[2:4] for row in rows] == [["batch", "2"], ["frame", "1"], ["frame", "8"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "engine", "--model", "/no/such.onnx"], "/no/such.onnx: model file not found"),
        (["bench", "engine", "--frames", "/no/such/folder"], "/no/such/folder: no images found"),
        (["engine", "build", "/no/such.onnx"], "/no/such.onnx: model file not found"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = crowdstream(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"crowdstream: error: {message}"), result.stderr


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_engine_build_without_tensorrt_says_how_to_install_it() -> None:
    result = crowdstream("engine", "build", "default")
    assert result.returncode == 2
    assert "crowdstream: error: tensorrt: not installed (pip install --extra-index-url" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_numbers_are_refused_by_argparse() -> None:
    result = crowdstream("bench", "engine", "--batch", "0")
    assert result.returncode == 2 and "expected a number >= 1, got 0" in result.stderr
