"""The soak's fault schedule and the servers it faults: the RTSP server all cameras read from and the
Redis the counts go to, each SIGKILLed (no goodbye to the clients, like a crash) and restarted on the
same port after an outage.

`fault_schedule` is pure: the restarts spread evenly over the run, RTSP and Redis alternating, the last
one well before the end so the recovery is measured too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from crowdstream.stream.redis_server import EmbeddedRedis
from crowdstream.stream.soak.rtsp_server import RtspServer

log = logging.getLogger(__name__)

Target = Literal["rtsp", "redis"]


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after measuring started
    target: Target


def fault_schedule(seconds: float, rtsp_restarts: int, redis_restarts: int) -> list[Fault]:
    """`rtsp_restarts` + `redis_restarts` faults at equal spacing over `seconds` (none at either end),
    alternating between the two servers while both have restarts left."""
    order: list[Target] = []
    left: dict[Target, int] = {"rtsp": rtsp_restarts, "redis": redis_restarts}
    while any(left.values()):
        for target in ("rtsp", "redis"):
            if left[target]:
                order.append(target)
                left[target] -= 1
    gap = seconds / (len(order) + 1)
    return [Fault(round(gap * (index + 1), 1), target) for index, target in enumerate(order)]


@dataclass
class FaultedServers:
    """The two servers the soak runs and restarts."""

    rtsp: RtspServer
    redis: EmbeddedRedis
    outage_s: float

    async def start(self) -> None:
        await asyncio.to_thread(self.rtsp.start)
        await self.redis.start()

    async def inject(self, fault: Fault) -> None:
        """Kill the fault's server, leave it down for `outage_s`, start it again on the same port."""
        log.info(f"soak: killing the {fault.target} server", extra={"outage_s": self.outage_s})
        if fault.target == "rtsp":
            self.rtsp.kill()
            await asyncio.sleep(self.outage_s)
            await asyncio.to_thread(self.rtsp.start)
        else:
            self.redis.kill()
            await asyncio.sleep(self.outage_s)
            await self.redis.start(timeout=30)
        log.info(f"soak: the {fault.target} server is back")

    def stop(self) -> None:
        self.rtsp.stop()
        self.redis.stop()
