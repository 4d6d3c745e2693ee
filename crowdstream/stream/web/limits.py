"""Limits that keep viewers from starving the worker: concurrent viewers per camera and in total, a
per-address request rate (token bucket) for the expensive endpoints (WebRTC offers, logins), and a
deadline on every write to a streaming client."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import web

from crowdstream.stream.web.errors import json_error


@dataclass
class ViewerSlots:
    """Counts open live streams (WebRTC and MJPEG) per camera; `acquire` refuses with 503 when full."""

    per_camera: int
    total: int
    open: dict[str, int] = field(default_factory=dict)

    @property
    def in_use(self) -> int:
        return sum(self.open.values())

    def acquire(self, camera: str) -> None:
        if self.in_use >= self.total:
            raise json_error(
                web.HTTPServiceUnavailable,
                f"the server is at its limit of {self.total} viewers",
                headers={"Retry-After": "10"},
            )
        if self.open.get(camera, 0) >= self.per_camera:
            raise json_error(
                web.HTTPServiceUnavailable,
                f"camera {camera!r} is at its limit of {self.per_camera} viewers",
                headers={"Retry-After": "10"},
            )
        self.open[camera] = self.open.get(camera, 0) + 1

    def release(self, camera: str) -> None:
        left = self.open.get(camera, 0) - 1
        if left > 0:
            self.open[camera] = left
        else:
            self.open.pop(camera, None)


@dataclass
class RateLimiter:
    """A token bucket per client address: `per_minute` requests a minute, bursts up to the same number.
    Remembers at most `max_clients` addresses (least recently seen forgotten first) so a flood from
    many addresses cannot grow it without bound."""

    per_minute: int
    max_clients: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def check(self, client: str) -> None:
        """Take one token for `client` or raise 429 with the seconds until the next one."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            wait = (1 - tokens) * 60 / self.per_minute
            raise json_error(
                web.HTTPTooManyRequests,
                f"too many requests; retry in {wait:.0f} s",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        self._buckets[client] = (tokens - 1, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


async def write_or_drop(
    request: web.Request, response: web.StreamResponse, data: bytes, timeout: float
) -> None:
    """Write to a streaming response; a client that has not taken it within `timeout` seconds (it stopped
    reading) is disconnected at once so its socket buffers are freed, and ConnectionResetError is raised."""
    try:
        await asyncio.wait_for(response.write(data), timeout)
    except asyncio.TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading") from None


class OpenStreams:
    """The handler tasks of long-lived responses (MJPEG, events), cancelled together on shutdown so the
    server does not wait for viewers to leave."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()

    def add(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
