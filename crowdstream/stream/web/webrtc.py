"""WebRTC live view: one annotated video track per viewer, answered from the viewer's SDP offer. The
tracks of a camera share its live pictures (rendered once); each track only wraps one for its encoder.

aiortc answers with every ICE candidate it gathers (no trickle), from host addresses that exclude
127.0.0.1, as RFC 8445 asks. A browser on the same machine as a server whose only interface is
loopback could then never connect, so a viewer whose HTTP request came over loopback also gets a
127.0.0.1 host candidate (`_offer_loopback_candidates`). Other networks use the configured STUN/TURN
servers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from contextvars import ContextVar
from dataclasses import dataclass

import aioice.ice
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack
from av import VideoFrame

from crowdstream.stream.hub import Hub
from crowdstream.stream.web.api import find_camera
from crowdstream.stream.web.bodies import json_body
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.errors import json_error
from crowdstream.stream.web.frames import CameraGone, LiveCursor
from crowdstream.stream.web.limits import RateLimiter, ViewerSlots

log = logging.getLogger(__name__)

_include_loopback: ContextVar[bool] = ContextVar("include_loopback", default=False)
_host_addresses = aioice.ice.get_host_addresses  # aioice's own, kept before any viewer is answered


def _host_addresses_and_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice's host addresses, plus 127.0.0.1 while answering a viewer that is on this machine."""
    addresses = _host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if use_ipv4 and _include_loopback.get() and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


def _offer_loopback_candidates() -> None:
    """Route aioice's host-address lookup through `_host_addresses_and_loopback`, from the first viewer
    on this machine on (importing this module changes nothing).

    There is no public way to add a host candidate: aiortc's RTCConfiguration holds ICE servers and the
    transport and bundle policies only, and aioice's public Connection takes use_ipv4/use_ipv6 only (and
    aiortc builds it). So this replaces `aioice.ice.get_host_addresses`, a module function outside
    aioice's public names (aiortc 1.16, aioice 0.13): process-wide, but it adds 127.0.0.1 only to the
    answer being made for a loopback viewer (`_include_loopback`); every other answer gets aioice's list."""
    aioice.ice.get_host_addresses = _host_addresses_and_loopback


class OfferError(ValueError):
    """An SDP offer that cannot be answered (malformed, or asking for no video)."""


class AnnotatedTrack(MediaStreamTrack):
    """A video track whose `recv()` returns the camera's newest annotated frame, stamped with the clock
    time it was picked, relative to the first frame (real pacing, not an assumed 30 fps)."""

    kind = "video"

    def __init__(self, frames: LiveCursor) -> None:
        super().__init__()
        self.frames = frames
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            picture = await self.frames.next()
        except CameraGone:
            self.stop()
            raise MediaStreamError from None
        taken = self.frames.taken
        self._start = taken if self._start is None else self._start
        frame = VideoFrame.from_ndarray(picture.image, format="bgr24")
        frame.pts = round((taken - self._start) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self.frames.close()


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


async def _read_offer(request: web.Request, max_bytes: int) -> str:
    """The SDP text of a JSON offer body (read by web.bodies like every body); 413 beyond `max_bytes`."""
    body = await json_body(request, max_bytes)
    if not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        raise json_error(web.HTTPBadRequest, 'the body must be {"type": "offer", "sdp": "v=0..."}')
    return body["sdp"]


REQUIRED_SDP_LINES = ("m=video ", "a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:")


def _check_offer(sdp: str) -> None:
    """Cheap checks before any work: aiortc accepts an offer without these but fails after answering."""
    lines = sdp.splitlines()
    missing = [
        prefix.strip() for prefix in REQUIRED_SDP_LINES if not any(x.startswith(prefix) for x in lines)
    ]
    if not sdp.startswith("v=0") or missing:
        raise OfferError(f"the SDP offer must start with v=0 and have {', '.join(missing) or 'its lines'}")


@dataclass(eq=False)
class Viewer:
    """One open peer connection sending one camera."""

    camera: str
    pc: RTCPeerConnection
    track: AnnotatedTrack
    expiry: asyncio.TimerHandle | None = None  # cancelled on close: it would keep the peer alive till then


class LiveView:
    """Answers offers within the viewer limits and owns every peer connection until it closes: on
    disconnect or failure, when it does not connect within `connect_timeout_s`, and on shutdown."""

    def __init__(self, hub: Hub, http: HttpConfig, slots: ViewerSlots) -> None:
        self.hub, self.http, self.slots = hub, http, slots
        self.viewers: set[Viewer] = set()
        self.rate = RateLimiter(http.offer_rate_per_minute)

    async def offer(self, request: web.Request) -> web.Response:
        """`POST /api/cameras/{id}/offer`: `{"type": "offer", "sdp": ...}` in, the answer out."""
        self.rate.check(request.remote or "")
        camera = find_camera(self.hub, request)
        sdp = await _read_offer(request, self.http.max_sdp_bytes)
        try:
            answer = await self.answer(camera.id, sdp, loopback=_is_loopback(request.remote))
        except OfferError as exc:
            raise json_error(web.HTTPBadRequest, str(exc)) from None
        return web.json_response({"type": answer.type, "sdp": answer.sdp})

    def _configuration(self) -> RTCConfiguration:
        servers = [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in self.http.ice_servers
        ]
        return RTCConfiguration(iceServers=servers)  # an empty list: no STUN lookups on a LAN

    async def answer(self, camera_id: str, offer_sdp: str, *, loopback: bool) -> RTCSessionDescription:
        """Negotiate a peer that sends `camera_id`'s annotated frames; raises OfferError on a bad offer."""
        _check_offer(offer_sdp)
        self.slots.acquire(camera_id)
        frames = LiveCursor(
            self.hub, self.hub.cameras[camera_id], self.http.live_fps, self.http.live_max_width
        )
        viewer = Viewer(camera_id, RTCPeerConnection(self._configuration()), AnnotatedTrack(frames))
        self.viewers.add(viewer)
        viewer.pc.on("connectionstatechange", lambda: self._on_state(viewer))
        try:
            await _negotiate(viewer.pc, viewer.track, offer_sdp, loopback)
        except BaseException:
            await self._close(viewer)
            raise
        viewer.expiry = asyncio.get_running_loop().call_later(
            self.http.connect_timeout_s, self._expire, viewer
        )
        return viewer.pc.localDescription

    def _on_state(self, viewer: Viewer) -> None:
        log.debug("viewer of %s: %s", viewer.camera, viewer.pc.connectionState)
        if viewer.pc.connectionState in ("failed", "closed"):
            asyncio.ensure_future(self._close(viewer))

    def _expire(self, viewer: Viewer) -> None:
        if viewer in self.viewers and viewer.pc.connectionState != "connected":
            log.info("closing a viewer of %s that did not connect in time", viewer.camera)
            asyncio.ensure_future(self._close(viewer))

    async def _close(self, viewer: Viewer) -> None:
        """Close once: stop encoding, free the viewer slot, then close the connection."""
        if viewer not in self.viewers:
            return
        self.viewers.discard(viewer)
        if viewer.expiry is not None:
            viewer.expiry.cancel()
        viewer.track.stop()
        self.slots.release(viewer.camera)
        await viewer.pc.close()

    async def close_all(self) -> None:
        """Close every peer connection (on shutdown)."""
        await asyncio.gather(*(self._close(viewer) for viewer in list(self.viewers)))


async def _negotiate(pc: RTCPeerConnection, track: AnnotatedTrack, sdp: str, loopback: bool) -> None:
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        pc.addTrack(track)
        answer = await pc.createAnswer()
    except Exception as exc:  # aiortc reports bad SDP with assorted exception types
        raise OfferError(f"cannot answer this SDP offer: {exc or type(exc).__name__}") from exc
    if loopback:
        _offer_loopback_candidates()
    token = _include_loopback.set(loopback)
    try:
        await pc.setLocalDescription(answer)
    finally:
        _include_loopback.reset(token)
