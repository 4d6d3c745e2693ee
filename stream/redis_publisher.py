"""Counts to Redis: a Stream per camera, a `latest` hash per camera and one pub/sub channel.

`publish()` only appends to a bounded in-memory backlog, so the counting loop never waits on Redis. A
writer task drains the backlog in order with pipelines; while Redis is unreachable it retries with
capped backoff and the backlog drops its oldest records (counted) once full.

Every record gets its stream ID (`<capture ms>-<n>`, increasing per camera) when it is published, so a
pipeline that failed half-way can be replayed: Redis refuses the entries it already has ("equal or
smaller than the target stream top item") and nothing is written twice or out of order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.metrics import StreamMetrics
from stream.readings import CameraReading

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "crowd:"
_DUPLICATE_ID = "equal or smaller than the target stream top item"
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def counts_key(prefix: str, camera: str) -> str:
    """The Stream of a camera's count records."""
    return f"{prefix}{camera}:counts"


def latest_key(prefix: str, camera: str) -> str:
    """The hash holding a camera's newest count record."""
    return f"{prefix}{camera}:latest"


def updates_channel(prefix: str) -> str:
    """The pub/sub channel every count record is announced on (JSON)."""
    return f"{prefix}updates"


def record_fields(reading: CameraReading, extra: Mapping[str, str | int] | None = None) -> dict[str, str]:
    """The flat string fields of a count record, as stored in the Stream and the `latest` hash."""
    zones = [{"name": z.name, "count": round(z.count, 3), "density": z.density} for z in reading.zones]
    fields = {
        "timestamp": f"{reading.timestamp:.3f}",
        "count": f"{reading.count:.3f}",
        "smoothed": f"{reading.smoothed:.3f}",
        "frame_age": f"{reading.frame_age:.4f}",
        "zones": json.dumps(zones, separators=(",", ":")),
        "densest": "" if reading.densest is None else f"{reading.densest[0]},{reading.densest[1]}",
    }
    fields.update({key: str(value) for key, value in (extra or {}).items()})
    return fields


@dataclass
class _Record:
    seq: int
    camera: str
    stream_id: str
    fields: dict[str, str]
    message: str
    attempts: int = 0


class RedisPublisher:
    """Writes count records to Redis in order, buffering up to `backlog` of them while it is down."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = 100_000,
        backlog: int = 10_000,
        metrics: StreamMetrics | None = None,
        batch_size: int = 256,
        max_backoff: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        self.prefix, self.maxlen, self.capacity = prefix, maxlen, backlog
        self.metrics = metrics
        self.batch_size, self.max_backoff = batch_size, max_backoff
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self.written = 0
        self.dropped = 0
        self.up: bool | None = None  # unknown until the first write
        self._queue: deque[_Record] = deque()
        self._seq = itertools.count(1)
        self._last_ids: dict[str, tuple[int, int]] = {}
        self._wake = asyncio.Event()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def publish(self, reading: CameraReading, extra: Mapping[str, str | int] | None = None) -> None:
        """Queue a record for Redis; never blocks. Drops (and counts) the oldest one when the backlog is full."""
        fields = record_fields(reading, extra)
        stream_id = self._next_id(reading.camera, reading.timestamp)
        message = json.dumps(
            {**reading.as_dict(), **(extra or {}), "stream_id": stream_id}, separators=(",", ":")
        )
        self._queue.append(_Record(next(self._seq), reading.camera, stream_id, fields, message))
        while len(self._queue) > self.capacity:
            self._queue.popleft()
            self._count_dropped(1)
        self._update_backlog()
        self._wake.set()

    def _next_id(self, camera: str, timestamp: float) -> str:
        milliseconds = max(0, int(timestamp * 1000))
        last = self._last_ids.get(camera)
        new = (last[0], last[1] + 1) if last and milliseconds <= last[0] else (milliseconds, 0)
        self._last_ids[camera] = new
        return f"{new[0]}-{new[1]}"

    async def run(self) -> None:
        """Drain the backlog until cancelled, retrying with capped exponential backoff while Redis is down."""
        failures = 0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(itertools.islice(self._queue, self.batch_size))
            try:
                await self._write(batch)
            except _UNREACHABLE as exc:
                failures += 1
                self._set_up(False, exc)
                await asyncio.sleep(min(self.max_backoff, 0.1 * 2 ** min(failures, 10)))
                continue
            failures = 0
            self._set_up(True)
            self._forget_written(batch[-1].seq)

    async def _write(self, batch: list[_Record]) -> None:
        pipe = self.client.pipeline(transaction=False)
        channel = updates_channel(self.prefix)
        for record in batch:
            pipe.xadd(
                counts_key(self.prefix, record.camera),
                record.fields,
                id=record.stream_id,
                maxlen=self.maxlen,
                approximate=True,
            )
            pipe.hset(
                latest_key(self.prefix, record.camera),
                mapping={**record.fields, "stream_id": record.stream_id},
            )
            pipe.publish(channel, record.message)
        for record in batch:
            record.attempts += 1
        results = await pipe.execute(raise_on_error=False)
        for record, result in zip(batch, results[0::3], strict=True):
            await self._settle(record, result)
        self.written += len(batch)
        if self.metrics:
            self.metrics.redis_written.inc(len(batch))

    async def _settle(self, record: _Record, result: object) -> None:
        """Handle a refused XADD: a replay of an entry Redis already has is fine; a first attempt refused
        because the stream's newest entry is later (a clock step back) is added with an automatic ID."""
        if isinstance(result, ResponseError) and _DUPLICATE_ID in str(result):
            if record.attempts == 1:
                await self.client.xadd(
                    counts_key(self.prefix, record.camera),
                    record.fields,
                    maxlen=self.maxlen,
                    approximate=True,
                )
        elif isinstance(result, Exception):
            log.error("redis refused a count record", extra={"camera": record.camera, "error": str(result)})

    def _forget_written(self, last_seq: int) -> None:
        while self._queue and self._queue[0].seq <= last_seq:
            self._queue.popleft()
        self._update_backlog()

    def _set_up(self, up: bool, error: BaseException | None = None) -> None:
        if up != self.up:
            if up:
                log.info("redis reachable, writing backlog", extra={"backlog": self.backlog})
            else:
                log.warning(
                    "redis unreachable, buffering count records",
                    extra={"error": str(error), "backlog_capacity": self.capacity},
                )
        self.up = up
        if self.metrics:
            self.metrics.redis_up.set(1 if up else 0)

    def _count_dropped(self, count: int) -> None:
        self.dropped += count
        if self.metrics:
            self.metrics.redis_dropped.inc(count)

    def _update_backlog(self) -> None:
        if self.metrics:
            self.metrics.redis_backlog.set(len(self._queue))

    async def flush(self, timeout: float) -> bool:
        """Wait (while `run()` works) until the backlog is empty or `timeout` passes; True when empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self._queue

    async def aclose(self) -> None:
        await self.client.aclose()
