"""RedisPublisher against a real redis-server: record layout, order, outages, backlog limits, replays."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import redis.asyncio as aioredis

from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.redis_publisher import RedisPublisher, counts_key, latest_key, updates_channel
from crowdstream.stream.zones import ZoneReading

PREFIX = "test:"


def reading(camera: str, timestamp: float, count: float) -> CameraReading:
    zones = (ZoneReading("door", count / 2, count / 20, threshold=1.0),)
    return CameraReading(
        camera, timestamp, count, count, zones, frame_age=0.1, densest=(5, 7), frame_size=(64, 48)
    )


@contextlib.asynccontextmanager
async def running(publisher: RedisPublisher):
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await publisher.aclose()


async def read_counts(url: str, camera: str) -> list[tuple[str, dict[str, str]]]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return await client.xrange(counts_key(PREFIX, camera))
    finally:
        await client.aclose()


async def test_records_reach_stream_hash_and_channel(redis_url: str) -> None:
    listener = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(updates_channel(PREFIX))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    start = time.time()
    async with running(RedisPublisher(redis_url, prefix=PREFIX)) as publisher:
        for index in range(5):
            publisher.publish(
                reading("gate", start + index * 0.5, 10.0 + index), {"worker": "w1", "fence": 3}
            )
        assert await publisher.flush(timeout=5)
    entries = await read_counts(redis_url, "gate")
    assert [float(fields["count"]) for _, fields in entries] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert entries[0][0] == f"{int(start * 1000)}-0"
    first = entries[0][1]
    assert json.loads(first["zones"]) == [{"name": "door", "count": 5.0, "density": 0.5}]
    assert (first["densest"], first["worker"], first["fence"]) == ("5,7", "w1", "3")
    assert [fields["seq"] for _, fields in entries] == ["1", "2", "3", "4", "5"]
    assert {fields["run"] for _, fields in entries} == {publisher.run_id}
    latest = await listener.hgetall(latest_key(PREFIX, "gate"))
    assert float(latest["count"]) == 14.0 and latest["stream_id"] == entries[-1][0]
    messages = []
    while len(messages) < 5 and (message := await pubsub.get_message(timeout=2)):
        messages.append(json.loads(message["data"]))
    assert [m["count"] for m in messages] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    await pubsub.aclose()
    await listener.aclose()


async def test_outage_loses_nothing_within_backlog_and_keeps_order(redis_server) -> None:
    metrics = StreamMetrics()
    published: dict[str, list[float]] = {"a": [], "b": []}
    backlog_seen = []
    async with running(
        RedisPublisher(redis_server.url, prefix=PREFIX, metrics=metrics, max_backoff=0.3)
    ) as pub:
        for step in range(240):
            camera = "ab"[step % 2]
            timestamp = time.time()
            pub.publish(reading(camera, timestamp, float(step)))
            published[camera].append(float(step))
            if step == 60:
                redis_server.kill()
            if step == 160:
                redis_server.start()
            backlog_seen.append(metrics.registry.get_sample_value("crowd_redis_backlog"))
            await asyncio.sleep(0.01)
        assert await pub.flush(timeout=15)
        assert pub.dropped == 0
    assert max(backlog_seen) >= 50  # the records of the outage waited in memory
    assert metrics.registry.get_sample_value("crowd_redis_backlog") == 0
    assert metrics.registry.get_sample_value("crowd_redis_up") == 1
    for camera, counts in published.items():
        entries = await read_counts(redis_server.url, camera)
        assert [float(fields["count"]) for _, fields in entries] == counts
        ids = [tuple(map(int, entry_id.split("-"))) for entry_id, _ in entries]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_full_backlog_drops_oldest_and_counts_them(redis_server) -> None:
    redis_server.kill()
    metrics = StreamMetrics()
    async with running(
        RedisPublisher(redis_server.url, prefix=PREFIX, backlog=10, metrics=metrics, max_backoff=0.2)
    ) as pub:
        start = time.time()
        for step in range(25):
            pub.publish(reading("gate", start + step, float(step)))
        await asyncio.sleep(0.3)
        assert (pub.backlog, pub.dropped) == (10, 15)
        assert metrics.registry.get_sample_value("crowd_redis_records_dropped_total") == 15
        redis_server.start()
        assert await pub.flush(timeout=10)
    entries = await read_counts(redis_server.url, "gate")
    assert [float(fields["count"]) for _, fields in entries] == [float(step) for step in range(15, 25)]


async def test_replayed_batch_is_not_written_twice(redis_url: str) -> None:
    async with running(RedisPublisher(redis_url, prefix=PREFIX)) as publisher:
        start = time.time()
        for step in range(3):
            publisher.publish(reading("gate", start + step, float(step)))
        batch = list(publisher._queue)
        assert await publisher.flush(timeout=5)
        await publisher._write(batch)  # as after a connection lost between sending and the reply
        assert (publisher.written, publisher.replays_refused) == (3, 3)
    entries = await read_counts(redis_url, "gate")
    assert [float(fields["count"]) for _, fields in entries] == [0.0, 1.0, 2.0]


async def test_clock_stepping_back_still_appends_once(redis_url: str) -> None:
    """A restarted worker whose clock is behind the stream's newest entry still gets its records in, and
    the sequence check, not the stream ID, refuses a replay of one (its planned ID was taken, so Redis
    gave it another)."""
    now = time.time()
    async with running(RedisPublisher(redis_url, prefix=PREFIX)) as ahead:
        ahead.publish(reading("gate", now + 3600, 1.0))
        assert await ahead.flush(timeout=5)
    async with running(RedisPublisher(redis_url, prefix=PREFIX)) as behind:
        behind.publish(reading("gate", now, 2.0))
        batch = list(behind._queue)
        assert await behind.flush(timeout=5)
        await behind._write(batch)
    entries = await read_counts(redis_url, "gate")
    assert [(float(f["count"]), f["seq"]) for _, f in entries] == [(1.0, "1"), (2.0, "1")]
    assert entries[0][1]["run"] != entries[1][1]["run"]
