"""OS thread names and CPU time per thread group (stream.threads), with real threads: a busy Python
thread, FFmpeg's decoder threads started by a camera reader, ONNX Runtime's pool started by the engine."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from crowdstream.stream.config import EngineConfig
from crowdstream.stream.sources import DecodeConfig, open_source
from crowdstream.stream.threads import (
    cores_by_group,
    os_thread_name,
    os_thread_named,
    set_os_thread_name,
    thread_cpu_seconds,
    thread_group,
)
from crowdstream.stream.worker import load_worker_engine
from tests.conftest import wait_until


def os_names() -> list[str]:
    """The OS names of this process's threads; a thread that ends while we look is skipped (other tests'
    threads come and go)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            continue
    return names


def test_groups_drop_the_camera_and_the_number() -> None:
    assert thread_group("source-cam12") == "source"
    assert thread_group("source-gate-east") == "source"
    assert thread_group("inference_0") == "inference"
    assert thread_group("MainThread") == "MainThread"
    assert thread_group("av:h264:df1") == "ffmpeg"


def test_a_named_block_restores_the_name_the_os_had() -> None:
    def body() -> None:
        set_os_thread_name("first-name")
        with os_thread_named("onnxruntime"):
            names.append(os_thread_name())
        names.append(os_thread_name())

    names: list[str] = []
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert names == ["onnxruntime", "first-name"]


def test_cpu_time_is_charged_to_the_group_that_spent_it() -> None:
    def spin() -> None:
        began = time.thread_time()
        while time.thread_time() - began < 0.5:  # CPU time, so a busy machine only makes it take longer
            pass
        done.wait()

    done = threading.Event()
    thread = threading.Thread(target=spin, name="spinner-1")
    before = thread_cpu_seconds()
    thread.start()
    wait_until(lambda: thread_cpu_seconds().get("spinner", 0) >= 0.4, 30, "the spinner's CPU time")
    after = thread_cpu_seconds()
    done.set()
    thread.join()
    assert after["spinner"] - before.get("spinner", 0) >= 0.4  # /proc counts in clock ticks: a little less
    assert cores_by_group(before, after, 1.0)["spinner"] >= 0.4


def decoder_threads(threads: int) -> tuple[int, int]:
    """Threads named after the camera, and FFmpeg-named threads added, while a camera reader decodes
    with `threads` FFmpeg threads (other tests' threads may come and go meanwhile: only these count)."""
    camera = f"cam{threads}"
    ffmpeg_before = [thread_group(name) for name in os_names()].count("ffmpeg")
    source = open_source(camera, "demo", decode=DecodeConfig(threads=threads))
    source.start()
    try:
        assert source.wait(0, timeout=20) is not None, source.last_error
        names = os_names()
    finally:
        source.stop()
    ffmpeg = [thread_group(name) for name in names].count("ffmpeg") - ffmpeg_before
    return names.count(f"source-{camera}"), ffmpeg


def test_decoder_threads_are_named_by_camera_or_by_ffmpeg() -> None:
    assert decoder_threads(1) == (1, 0)  # the default: the reader decodes alone
    named, ffmpeg = decoder_threads(0)  # FFmpeg's choice: slice threads, which inherit the reader's name
    assert named > 1 and ffmpeg == 0
    assert decoder_threads(3) == (1, 3)  # frame threads, which FFmpeg names itself


def test_the_engine_pool_threads_are_named_onnxruntime() -> None:
    before = os_names().count("onnxruntime")
    engine = load_worker_engine(EngineConfig(model="crowd-lite0-int8", threads=2))
    assert os_names().count("onnxruntime") > before and engine is not None
    assert os_thread_name() != "onnxruntime"  # the caller got its own name back
