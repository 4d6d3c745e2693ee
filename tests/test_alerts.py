"""Alerts from hand-made readings (the tracker is pure), and their history in a real Redis."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from crowdstream.stream.alert_store import AlertStore, alerts_index_key, alerts_key
from crowdstream.stream.alerts import Alert, AlertTracker, fruin_level
from crowdstream.stream.hub import Hub
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.zones import ZoneReading
from tests.conftest import eventually

PREFIX = "test:"


def reading(at: float, *zones: ZoneReading, camera: str = "gate") -> CameraReading:
    return CameraReading(camera, at, sum(z.count for z in zones), 0.0, zones)


def square(people: float, area_m2: float = 40.0, limit: float = 1.5) -> ZoneReading:
    """A 40 m² zone with a 1.5 people per m² limit holding `people`."""
    return ZoneReading("square", people, people / area_m2, limit)


def entrance(people: float, limit: float = 20.0) -> ZoneReading:
    """A zone without an area: its limit is a number of people."""
    return ZoneReading("entrance", people, None, limit)


@pytest.mark.parametrize(
    ("density", "level"),
    [(0.0, "A"), (0.31, "A"), (0.32, "B"), (0.5, "C"), (0.72, "C"), (1.0, "D"), (1.08, "D")]
    + [(1.09, "E"), (2.17, "E"), (2.18, "F"), (6.0, "F")],
)
def test_fruin_walkway_levels_match_the_alert_rules_bands(density: float, level: str) -> None:
    # deploy/README.md: A-C below 0.72, D 0.72-1.08, E 1.08-2.17, F above 2.17 people per m²
    assert fruin_level(density) == level


def test_an_alert_starts_on_the_crossing_follows_the_peak_and_ends_after_the_hold() -> None:
    tracker = AlertTracker(end_after_s=10)
    assert tracker.update(reading(0, square(40))) == []  # 1.0 /m²: under the limit
    started = tracker.update(reading(1, square(64)))  # 1.6 /m²
    assert [(a.started, a.peak_people, a.peak_density, a.ended) for a in started] == [(1, 64, 1.6, None)]
    assert started[0].fruin_level == "E" and started[0].unit == "people/m²"
    assert tracker.update(reading(2, square(62))) == []  # still over, no new peak: nothing to say
    peaked = tracker.update(reading(3, square(90)))  # 2.25 /m²
    assert [(a.peak_people, a.peak_density, a.fruin_level) for a in peaked] == [(90, 2.25, "F")]
    assert tracker.update(reading(4, square(30))) == []  # under, but not for 10 s yet
    assert tracker.update(reading(12.5, square(30))) == []
    ended = tracker.update(reading(13, square(30)))  # 10 s after the last reading over the limit
    assert [(a.started, a.ended, a.peak_people) for a in ended] == [(1, 3, 90)]
    assert ended[0].as_dict()["duration_s"] == 2 and not ended[0].as_dict()["ongoing"]
    assert tracker.open == {}


def test_a_crowd_hovering_at_the_limit_is_one_alert() -> None:
    tracker = AlertTracker(end_after_s=5)
    changes = [tracker.update(reading(t, square(61 if t % 2 else 59))) for t in range(20)]
    started = [alert for batch in changes for alert in batch]
    assert {alert.started for alert in started} == {1}  # 61 people (1.525 /m²) first at t=1, never ended
    assert all(alert.ended is None for alert in started)


def test_a_people_limit_without_an_area_and_zones_without_limits() -> None:
    tracker = AlertTracker(end_after_s=0)
    free = ZoneReading("free", 500.0, None, None)
    (alert,) = tracker.update(reading(5, entrance(25), free))
    assert (alert.zone, alert.unit, alert.peak_density, alert.fruin_level) == (
        "entrance",
        "people",
        None,
        None,
    )
    (ended,) = tracker.update(reading(6, entrance(20), free))  # at the limit is not over it
    assert ended.ended == 5


def test_end_all_closes_one_cameras_alerts_at_their_last_reading_over() -> None:
    tracker = AlertTracker()
    tracker.update(reading(1, square(70)))
    tracker.update(reading(2, square(70), camera="hall"))
    (ended,) = tracker.end_all("gate")
    assert (ended.camera, ended.ended) == ("gate", 1)
    assert list(tracker.open) == [("hall", "square")]


def test_an_alert_survives_its_json() -> None:
    alert = Alert("gate", "square", 10.0, 25.5, 1.5, 90.0, 2.25)
    assert Alert.from_dict(json.loads(json.dumps(alert.as_dict()))) == alert
    ended = Alert("gate", "entrance", 10.0, 12.0, 20.0, 25.0, None, ended=12.0)
    assert Alert.from_dict(ended.as_dict()) == ended


def alert(index: int, ended: float | None = None) -> Alert:
    return Alert("gate", f"zone{index}", 100.0 + index, 100.0 + index, 1.5, 60.0 + index, 1.6, ended)


async def test_the_history_is_kept_in_redis_bounded_newest_first(redis_server) -> None:
    hub = Hub()
    events = hub.subscribe()
    store = AlertStore(hub, AlertTracker(), redis_server.url, PREFIX, keep=3)
    writer = asyncio.create_task(store.run())
    for index in range(5):
        store.record(alert(index))
    store.record(alert(4, ended=104.0))  # the newest one ended: its stored state is replaced
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        for _ in range(100):
            if not store.pending and await client.zcard(alerts_index_key(PREFIX)) == 3:
                break
            await asyncio.sleep(0.05)
        stored = await client.hgetall(alerts_key(PREFIX))
        assert sorted(json.loads(text)["zone"] for text in stored.values()) == ["zone2", "zone3", "zone4"]
        assert json.loads(stored[alert(4).id])["ended"] == 104.0
        # a second service (another worker, or the next run) reads the same history from Redis
        other = AlertStore(Hub(), AlertTracker(), redis_server.url, PREFIX, keep=3)
        recent = await other.recent()
        assert [a["zone"] for a in recent] == ["zone4", "zone3", "zone2"]
        assert recent[0]["ongoing"] is False and recent[1]["ongoing"] is True
        assert await other.recent(limit=1) == recent[:1]
        await other.close(timeout=1)
    finally:
        writer.cancel()
        await client.aclose()
        await store.close(timeout=1)
    assert [events.get_nowait().zone for _ in range(6)] == [
        "zone0",
        "zone1",
        "zone2",
        "zone3",
        "zone4",
        "zone4",
    ]


async def test_alerts_wait_in_memory_while_redis_is_down(redis_server, caplog) -> None:
    """The writer must have tried and failed (it says so) before the alert is checked to be still
    pending: a store that dropped what it could not write would fail here, and one that never retried
    would fail to store it once Redis is back."""
    caplog.set_level(logging.WARNING, logger="crowdstream.stream.alert_store")
    store = AlertStore(Hub(), AlertTracker(), redis_server.url, PREFIX)
    redis_server.kill()
    writer = asyncio.create_task(store.run())
    store.record(alert(1))
    client = aioredis.Redis.from_url(redis_server.url)

    async def messages() -> list[str]:
        return caplog.messages

    async def stored() -> tuple[bool, list[str]]:
        return bool(await client.hexists(alerts_key(PREFIX), alert(1).id)), list(store.pending)

    try:
        await eventually(messages, lambda logged: "redis unreachable: alerts kept in memory" in logged, 20)
        assert list(store.pending) == [alert(1).id]
        assert [a["zone"] for a in await store.recent()] == ["zone1"]  # served from memory meanwhile
        redis_server.start()
        assert await eventually(stored, lambda state: state == (True, []), 20) == (True, [])
    finally:
        writer.cancel()
        await client.aclose()
        await store.close(timeout=1)
