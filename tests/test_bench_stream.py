"""`crowdstream bench stream` as a user runs it: the report's fields are there and say what ran (figures,
not timings, are the benchmark's business; this checks that the command works end to end)."""

import json

from tests.conftest import run_cli


def test_bench_stream_reports_every_camera_and_the_cpu_per_thread_group():
    result = run_cli("bench", "stream", "--cameras", "2", "--seconds", "3", "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["cameras"] == 2 and len(report["fps_per_camera"]) == 2
    assert report["fps_per_camera_min"] <= report["fps_per_camera_mean"] <= report["max_fps"] + 0.5
    assert report["tiles"] == "adaptive" and report["backend"] == "onnxruntime"
    groups = report["cpu_cores_by_thread"]
    assert {"inference", "source"} <= set(groups) and all(cores >= 0 for cores in groups.values())


def test_bench_stream_prints_a_readable_table_by_default():
    result = run_cli("bench", "stream", "--cameras", "1", "--seconds", "2", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fps_per_camera_mean" in result.stdout and "cpu_cores_by_thread" in result.stdout
