"""Counts to Redis: a Stream per camera, a `latest` hash per camera and one pub/sub channel.

`publish()` only appends to a bounded in-memory backlog, so the counting loop never waits on Redis. A
writer task drains the backlog in order with pipelines; while Redis is unreachable it retries with
capped backoff and the backlog drops its oldest records (counted) once full.

Every record carries `run` (this publisher's random id) and `seq` (1, 2, 3, ... per camera), so a reader
can tell a lost record (a gap), a duplicate and a reordering apart. Each record is written by one Lua
script that appends it only if its `seq` is above the last one its run wrote for that camera (kept in
`{prefix}{camera}:seqs`), and that writes the Stream entry, the `latest` hash and the announcement
together or not at all. So a retry after a write whose reply was lost (Redis killed between executing
and answering) is refused by Redis itself and nothing is written twice. The Stream ID is planned from
the capture time (`<ms>-<n>`, increasing per camera); when the Stream already holds a later ID (a clock
stepped back, a restarted worker behind) Redis picks one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.readings import CameraReading

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "crowd:"
_APPEND = """
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then return 0 end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[3], unpack(fields))
if type(id) == 'table' and id.err then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'stream_id', id, unpack(fields))
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
"""
"""Append one record unless its run already wrote this camera's `seq` (KEYS: stream, latest, seqs; ARGV:
run, seq, planned stream ID, maxlen, announcement, channel, then the fields)."""
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def counts_key(prefix: str, camera: str) -> str:
    """The Stream of a camera's count records."""
    return f"{prefix}{camera}:counts"


def latest_key(prefix: str, camera: str) -> str:
    """The hash holding a camera's newest count record."""
    return f"{prefix}{camera}:latest"


def sequences_key(prefix: str, camera: str) -> str:
    """The hash of the last `seq` each publisher run wrote for a camera (what makes retries idempotent)."""
    return f"{prefix}{camera}:seqs"


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
    order: int  # position in this publisher's backlog, over all cameras
    camera: str
    seq: int
    stream_id: str
    fields: dict[str, str]
    message: str


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
        self.run_id = uuid.uuid4().hex[:12]
        self.written = 0
        self.dropped = 0
        self.replays_refused = 0  # records Redis already had (a retry after a lost reply)
        self.outages = 0  # times Redis became unreachable after a write had succeeded
        self.up: bool | None = None  # unknown until the first write
        self.last_seq: dict[str, int] = {}  # per camera, the newest `seq` published
        self._queue: deque[_Record] = deque()
        self._order = itertools.count(1)
        self._last_ids: dict[str, tuple[int, int]] = {}
        self._append = self.client.register_script(_APPEND)
        self._wake = asyncio.Event()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def publish(self, reading: CameraReading, extra: Mapping[str, str | int] | None = None) -> None:
        """Queue a record for Redis; never blocks. Drops (and counts) the oldest one when the backlog is full."""
        camera = reading.camera
        seq = self.last_seq[camera] = self.last_seq.get(camera, 0) + 1
        stamp = {"run": self.run_id, "seq": seq}
        fields = record_fields(reading, {**(extra or {}), **stamp})
        stream_id = self._next_id(camera, reading.timestamp)
        message = json.dumps(
            {**reading.as_dict(), **(extra or {}), **stamp, "stream_id": stream_id}, separators=(",", ":")
        )
        self._queue.append(_Record(next(self._order), camera, seq, stream_id, fields, message))
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
            self._forget_written(batch[-1].order)

    async def _write(self, batch: list[_Record]) -> None:
        channel = updates_channel(self.prefix)
        # as a context manager, a pipeline whose connection died is released too (else asyncio reports
        # an unclosed client for every outage)
        async with self.client.pipeline(transaction=False) as pipe:
            for record in batch:
                keys = [
                    counts_key(self.prefix, record.camera),
                    latest_key(self.prefix, record.camera),
                    sequences_key(self.prefix, record.camera),
                ]
                head = [self.run_id, record.seq, record.stream_id, self.maxlen, record.message, channel]
                fields = [part for pair in record.fields.items() for part in pair]
                await self._append(keys=keys, args=head + fields, client=pipe)
            results = await pipe.execute(raise_on_error=False)
        for record, result in zip(batch, results, strict=True):
            if isinstance(result, _UNREACHABLE):  # e.g. LOADING from a Redis that just restarted
                raise result  # the whole batch again: what was appended is refused by its seq
            if isinstance(result, Exception):
                log.error(
                    "redis refused a count record", extra={"camera": record.camera, "error": str(result)}
                )
        appended = results.count(1)
        self.written += appended
        self.replays_refused += results.count(0)
        if self.metrics:
            self.metrics.redis_written.inc(appended)

    def _forget_written(self, last_order: int) -> None:
        while self._queue and self._queue[0].order <= last_order:
            self._queue.popleft()
        self._update_backlog()

    def _set_up(self, up: bool, error: BaseException | None = None) -> None:
        if up != self.up:
            self.outages += self.up is True and not up
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
