"""SIGTERM while a WebRTC viewer is watching: the real `crowdstream serve` still exits 0 within 10 s."""

import asyncio

from tests.conftest import demo_cameras, receive, watch


def test_sigterm_with_a_live_viewer_exits_0_within_10_s(service_process) -> None:
    served = service_process({"cameras": demo_cameras(1, max_fps=4), "redis": {"url": None}})
    url = f"http://127.0.0.1:{served.port}"

    async def watch_then_terminate() -> tuple[int, float]:
        pc, track = await watch(url, "cam1")
        try:
            assert len(await receive(track, 3)) == 3
            return await asyncio.to_thread(served.terminate, 10.0)
        finally:
            await pc.close()

    code, seconds = asyncio.run(watch_then_terminate())
    assert code == 0, served.logs()[-2000:]
    assert seconds < 10
