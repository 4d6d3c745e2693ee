"""The live view with real WebRTC clients (aiortc) and raw sockets: every camera frame with the newest
overlay, at the camera's pace while counting runs slower, pictures rendered once per frame for all
viewers, loopback viewing without STUN, peers closed on disconnect, on a failed negotiation and on
shutdown, a stalled MJPEG viewer dropped without hurting the others, and 20 viewers at once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import socket
import subprocess
import sys
import time

import aiohttp
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import VideoStreamTrack

import crowdstream.stream.hub
import crowdstream.stream.pictures
from crowdstream.stream.overlay import render_overlay
from crowdstream.stream.web.app import LIVE_VIEW, VIEWER_SLOTS
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.frames import LiveCursor
from crowdstream.stream.web.webrtc import AnnotatedTrack, _negotiate
from tests.conftest import offer_answer, receive, until, watch
from tests.web_support import Served, serve


def released(served: Served) -> bool:
    """No peer, slot or watcher left on the server."""
    live = served.app[LIVE_VIEW]
    return not live.viewers and not served.app[VIEWER_SLOTS].open and not any(served.hub.viewers.values())


def media_steps(frames: list[tuple[float, object]]) -> list[float]:
    """Seconds between consecutive frames by their media timestamps."""
    pts = [frame.pts * float(frame.time_base) for _, frame in frames]
    return np.diff(pts).tolist()


def nearest(image: np.ndarray, candidates: list[np.ndarray]) -> float:
    return min(float(np.abs(image.astype(np.float32) - c.astype(np.float32)).mean()) for c in candidates)


def overlay_distance(image: np.ndarray, annotated: list[np.ndarray], raws: list[np.ndarray]) -> float:
    """Where the overlay changes the clip frame closest to `image`: the distance to the annotated frame over
    the distance to the raw one (0 = the overlay is there, 1 = it is not). Only the pixels the overlay
    changes count, so the result does not depend on how much of the frame the heatmap covers."""
    index = int(np.argmin([np.abs(image.astype(np.float32) - r).mean() for r in raws]))
    drawn, raw = annotated[index].astype(np.float32), raws[index].astype(np.float32)
    changed = np.abs(drawn - raw).mean(axis=2) > 30
    assert changed.mean() > 0.001, "the overlay changes almost nothing"
    picture = image.astype(np.float32)[changed]
    return float(np.abs(picture - drawn[changed]).mean() / np.abs(picture - raw[changed]).mean())


async def test_viewer_gets_every_camera_frame_with_the_newest_overlay() -> None:
    async with serve(HttpConfig(live_fps=30)) as served:
        connecting = time.monotonic()
        pc, track = await watch(served.url, "gate")
        frames = await receive(track, 24)
        assert served.hub.watching("gate") and not served.hub.watching("hall")
        steps = media_steps(frames)
        assert min(steps) >= 0.9 / 30  # never faster than http.live_fps
        assert np.median(steps) >= 0.5 / served.clip.fps, steps  # paced by the camera's frames
        # Stamped from the clock, not from frame counts: the server (this process, this clock) stamped the
        # frames between the offer and the last arrival, so media time cannot run ahead of that span; a
        # slow machine only widens the span.
        assert sum(steps) <= frames[-1][0] - connecting, (sum(steps), frames[-1][0] - connecting)
        # With counting paused the overlay is fixed: every picture is a clip frame with that overlay.
        await served.pause_counting()
        camera = served.hub.cameras["gate"]
        counted = camera.counted
        frames = await receive(track, 13)
        raws = served.clip.frames
        annotated = [render_overlay(f, counted.density, counted.reading, camera.zones) for f in raws]
        shown = [frame.to_ndarray(format="bgr24") for _, frame in frames[1:]]
        assert shown[0].shape == raws[0].shape
        for image in shown:
            assert overlay_distance(image, annotated, raws) < 0.5, "a picture without the overlay"
        label = (slice(4, 30), slice(4, 160))  # the count label's box in the top-left corner
        assert nearest(shown[-1][label], [a[label] for a in annotated]) < 0.5 * nearest(
            shown[-1][label], [r[label] for r in raws]
        )
        matches = {
            int(np.argmin([np.abs(i.astype(np.float32) - a).mean() for a in annotated])) for i in shown
        }
        assert len(matches) >= 4, matches  # the video moves on between counts: many clip frames shown
        await pc.close()
        await until(lambda: released(served), 20, "every peer, slot and watcher released")


async def test_viewers_of_a_camera_share_one_rendered_picture(monkeypatch) -> None:
    """Two MJPEG viewers and a WebRTC viewer of one camera: each (frame, count) is rendered once and
    each picture's JPEG encoded once, whatever the number of viewers."""
    renders: list[tuple[int, int, int]] = []
    encodes: list[np.ndarray] = []  # the encoded images themselves, kept alive so their ids stay unique
    monkeypatch.setattr(
        crowdstream.stream.hub,
        "render_live",
        recorded(crowdstream.stream.hub.render_live, renders, lambda a: a[3]),
    )
    monkeypatch.setattr(
        crowdstream.stream.pictures,
        "encode_jpeg",
        recorded(crowdstream.stream.pictures.encode_jpeg, encodes, lambda a: a[0]),
    )
    async with serve(HttpConfig(live_fps=30)) as served:
        pc, track = await watch(served.url, "gate")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/api/cameras/gate/mjpeg") as first,
            session.get(f"{served.url}/api/cameras/gate/mjpeg") as second,
        ):
            for _ in range(10):
                await first.content.readuntil(b"--frame\r\n")
                await second.content.readuntil(b"--frame\r\n")
            await receive(track, 5)
        await pc.close()
    assert len(renders) >= 10 and len(renders) == len(set(renders))  # no (frame, count) rendered twice
    assert len(encodes) >= 10 and len(encodes) == len({id(image) for image in encodes})  # none encoded twice


def recorded(function, calls: list, what):
    """`function`, recording what(args) of every call."""

    def wrapper(*args):
        calls.append(what(args))
        return function(*args)

    return wrapper


async def test_loopback_viewer_connects_through_a_127_0_0_1_candidate() -> None:
    def loopback_only(sdp: str) -> str:
        lines = [
            line for line in sdp.splitlines() if not line.startswith("a=candidate:") or " 127.0.0.1 " in line
        ]
        return "\r\n".join(lines) + "\r\n"

    async with serve() as served:
        _, answer = await offer_answer(served.url, "hall")
        assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host", answer["sdp"])
        pc, track = await watch(served.url, "hall", loopback_only)
        assert len(await receive(track, 5)) == 5
        await pc.close()


async def test_only_an_answer_to_a_loopback_viewer_gets_a_127_0_0_1_candidate() -> None:
    """The loopback candidate replaces aioice's host-address lookup (it has no public option for it):
    importing the live view leaves aioice alone, and once a loopback viewer was answered, an answer to a
    viewer on another machine still holds only aioice's own addresses."""
    probe = "import aioice.ice as a; f = a.get_host_addresses; import crowdstream.stream.web.webrtc; print(a.get_host_addresses is f)"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        == "True\n"
    )
    for loopback in (True, False):
        viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await _negotiate(server, VideoStreamTrack(), viewer.localDescription.sdp, loopback)
        assert (" 127.0.0.1 " in server.localDescription.sdp) == loopback
        await asyncio.gather(viewer.close(), server.close())


async def test_a_peer_that_never_connects_is_closed() -> None:
    async with serve(HttpConfig(connect_timeout_s=1.5)) as served:
        offer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        offer.addTransceiver("video", direction="recvonly")
        await offer.setLocalDescription(await offer.createOffer())
        body = json.dumps({"type": "offer", "sdp": offer.localDescription.sdp}).encode()
        request = (
            f"POST /api/cameras/gate/offer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(request)  # and hang up before reading the answer
        ignored, _ = await offer_answer(served.url, "gate")  # answered, but never applied
        await until(
            lambda: len(served.app[LIVE_VIEW].viewers) == 2 or released(served), 5, "both viewers seen"
        )
        await until(lambda: released(served), 10, "every peer, slot and watcher released")
        await offer.close()
        await ignored.close()


async def test_shutdown_closes_every_peer() -> None:
    async with serve() as served:
        pcs = [await watch(served.url, camera) for camera in ("gate", "hall")]
        for _, track in pcs:
            await receive(track, 2)
        server_peers = [viewer.pc for viewer in served.app[LIVE_VIEW].viewers]
        assert len(server_peers) == 2
    assert all(pc.connectionState == "closed" for pc in server_peers)
    assert released(served)
    for pc, _ in pcs:
        await pc.close()


async def test_a_stopped_camera_stops_its_viewers_encoding() -> None:
    async with serve() as served:
        pc, track = await watch(served.url, "gate")
        await receive(track, 2)
        served.sources["gate"].stop()  # the reader stops: the worker reports it, the viewer's track ends
        await until(lambda: not served.hub.watching("gate"), 5, "nobody watching gate")
        await pc.close()


async def test_a_stalled_mjpeg_viewer_is_dropped_and_others_keep_playing() -> None:
    async with serve(HttpConfig(stall_timeout_s=1.0, live_fps=30)) as served:
        port = int(served.url.rsplit(":", 1)[1])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /api/cameras/gate/mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
        await until(lambda: served.hub.viewers.get("gate") == 1, 5, "one viewer of gate")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/api/cameras/gate/mjpeg") as live,
        ):
            parts = 0
            async with asyncio.timeout(60):
                while served.hub.viewers.get("gate", 0) > 1 or parts < 10:
                    await live.content.readuntil(b"--frame\r\n")
                    parts += 1
            assert served.app[VIEWER_SLOTS].open == {"gate": 1}  # only the reading viewer is left
            await live.content.readuntil(b"--frame\r\n")  # and it still gets frames
        stalled.settimeout(5)  # the server hung up: what it sent drains, then EOF or a reset, no timeout
        with contextlib.suppress(ConnectionResetError):
            while stalled.recv(1 << 20):
                pass
        stalled.close()
        await until(lambda: released(served), 20, "every peer, slot and watcher released")


def alive(*kinds: type) -> dict[str, int]:
    """How many objects of each kind exist after a full garbage collection."""
    gc.collect()
    counts = dict.fromkeys((kind.__name__ for kind in kinds), 0)
    for thing in gc.get_objects():
        if type(thing) in kinds:  # not isinstance: that wakes lazy proxies (torch warns)
            counts[type(thing).__name__] += 1
    return counts


@pytest.mark.timeout(180)
async def test_twenty_viewers_at_once_with_half_of_them_not_reading() -> None:
    http = HttpConfig(
        max_viewers_per_camera=20,
        max_viewers_total=20,
        live_fps=5,
        live_max_width=320,
        offer_rate_per_minute=100,
        connect_timeout_s=120,  # 20 handshakes on a busy 2-core machine; expiry is tested above
    )
    server_side = (AnnotatedTrack, LiveCursor)
    async with serve(http) as served:
        before = alive(*server_side, RTCPeerConnection)
        for _ in range(2):
            viewers = await asyncio.gather(*(watch(served.url, ("gate", "hall")[i % 2]) for i in range(20)))
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{served.url}/api/cameras/gate/offer", json={"type": "offer", "sdp": "v=0"}
                ) as refused,
            ):
                assert refused.status == 400  # malformed: refused before the viewer limit is even checked
            reading = viewers[::2]  # the others never call recv(): they stopped reading
            received = await asyncio.gather(*(receive(track, 5, timeout=120) for _, track in reading))
            for frames in received:  # each reader keeps getting the newest frames, paced, no backlog
                assert min(media_steps(frames)) >= 0.9 / http.live_fps
            assert len(served.app[LIVE_VIEW].viewers) == 20
            # one track and one cursor per viewer, whoever reads: nothing is made per frame
            assert alive(*server_side) == {"AnnotatedTrack": 20, "LiveCursor": 20}
            await asyncio.gather(*(pc.close() for pc, _ in viewers))
            await until(lambda: released(served), 30, "every peer, slot and watcher released")
            del viewers, reading, received
            # a round of 20 viewers leaves nothing behind, on the server or in the clients (their
            # closing tasks finish a moment after the slots are freed)
            await until(
                lambda: alive(*server_side, RTCPeerConnection) == before,
                30,
                "the server's peer connections collected",
            )
