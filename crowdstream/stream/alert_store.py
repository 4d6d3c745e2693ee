"""Alert history: every alert the tracker reports goes to the live feed (the hub's subscribers, hence
the SSE stream) at once, and to Redis, where the newest `keep` alerts are kept.

Redis holds a hash `{prefix}alerts` (alert id → its JSON, overwritten as the alert's peak grows and
when it ends) and a sorted set `{prefix}alerts:started` (alert id by start time) that bounds it and
orders it. As with counts, the counting loop never waits on Redis: alerts wait in a small dict (the
newest state of each) until a writer task stores them, and stay there while Redis is unreachable.
Without Redis the same history is kept in memory only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crowdstream.stream.alerts import Alert, AlertTracker
from crowdstream.stream.hub import Hub
from crowdstream.stream.readings import CameraReading

log = logging.getLogger(__name__)

KEEP = 1000
RETRY_S = 2.0


def alerts_key(prefix: str) -> str:
    """The hash of alert id → alert JSON."""
    return f"{prefix}alerts"


def alerts_index_key(prefix: str) -> str:
    """The sorted set of alert ids by start time (Unix seconds)."""
    return f"{prefix}alerts:started"


class AlertStore:
    """Turns readings into alerts (a worker publisher) and keeps their history; `run()` is the Redis
    writer task, `recent()` what /api/alerts serves."""

    def __init__(
        self, hub: Hub, tracker: AlertTracker, redis_url: str | None, prefix: str, keep: int = KEEP
    ) -> None:
        self.hub, self.tracker, self.prefix, self.keep = hub, tracker, prefix, keep
        self.client = aioredis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None
        self.memory: OrderedDict[str, Alert] = OrderedDict()
        self.pending: dict[str, Alert] = {}
        self._wake = asyncio.Event()

    def publish(self, reading: CameraReading, extra: Mapping[str, str | int] | None = None) -> None:
        """The worker's publisher hook: follow the reading's zones, record what changed."""
        for alert in self.tracker.update(reading):
            self.record(alert)

    def end_camera(self, camera: str) -> None:
        """End a camera's open alerts (its zones were edited)."""
        for alert in self.tracker.end_all(camera):
            self.record(alert)

    def record(self, alert: Alert) -> None:
        self.memory[alert.id] = alert
        while len(self.memory) > self.keep:
            self.memory.popitem(last=False)
        self.hub.publish_alert(alert)
        if self.client is not None:
            self.pending[alert.id] = alert
            self._wake.set()

    async def run(self) -> None:
        """Store pending alerts whenever there are some; retry while Redis is unreachable."""
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write()
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("redis unreachable: alerts kept in memory", extra={"error": str(exc)})
                failing = True
                self._wake.set()
                await asyncio.sleep(RETRY_S)
                continue
            failing = False

    async def _write(self) -> None:
        batch = dict(self.pending)
        if not batch:
            return
        index = alerts_index_key(self.prefix)
        async with self.client.pipeline(transaction=True) as pipe:
            for alert_id, alert in batch.items():
                pipe.hset(alerts_key(self.prefix), alert_id, json.dumps(alert.as_dict()))
                pipe.zadd(index, {alert_id: alert.started})
            await pipe.execute()
        for alert_id, alert in batch.items():
            if self.pending.get(alert_id) is alert:
                del self.pending[alert_id]
        dropped = await self.client.zrange(index, 0, -(self.keep + 1))
        if dropped:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hdel(alerts_key(self.prefix), *dropped)
                pipe.zrem(index, *dropped)
                await pipe.execute()

    async def recent(self, camera: str | None = None, limit: int = 100) -> list[dict]:
        """The newest alerts first (of one camera, or all): Redis's history (which includes other
        workers' alerts and earlier runs'), with this worker's newer states over it."""
        alerts = {alert.id: alert for alert in await self._stored()}
        alerts.update(self.memory)
        chosen = [a for a in alerts.values() if camera in (None, a.camera)]
        chosen.sort(key=lambda alert: alert.started, reverse=True)
        return [alert.as_dict() for alert in chosen[:limit]]

    async def _stored(self) -> list[Alert]:
        if self.client is None:
            return []
        try:
            ids = await self.client.zrevrange(alerts_index_key(self.prefix), 0, self.keep - 1)
            texts = await self.client.hmget(alerts_key(self.prefix), ids) if ids else []
        except (RedisError, OSError) as exc:
            log.warning("redis unreachable: alerts from memory only", extra={"error": str(exc)})
            return []
        return [Alert.from_dict(json.loads(text)) for text in texts if text]

    async def close(self, timeout: float) -> None:
        """End every open alert (the service stops) and store what is pending, within `timeout` s."""
        for alert in self.tracker.end_all():
            self.record(alert)
        if self.client is None:
            return
        try:
            await asyncio.wait_for(self._write(), timeout)
        except (RedisError, OSError, asyncio.TimeoutError):
            log.error("redis unreachable at shutdown: alerts not stored", extra={"alerts": len(self.pending)})
        await self.client.aclose()
