"""An RTSP camera through a real GStreamer RTSP server on loopback, killed and restarted mid-stream."""

from __future__ import annotations

import time

from crowdstream.stream.soak.rtsp_server import RtspServer
from crowdstream.stream.sources import open_source
from crowdstream.stream.sources.capture import AvReader
from tests.conftest import wait_until


def test_rtsp_camera_survives_its_server_dying_and_returning(rtsp_server: RtspServer) -> None:
    camera = open_source("door", rtsp_server.url, open_timeout=5.0, read_timeout=3.0, max_backoff=1.0)
    other = open_source("other", "demo")
    camera.start()
    other.start()
    try:
        first = camera.wait(0, timeout=20)
        assert first is not None, f"no frame from {rtsp_server.url}: {camera.last_error}"
        assert first.image.shape == (240, 320, 3) and camera.status == "up"
        wait_until(lambda: camera.latest().seq > first.seq + 5, 10, "live frames keep coming")

        rtsp_server.kill()
        wait_until(lambda: camera.status == "down", 10, "the dead server is noticed")
        assert camera.fps == 0.0 and camera.last_error
        reconnects = camera.reconnects
        wait_until(
            lambda: camera.reconnects >= reconnects + 2, 10, "reconnect attempts continue while it is gone"
        )
        assert camera.last_error
        during_outage = other.latest().seq
        wait_until(lambda: other.latest().seq > during_outage + 5, 10, "the other camera keeps producing")
        before_restart = camera.latest().seq

        rtsp_server.start()
        wait_until(lambda: camera.status == "up", 20, "the camera comes back by itself")
        wait_until(lambda: camera.latest().seq > before_restart + 5, 10, "frames flow again")
        assert other.status == "up" and other.reconnects == 0
    finally:
        camera.stop()
        other.stop()


def test_rtsp_camera_that_hangs_is_down_after_the_read_timeout(rtsp_server: RtspServer) -> None:
    # A long open timeout keeps the reconnect to the frozen server pending, so last_error stays the
    # read timeout under test.
    camera = open_source("hung", rtsp_server.url, open_timeout=10.0, read_timeout=2.0, max_backoff=1.0)
    camera.start()
    try:
        assert camera.wait(0, timeout=20) is not None, camera.last_error
        rtsp_server.freeze()
        wait_until(lambda: camera.status == "down", 15, "the silent connection is given up")
        assert camera.last_error == "no data within 2 s"
        rtsp_server.freeze(False)
        wait_until(lambda: camera.status == "up", 20, "the camera recovers once the server answers again")
    finally:
        camera.stop()


def test_live_reader_that_stalls_skips_the_backlog_instead_of_decoding_it(rtsp_server: RtspServer) -> None:
    reader = AvReader(rtsp_server.url, finite=False, options={"rtsp_transport": "tcp"}, read_timeout=5.0)
    frames = reader.frames()
    try:
        for _ in range(10):
            next(frames)
        assert reader.skipped == 0, "a reader that keeps up decodes everything"
        time.sleep(3.0)  # the consumer stalls; the server keeps sending 15 fps into the socket
        for _ in range(10):
            next(frames)
        assert reader.skipped >= 15, "the stale seconds were skipped, not decoded"
    finally:
        frames.close()
