"""A camera that dies, in Debian's Chromium: the real service reads a real RTSP camera (GStreamer's
RTSP server) next to the demo clip; the camera is killed and its card must say why (the reader's own
error), since when, how many reconnects and when it tries next, over the last picture it sent, exactly
as /api/cameras reports it."""

from __future__ import annotations

import aiohttp
import pytest

from crowdstream.stream.config import build_config
from crowdstream.stream.service import Service
from crowdstream.stream.soak.rtsp_server import RtspServer
from tests.conftest import ARTIFACTS, eventually, free_port
from tests.web_support import get_json

CARD = "article[data-camera=gate]"


async def camera_summary(url: str, camera: str) -> dict:
    async with aiohttp.ClientSession() as session:
        _, body = await get_json(session, f"{url}/api/cameras/{camera}")
    return body


async def test_a_dead_rtsp_camera_shows_its_reason_over_its_last_picture(browser, tmp_path) -> None:  # noqa: F811
    missing = RtspServer.available()
    if missing:
        pytest.fail(f"{missing}: apt-get install -y gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi")
    camera = RtspServer(free_port(), tmp_path / "rtsp.log", width=640, height=360, fps=10, pattern="smpte")
    camera.start()
    walkway = {"name": "walkway", "polygon": [[0, 0], [640, 0], [640, 720], [0, 720]], "area_m2": 20}
    cameras = [
        {"id": "demo", "name": "Concourse", "url": "demo", "zones": [{**walkway, "threshold": 0.3}]},
        {"id": "gate", "name": "North gate", "url": camera.url},
    ]
    config = build_config(
        {"cameras": cameras, "http": {"port": 0}, "redis": {"embedded": False}}, "test", environ={}
    )
    service = Service(config)
    await service.start()
    url = f"http://127.0.0.1:{service.bound_port}"
    try:
        page = await browser.new_page(viewport={"width": 1100, "height": 760})
        await page.goto(url)
        await page.wait_for_selector(f"{CARD}[data-status=up]", timeout=45_000)
        await eventually(lambda: camera_summary(url, "gate"), lambda c: c["count"] is not None)
        assert await page.is_hidden(f"{CARD} .health")
        camera.kill()
        await page.wait_for_selector(f"{CARD}[data-status=down] .health:not([hidden])", timeout=45_000)
        summary = await eventually(
            lambda: camera_summary(url, "gate"),
            lambda c: c["status"] == "down" and c["reconnects"] >= 1 and c["next_retry"] is not None,
        )
        assert summary["last_error"] and summary["status_since"] <= summary["next_retry"]
        await eventually(
            lambda: page.text_content(f"{CARD} .health-reason"), lambda text: text == summary["last_error"]
        )
        detail = await page.text_content(f"{CARD} .health-detail")
        assert detail.startswith("since ") and "reconnect" in detail
        assert "next try in" in detail or "trying again now" in detail
        assert await page.text_content(f"{CARD} .health-title") == "Camera down"
        assert await page.is_hidden("article[data-camera=demo] .health")
        # the last picture stays on screen under the panel (the live view repeats it)
        assert await page.eval_on_selector(f"{CARD} video", "v => v.videoWidth") > 0
        ARTIFACTS.mkdir(exist_ok=True)
        await page.locator(CARD).screenshot(path=ARTIFACTS / "camera-down.png")
        await page.wait_for_selector("#alerts li.ongoing")  # the concourse's walkway is over its limit
        await page.screenshot(path=ARTIFACTS / "overview.png", full_page=True)
        await page.close()
    finally:
        await service.stop()
        camera.stop()
