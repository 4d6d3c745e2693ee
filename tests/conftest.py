"""Shared fixtures and helpers: every test module takes them from here, none from another test module.

Fixtures that start real processes on loopback always clean them up: `redis_server` starts a real
`redis-server` (Debian package `redis-server`) on a free port in its own process group (tests may
`kill()` and `start()` it again on the same port to simulate an outage), `service_process` runs
`crowdstream serve` as a user does, `rtsp_server` a GStreamer RTSP camera, `browser` Debian's Chromium
through Playwright. Helpers: `run_cli`, waiting (`wait_until`, `eventually`), marked video frames, and a
WebRTC viewer (`watch`, `receive`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import yaml
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from prometheus_client.parser import text_string_to_metric_families

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.redis_server import free_port, redis_server_command
from crowdstream.stream.soak import processes
from crowdstream.stream.soak.processes import stop_process_group
from crowdstream.stream.soak.rtsp_server import RtspServer

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
"""Screenshots and other pictures the tests save for a person to look at."""


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on `port`, or fail the test."""
    try:
        processes.wait_for_port(port, timeout, host)
    except CrowdstreamError as exc:
        pytest.fail(str(exc))


class RedisServer:
    """A real redis-server on a fixed port that can be killed and started again on the same port. It keeps an
    append-only file synced on every write, so like a production Redis it comes back with its data."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        command = redis_server_command(executable, self.port, self.workdir, durable=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL: the abrupt outage a crashed or restarted Redis gives its clients."""
        processes.kill_process_group(self.process)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process_group(self.process)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test; `.url`, `.port`, `.kill()`, `.start()`."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a fresh redis-server (for tests that only need to talk to one)."""
    return redis_server.url


# --- the command line and the service, as a user runs them ------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name ({} if it has none). argparse has no public way to list them, so
    this one helper reads the parser's actions; the product itself uses only argparse's public API."""
    for action in parser._actions:
        if isinstance(action.choices, dict):
            return dict(action.choices)
    return {}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`crowdstream ARGS` in a child process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "crowdstream", *args], capture_output=True, text=True, timeout=timeout
    )


class ServiceProcess:
    """A `crowdstream serve` process with its log file and HTTP port."""

    def __init__(self, process: subprocess.Popen, log: Path, port: int) -> None:
        self.process, self.log, self.port = process, log, port

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def metric(self, name: str, **labels: str) -> float | None:
        status, text = self.get("/metrics")
        if status != 200:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return None

    def logs(self) -> str:
        return self.log.read_text()

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = 90.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"serve exited with {self.process.returncode} waiting for {what}:\n{self.logs()[-3000:]}"
                )
            if condition():
                return
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}:\n{self.logs()[-3000:]}")

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started


@pytest.fixture
def service_process(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `crowdstream serve` with a config (and environment); always stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(config: dict, env: dict[str, str] | None = None) -> ServiceProcess:
        port = free_port()
        config = {**config, "http": {"port": port}}
        path = tmp_path / f"service-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = tmp_path / f"service-{len(started)}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CROWDSTREAM_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "crowdstream", "serve", "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env={**environment, **(env or {})},
            start_new_session=True,
        )
        started.append(process)
        served = ServiceProcess(process, log, port)
        served.wait_until(lambda: served.get("/readyz")[0] == 200, what="/readyz")
        return served

    yield start
    for process in started:
        stop_process_group(process)


def demo_cameras(count: int, max_fps: float = 4.0) -> list[dict]:
    """`count` cameras on the bundled demo clip, cam1, cam2, ..."""
    return [{"id": f"cam{i}", "url": "demo", "max_fps": max_fps} for i in range(1, count + 1)]


# --- waiting for something that happens in another thread or process ---------------------------------


def process_gone(pid: int) -> bool:
    """Whether no process runs as `pid`: none has it, or only a zombie (dead; reaped by now or never
    will be, where the container's first process does not reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, details: Callable[[], str] = str
) -> None:
    """Poll `condition` until it holds; fail naming `what`, followed by `details()` (logs, say)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}\n{details()}")
        time.sleep(0.05)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """`wait_until` for a test on the event loop: poll without blocking it, so the server it waits on runs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def eventually(probe, check, timeout: float = 45):
    """Poll an async `probe` until `check(value)` holds; return the value or fail with the last one."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = await probe()
        if check(value):
            return value
        await asyncio.sleep(0.2)
    pytest.fail(f"gave up waiting; last value {value!r}")


async def until_true(page, expression: str, timeout: float = 45) -> None:
    """Wait until the JavaScript `expression` holds in `page`, polled from here with page.evaluate. Not
    page.wait_for_function: Playwright re-checks a string expression with eval, which the page's CSP
    (script-src 'self') refuses, so such a wait failed whenever the expression was not already true at its
    first check — on a loaded CI machine, the camera's model name in the teach dialog."""
    if expression.lstrip().startswith(("(", "function")):
        raise ValueError(f"until_true takes an expression, not a function: {expression!r}")
    await eventually(lambda: page.evaluate(f"() => Boolean({expression})"), bool, timeout)


# --- video: frames that say which they are, an RTSP camera, a WebRTC viewer --------------------------


def marked_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A black frame with a white bar at x = 10·index, so a decoded frame tells which one it was."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, 10 * index : 10 * index + 10] = 255
    return image


def frame_index(image: np.ndarray) -> int:
    """Inverse of marked_frame (after lossy coding): the 10-pixel column band that is brightest."""
    columns = image.mean(axis=(0, 2))
    return int(np.argmax(columns[: columns.size // 10 * 10].reshape(-1, 10).mean(axis=1)))


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServer]:
    missing = RtspServer.available()
    if missing:
        pytest.fail(
            f"{missing}: apt-get install -y gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi "
            "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
        )
    server = RtspServer(free_port(), tmp_path / "rtsp.log", width=320, height=240, fps=15)
    server.start()
    yield server
    server.stop()


async def offer_answer(url: str, camera: str) -> tuple[RTCPeerConnection, dict]:
    """A receiving peer and the server's answer to its offer (not yet applied)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/api/cameras/{camera}/offer", json={"type": "offer", "sdp": pc.localDescription.sdp}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return pc, await response.json()


async def watch(
    url: str, camera: str, answer_filter=lambda sdp: sdp
) -> tuple[RTCPeerConnection, MediaStreamTrack]:
    """Connect a viewer and return its peer and the video track it receives."""
    pc, answer = await offer_answer(url, camera)
    track = asyncio.get_running_loop().create_future()
    pc.on("track", track.set_result)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_filter(answer["sdp"]), type="answer"))
    return pc, await asyncio.wait_for(track, 10)


async def receive(track: MediaStreamTrack, count: int, timeout: float = 60) -> list[tuple[float, object]]:
    """`count` decoded frames with the wall-clock time each arrived."""
    frames = []
    async with asyncio.timeout(timeout):
        while len(frames) < count:
            frame = await track.recv()
            frames.append((time.monotonic(), frame))
    return frames


# --- a real browser -----------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Plain host candidates instead of mDNS names: aioice keeps its mDNS resolver in process-global
    # state tied to the first event loop, and every test here runs the server in a new loop.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium driven by Playwright (Playwright downloads no browser of its own here); skips where either is missing."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("apt-get install -y chromium")
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
