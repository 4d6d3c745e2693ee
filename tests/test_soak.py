"""The fault soak: its pure parts (schedule, sequence check), the read-back against a real redis-server
holding damaged records, the exception watch, and a short soak of the whole service with one RTSP and
one Redis restart that must lose, repeat and reorder nothing.

The short soak asserts on records only (never on timings), so it holds on a loaded machine. Its length
and camera count come from CROWDSTREAM_SOAK_MINUTES (default 1.5) and CROWDSTREAM_SOAK_CAMERAS (3).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading

import av
import pytest
import redis.asyncio as aioredis

from crowdstream.stream.redis_publisher import counts_key
from crowdstream.stream.soak.clip import loop_clip
from crowdstream.stream.soak.faults import Fault, fault_schedule
from crowdstream.stream.soak.records import check_records, check_sequence
from crowdstream.stream.soak.rtsp_server import RtspServer
from crowdstream.stream.soak.watch import ExceptionWatch
from crowdstream.stream.sources import DEMO_CLIP

PREFIX = "soak:"


def test_faults_alternate_and_spread_evenly() -> None:
    assert fault_schedule(100, 2, 2) == [
        Fault(20.0, "rtsp"),
        Fault(40.0, "redis"),
        Fault(60.0, "rtsp"),
        Fault(80.0, "redis"),
    ]
    assert fault_schedule(90, 1, 0) == [Fault(45.0, "rtsp")]
    assert fault_schedule(90, 0, 3) == [Fault(22.5, "redis"), Fault(45.0, "redis"), Fault(67.5, "redis")]
    assert fault_schedule(90, 0, 0) == []


def test_the_looped_clip_outlasts_the_run_with_rising_timestamps(tmp_path) -> None:
    looped = loop_clip(DEMO_CLIP, tmp_path / "looped.mp4", seconds=70)
    with av.open(str(DEMO_CLIP)) as clip:
        once = sum(1 for _ in clip.demux(video=0)) - 1  # without the flush packet
    with av.open(str(looped)) as video:
        stream = video.streams.video[0]
        dts = [packet.dts for packet in video.demux(stream) if packet.dts is not None]
        seconds = float(stream.duration * stream.time_base)
    assert len(dts) == 3 * once  # 28.5 s three times: the first whole number of rounds past 70 s
    assert seconds >= 70 and all(a < b for a, b in zip(dts, dts[1:], strict=False))


def test_a_clean_sequence_is_clean() -> None:
    check = check_sequence([1, 2, 3, 4], expected=4)
    assert check.clean and (check.records, check.missing) == (4, 0)


def test_sequence_faults_are_told_apart() -> None:
    check = check_sequence([1, 2, 2, 5, 4, 7], expected=6)
    assert (check.missing, check.first_missing) == (2, [3, 6])
    assert (check.duplicated, check.first_duplicated) == (1, [2])
    assert check.out_of_order == 1  # 4 after 5
    assert check.unexpected == 1  # 7 was never published
    assert not check.clean


def test_records_the_publisher_never_wrote_are_missing() -> None:
    check = check_sequence([], expected=3)
    assert (check.missing, check.first_missing) == (3, [1, 2, 3])


def _fields(run: str, seq: int, **overrides: str) -> dict[str, str]:
    fields = {"timestamp": "1.5", "count": "3.0", "smoothed": "3.0", "frame_age": "0.1", "zones": "[]"}
    return {**fields, "run": run, "seq": str(seq), **overrides}


async def test_read_back_finds_every_kind_of_damage(redis_url: str) -> None:
    """Records written by hand into a real Redis: one lost, one twice, two swapped, one unreadable, one
    of another run; the read-back (in chunks smaller than the Stream) reports each."""
    client = aioredis.Redis.from_url(redis_url)
    key = counts_key(PREFIX, "gate")
    for seq in [1, 2, 2, 4, 3, 6]:  # 5 lost, 2 twice, 4 before 3
        await client.xadd(key, _fields("r1", seq))
    await client.xadd(key, _fields("r1", 7, count="many"))
    await client.xadd(key, _fields("r0", 1))
    for seq in range(1, 4):
        await client.xadd(counts_key(PREFIX, "door"), _fields("r1", seq))
    await client.aclose()
    report = await check_records(redis_url, PREFIX, "r1", {"gate": 7, "door": 3}, chunk=2)
    gate, door = report["gate"], report["door"]
    assert (gate["missing"], gate["first_missing"]) == (2, [5, 7])
    assert (gate["duplicated"], gate["out_of_order"]) == (1, 1)
    assert (gate["unparsable"], gate["other_runs"], gate["records"]) == (1, 1, 6)
    assert door["records"] == 3 and door["missing"] == door["duplicated"] == door["out_of_order"] == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_exception_watch_counts_logs_threads_and_the_loop() -> None:
    hook = threading.excepthook
    watch = ExceptionWatch()
    watch.start()
    try:
        logging.getLogger("soak-test").error("plain error")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("soak-test").exception("with a traceback")
        thread = threading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join()
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        await asyncio.sleep(0.05)
    finally:
        watch.stop()
    counts = watch.as_dict()
    assert counts["thread_exceptions"] == 1 and counts["loop_exceptions"] == 1
    assert counts["errors_logged"] >= 2 and counts["exceptions_logged"] >= 1
    assert not watch.clean
    assert threading.excepthook is hook  # put back as it was


@pytest.mark.slow
def test_short_fault_soak_loses_repeats_and_reorders_nothing() -> None:
    if reason := RtspServer.available():
        pytest.fail(f"the soak needs the GStreamer RTSP server: {reason}")
    minutes = os.environ.get("CROWDSTREAM_SOAK_MINUTES", "1.5")
    cameras = os.environ.get("CROWDSTREAM_SOAK_CAMERAS", "3")
    command = [
        sys.executable,
        "-m",
        "crowdstream",
        "bench",
        "soak",
        "--cameras",
        cameras,
        "--minutes",
        minutes,
    ]
    faults = ["--rtsp-restarts", "1", "--redis-restarts", "1", "--outage-seconds", "4"]
    result = subprocess.run(
        [*command, *faults, "--progress-seconds", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=float(minutes) * 60 + 240,
    )
    assert result.stdout, result.stderr[-3000:]
    report = json.loads(result.stdout)
    records = report["records"]
    assert [f["target"] for f in report["faults"]] == ["rtsp", "redis"]
    assert report["rtsp_reconnects"] >= int(cameras) and report["redis_reconnects"] >= 1
    assert records["expected"] >= int(cameras) * 10  # every camera was counted, before and after the faults
    for camera, check in records["per_camera"].items():
        assert check["expected"] > 0, camera
        assert check["records"] == check["expected"], (camera, check)
        assert check["missing"] == check["duplicated"] == check["out_of_order"] == 0, (camera, check)
        assert check["unparsable"] == check["unexpected"] == check["other_runs"] == 0, (camera, check)
    assert records["counted_not_published"] == 0
    assert report["redis_backlog_dropped"] == 0 and report["redis_flushed"]
    assert report["clean_exceptions"], report["exceptions"]
    assert report["passed"] and result.returncode == 0, report["failures"]
