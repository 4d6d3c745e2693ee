"""A one-minute soak of the whole service (file cameras and a live RTSP camera, a private redis-server):
every record written to Redis is read back, nothing is dropped or raised, memory stays flat. The long
run is `crowdstream bench soak --minutes 10` (figures in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stream.soak.rtsp_server import RtspServer
from tests.conftest import free_port


@pytest.mark.slow
def test_one_minute_soak_reads_back_every_record(tmp_path) -> None:
    reason = RtspServer.available()
    if reason:
        pytest.fail(f"the soak needs a live RTSP camera: {reason}")
    camera = RtspServer(free_port(), tmp_path / "rtsp.log", width=640, height=360, fps=12)
    camera.start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "crowdstream",
                "bench",
                "soak",
                "--cameras",
                "3",
                "--minutes",
                "1",
                "--max-fps",
                "1",
                "--source",
                camera.url,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        camera.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    extra = report["extra"]
    assert min(report["fps_per_camera"].values()) > 0  # every camera, the RTSP one included, was counted
    assert extra["redis_records_written"] > 100
    assert extra["redis_records_read_back"] == extra["redis_records_written"]
    assert extra["redis_records_dropped"] == 0 and extra["redis_flushed"]
    assert extra["errors_logged"] == 0 and extra["exceptions_logged"] == 0
    assert extra["reconnects"] == 0
    assert extra["rss_growth_pct"] < 25  # a loose bound for one minute; the 10-minute run is held to 10 %
