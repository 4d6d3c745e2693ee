"""Camera leases in Redis: several workers share one camera list, and each camera is counted by exactly
one of them.

A worker owns a camera while it holds the key `{prefix}lease:{camera}`, set with `SET NX PX` and renewed
by an atomic compare-and-`PEXPIRE` every `lease_ms / 3`. A worker that dies stops renewing, its keys
expire after `lease_ms`, and the others take its cameras over on their next round.

Load spreading: every worker refreshes a heartbeat in the sorted set `{prefix}workers` each round and
holds at most `ceil(cameras / live_workers)` leases, releasing its surplus when a worker joins (one round
after it stopped counting those cameras, so no frame of theirs is in flight anywhere else). Each
worker tries free cameras in its own rendezvous-hash order, so the workers rarely race for the same key
and a camera tends to return to the same worker after a restart.

Safety: `owns()` turns False locally at `sent + lease_ms - margin`, where `sent` is the monotonic time
just before the acquiring or renewing command left this process. Redis starts the key's time-to-live
later than that, so this process stops counting a camera before any other worker can take it. Each
acquisition also takes a fencing token from `INCR {prefix}lease:{camera}:token`, strictly increasing
per camera, so a store can refuse writes from an older owner.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from crowdstream.engines.errors import CrowdstreamError

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger(__name__)

# KEYS: lease1, token1, lease2, token2, ...; ARGV: worker id, lease ms, how many to take at most.
# Returns one fencing token per lease key, 0 where the camera is held by someone or the quota is full.
ACQUIRE = """
local taken, tokens = 0, {}
for i = 1, #KEYS, 2 do
  local token = 0
  if taken < tonumber(ARGV[3]) and redis.call('EXISTS', KEYS[i]) == 0 then
    token = redis.call('INCR', KEYS[i + 1])
    redis.call('SET', KEYS[i], ARGV[1] .. ' ' .. token, 'NX', 'PX', ARGV[2])
    taken = taken + 1
  end
  tokens[#tokens + 1] = token
end
return tokens
"""

# KEYS: lease keys; ARGV: lease ms, then the value each key must still hold. Returns 1 (renewed) or 0.
RENEW = """
local renewed = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    renewed[i] = redis.call('PEXPIRE', KEYS[i], ARGV[1])
  else
    renewed[i] = 0
  end
end
return renewed
"""

# KEYS: lease keys; ARGV: the value each key must still hold. Deletes only leases that are still ours.
RELEASE = """
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    released = released + redis.call('DEL', KEYS[i])
  end
end
return released
"""

# KEYS: the workers sorted set; ARGV: worker id, heartbeat ms. Uses the server's clock so that workers
# on different machines agree on who is alive. Returns the number of live workers, this one included.
HEARTBEAT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""


def _cancel_requested() -> bool:
    """True when somebody asked to cancel the running task (Python 3.11+ can tell; 3.10 cannot)."""
    task = asyncio.current_task()
    return task is not None and getattr(task, "cancelling", lambda: 0)() > 0


class LeaseConfigError(CrowdstreamError):
    """A lease setting that cannot work (too short a lease, an unusable worker id)."""


class CameraLeases:
    """The cameras this worker may count, kept in step with Redis by `run()`.

    The worker asks `owns(camera)` before counting a frame and tags what it publishes with
    `token(camera)`; both answer from local state, without a round trip.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        worker_id: str,
        camera_ids: list[str],
        lease_ms: int = 10000,
        prefix: str = "crowd:",
    ) -> None:
        if lease_ms < 300:
            raise LeaseConfigError(f"cluster.lease_ms must be at least 300, got {lease_ms}")
        if " " in worker_id or not worker_id:
            raise LeaseConfigError(
                f"cluster.worker_id must be a non-empty word without spaces, got {worker_id!r}"
            )
        self.redis = redis
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self.prefix = prefix
        # Each worker tries free cameras in its own stable order (rendezvous hashing).
        self.camera_ids = sorted(dict.fromkeys(camera_ids), key=self._preference)
        self.interval = lease_ms / 3000
        # Room for clock-rate drift and scheduling between `sent` and the key's real expiry.
        self.margin = max(lease_ms / 10, 50) / 1000
        self._held: dict[str, tuple[int, float]] = {}  # camera -> (token, local deadline)
        self._draining: dict[str, tuple[int, float]] = {}  # given up locally, deleted in Redis next round
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        self._release_script = redis.register_script(RELEASE)
        self._heartbeat = redis.register_script(HEARTBEAT)

    def owns(self, camera_id: str) -> bool:
        """True while this worker holds the camera's lease and it cannot have expired in Redis."""
        held = self._held.get(camera_id)
        return held is not None and time.monotonic() < held[1]

    def token(self, camera_id: str) -> int | None:
        """The fencing token of the lease this worker holds on the camera, None if it holds none.

        A camera being handed over (`owns()` already False, the key still ours until the next round)
        keeps its token, so the frame in flight when it was given up is published with a valid fence."""
        held = self._held.get(camera_id) or self._draining.get(camera_id)
        return held[0] if held is not None and time.monotonic() < held[1] else None

    def owned(self) -> list[str]:
        """The cameras this worker owns now, in its preference order."""
        return [camera for camera in self.camera_ids if self.owns(camera)]

    async def run(self) -> None:
        """Heartbeat, renew, shed surplus and acquire free cameras every `lease_ms / 3` until cancelled.

        A Redis outage is logged and retried; leases simply lapse locally meanwhile."""
        while True:
            if _cancel_requested():  # a cancel swallowed inside a client library still ends the loop
                raise asyncio.CancelledError
            started = time.monotonic()
            try:
                await self.step()
            except (RedisError, OSError, TimeoutError) as exc:
                if _cancel_requested():  # a cancel that landed inside a client timeout surfaces as one
                    raise asyncio.CancelledError from exc
                log.warning("camera leases: redis unavailable (%s); retrying", exc)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def step(self) -> None:
        """One round: heartbeat, renew what is ours, hand over last round's surplus, mark this round's
        surplus, then take free cameras up to the quota."""
        workers = int(await self._heartbeat(keys=[self._workers_key], args=[self.worker_id, self.lease_ms]))
        quota = math.ceil(len(self.camera_ids) / max(workers, 1))
        await self._renew_held()
        await self._release(self._draining)
        # owns() turns False now, but the key is deleted only next round: a frame this worker is counting
        # right now is published before another worker can start on the camera.
        self._draining = {camera: self._held.pop(camera) for camera in self.owned()[quota:]}
        wanted = quota - len(self.owned())
        if wanted > 0:
            await self._acquire_free(wanted)

    async def release_all(self) -> None:
        """Give every lease still ours back at once (graceful shutdown, after the worker has stopped
        counting), so others need not wait for the leases to expire."""
        await self._release(self._draining)
        await self._release(self._held)
        await self.redis.zrem(self._workers_key, self.worker_id)

    @property
    def _workers_key(self) -> str:
        return f"{self.prefix}workers"

    def _lease_key(self, camera_id: str) -> str:
        return f"{self.prefix}lease:{camera_id}"

    def _value(self, token: int) -> str:
        return f"{self.worker_id} {token}"

    def _preference(self, camera_id: str) -> bytes:
        return hashlib.blake2b(f"{self.worker_id}\0{camera_id}".encode(), digest_size=8).digest()

    async def _renew_held(self) -> None:
        cameras = list(self._held)
        if not cameras:
            return
        sent = time.monotonic()
        renewed = await self._renew(
            keys=[self._lease_key(c) for c in cameras],
            args=[self.lease_ms, *(self._value(self._held[c][0]) for c in cameras)],
        )
        deadline = sent + self.lease_ms / 1000 - self.margin
        for camera, ok in zip(cameras, renewed, strict=True):
            if int(ok):
                self._held[camera] = (self._held[camera][0], deadline)
            else:
                log.warning("camera leases: lost %s", camera)
                del self._held[camera]

    async def _release(self, leases: dict[str, tuple[int, float]]) -> None:
        """Delete the leases (camera -> (token, deadline)) whose keys still hold our value; empties
        `leases` first, so nothing counts as ours once the keys may be gone."""
        cameras = {camera: token for camera, (token, _deadline) in leases.items()}
        leases.clear()
        if cameras:
            log.info("camera leases: releasing %s", ", ".join(cameras))
            await self._release_script(
                keys=[self._lease_key(c) for c in cameras], args=[self._value(t) for t in cameras.values()]
            )

    async def _acquire_free(self, wanted: int) -> None:
        candidates = [c for c in self.camera_ids if c not in self._held and c not in self._draining]
        if not candidates:
            return
        keys = [key for c in candidates for key in (self._lease_key(c), f"{self._lease_key(c)}:token")]
        sent = time.monotonic()
        tokens = await self._acquire(keys=keys, args=[self.worker_id, self.lease_ms, wanted])
        deadline = sent + self.lease_ms / 1000 - self.margin
        for camera, token in zip(candidates, tokens, strict=True):
            if int(token):
                log.info("camera leases: acquired %s (token %s)", camera, int(token))
                self._held[camera] = (int(token), deadline)
