"""Camera leases against a real redis-server: spreading, takeover, exclusivity and fencing.

Leases are short here (600 ms, renewed every 200 ms) so that expiry and takeover happen within a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from stream.leases import CameraLeases, LeaseConfigError

pytestmark = pytest.mark.timeout(60)  # a hung round must fail the test, not stall the suite

LEASE_MS = 600
CAMERAS = [f"cam-{i}" for i in range(7)]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


class Cluster:
    """Several lease managers in one event loop, and a sampler that checks exclusivity every millisecond."""

    def __init__(self, client: redis.asyncio.Redis, cameras: list[str]) -> None:
        self.client = client
        self.cameras = cameras
        self.managers: dict[str, CameraLeases] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.violations: list[str] = []
        self.tokens: dict[str, list[tuple[int, str]]] = {camera: [] for camera in cameras}
        self.samples = 0
        self._sampler: asyncio.Task | None = None

    def start(self, worker: str) -> CameraLeases:
        manager = CameraLeases(self.client, worker, self.cameras, lease_ms=LEASE_MS)
        self.managers[worker] = manager
        self.tasks[worker] = asyncio.create_task(manager.run())
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample())
        return manager

    async def crash(self, worker: str) -> None:
        """Stop a manager the way SIGKILL would: no release, its leases must expire on their own."""
        task = self.tasks.pop(worker)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.managers.pop(worker)

    def owners(self) -> dict[str, list[str]]:
        return {c: [w for w, m in self.managers.items() if m.owns(c)] for c in self.cameras}

    async def settle(self, timeout: float) -> float:
        """Seconds until every camera has exactly one owner and no worker holds more than its share;
        fails the test after `timeout`."""
        started = time.monotonic()
        quota = math.ceil(len(self.cameras) / max(len(self.managers), 1))
        while time.monotonic() - started < timeout:
            single = all(len(owners) == 1 for owners in self.owners().values())
            if single and all(len(m.owned()) <= quota for m in self.managers.values()):
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        pytest.fail(f"cameras not all owned within {timeout} s: {self.owners()}")

    async def _sample(self) -> None:
        while True:
            self.samples += 1
            for camera, owners in self.owners().items():
                if len(owners) > 1:
                    self.violations.append(f"{camera} owned by {owners}")
                for worker in owners:
                    token = self.managers[worker].token(camera)
                    seen = self.tokens[camera]
                    if not seen or seen[-1] != (token, worker):
                        seen.append((token, worker))
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        for worker in list(self.tasks):
            await self.crash(worker)
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler


@pytest.fixture
async def cluster(client: redis.asyncio.Redis) -> AsyncIterator[Cluster]:
    group = Cluster(client, CAMERAS)
    yield group
    await group.close()


async def test_one_worker_takes_every_camera_with_fencing_tokens(client: redis.asyncio.Redis) -> None:
    leases = CameraLeases(client, "solo", CAMERAS, lease_ms=LEASE_MS)
    await leases.step()
    assert sorted(leases.owned()) == sorted(CAMERAS)
    tokens = {camera: leases.token(camera) for camera in CAMERAS}
    for camera, token in tokens.items():
        assert await client.get(f"crowd:lease:{camera}") == f"solo {token}"
        assert 0 < await client.pttl(f"crowd:lease:{camera}") <= LEASE_MS
    assert leases.owns("not-a-camera") is False and leases.token("not-a-camera") is None


async def test_workers_split_cameras_evenly_and_disjointly(cluster: Cluster) -> None:
    for worker in ("a", "b", "c"):
        cluster.start(worker)
    await cluster.settle(timeout=3)
    await asyncio.sleep(4 * LEASE_MS / 1000)  # several rounds: shares must hold steady, not oscillate
    quota = math.ceil(len(CAMERAS) / 3)
    shares = {w: m.owned() for w, m in cluster.managers.items()}
    assert all(len(owned) <= quota for owned in shares.values()), shares
    assert sorted(c for owned in shares.values() for c in owned) == sorted(CAMERAS)
    assert cluster.violations == []


async def test_a_joining_worker_gets_its_share(cluster: Cluster) -> None:
    first = cluster.start("first")
    await cluster.settle(timeout=3)
    assert len(first.owned()) == len(CAMERAS)
    second = cluster.start("second")
    deadline = time.monotonic() + 5 * LEASE_MS / 1000
    while time.monotonic() < deadline and len(second.owned()) < len(CAMERAS) // 2:
        await asyncio.sleep(0.02)
    assert len(second.owned()) >= len(CAMERAS) // 2
    assert len(first.owned()) <= math.ceil(len(CAMERAS) / 2)
    assert cluster.violations == []


async def test_surplus_is_handed_over_a_round_after_it_stops_being_counted(
    client: redis.asyncio.Redis,
) -> None:
    first = CameraLeases(client, "first", CAMERAS, lease_ms=LEASE_MS)
    second = CameraLeases(client, "second", CAMERAS, lease_ms=LEASE_MS)
    await first.step()
    await second.step()  # joins: two live workers now, but every camera is still taken
    assert len(first.owned()) == len(CAMERAS) and second.owned() == []
    await first.step()  # quota 4: gives up 3 locally, keeps their keys one more round
    given_up = [c for c in CAMERAS if not first.owns(c)]
    assert len(given_up) == len(CAMERAS) - math.ceil(len(CAMERAS) / 2)
    for camera in given_up:  # still ours in Redis, so a frame in flight keeps its fence
        assert await client.get(f"crowd:lease:{camera}") == f"first {first.token(camera)}"
    await second.step()
    assert second.owned() == []
    await first.step()  # deletes them
    assert all(first.token(camera) is None for camera in given_up)
    await second.step()
    assert sorted(second.owned()) == sorted(given_up)
    assert not set(first.owned()) & set(second.owned())


async def test_crashed_worker_cameras_are_taken_over_within_the_lease(cluster: Cluster) -> None:
    for worker in ("a", "b", "c"):
        cluster.start(worker)
    await cluster.settle(timeout=3)
    orphaned = cluster.managers["b"].owned()
    assert orphaned
    tokens_before = {camera: cluster.managers["b"].token(camera) for camera in orphaned}
    await cluster.crash("b")
    took = await cluster.settle(timeout=3)
    # The lease must run out first; then the next round (every lease/3) of a survivor picks it up.
    assert took <= (LEASE_MS + LEASE_MS / 3) / 1000 + 0.25
    for camera in orphaned:
        new_owner = next(m for m in cluster.managers.values() if m.owns(camera))
        assert new_owner.token(camera) > tokens_before[camera]
    assert cluster.samples > 100
    assert cluster.violations == []


async def test_fencing_tokens_only_grow_across_owners(cluster: Cluster) -> None:
    for worker in ("a", "b", "c"):
        cluster.start(worker)
    await cluster.settle(timeout=3)
    await cluster.crash("a")
    await cluster.settle(timeout=3)
    cluster.start("d")
    await asyncio.sleep(3 * LEASE_MS / 1000)
    await cluster.settle(timeout=3)
    for camera, history in cluster.tokens.items():
        tokens = [token for token, _ in history]
        assert tokens == sorted(set(tokens)), f"{camera}: {history}"
        # One token never belongs to two workers.
        assert len({token for token, _ in history}) == len(history), f"{camera}: {history}"
    assert cluster.violations == []


async def test_release_all_hands_cameras_over_without_waiting_for_expiry(
    cluster: Cluster, client: redis.asyncio.Redis
) -> None:
    leaving = cluster.start("leaving")
    await cluster.settle(timeout=3)
    await cluster.crash("leaving")  # stop its rounds first, as the service does on shutdown
    await leaving.release_all()
    assert leaving.owned() == []
    assert await client.zscore("crowd:workers", "leaving") is None
    started = time.monotonic()
    cluster.start("staying")
    await cluster.settle(timeout=3)
    assert time.monotonic() - started < LEASE_MS / 1000  # the keys were deleted, not left to expire


async def test_local_ownership_ends_before_the_key_expires_in_redis(client: redis.asyncio.Redis) -> None:
    leases = CameraLeases(client, "paused", ["door"], lease_ms=LEASE_MS)
    await leases.step()
    while leases.owns("door"):  # nothing renews: the worker is "paused"
        await asyncio.sleep(0.001)
    assert await client.pttl("crowd:lease:door") > 0, "owns() was still True after the lease expired"


async def test_a_stolen_lease_is_dropped_at_the_next_renewal(client: redis.asyncio.Redis) -> None:
    leases = CameraLeases(client, "victim", ["gate"], lease_ms=LEASE_MS)
    await leases.step()
    assert leases.owns("gate")
    await client.set("crowd:lease:gate", "intruder 999", px=LEASE_MS)
    await leases.step()
    assert not leases.owns("gate") and leases.token("gate") is None
    assert await client.get("crowd:lease:gate") == "intruder 999"


async def test_release_all_leaves_other_workers_leases_alone(client: redis.asyncio.Redis) -> None:
    leases = CameraLeases(client, "old", ["gate"], lease_ms=LEASE_MS)
    await leases.step()
    await client.set("crowd:lease:gate", "new 42", px=LEASE_MS)  # expired and retaken behind its back
    await leases.release_all()
    assert await client.get("crowd:lease:gate") == "new 42"


async def test_redis_outage_lapses_ownership_without_crashing(redis_server) -> None:
    connection = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=0.2)
    leases = CameraLeases(connection, "w", ["gate"], lease_ms=LEASE_MS)
    task = asyncio.create_task(leases.run())
    try:
        while not leases.owns("gate"):
            await asyncio.sleep(0.01)
        redis_server.kill()
        await asyncio.sleep(LEASE_MS / 1000)
        assert not leases.owns("gate")
        assert not task.done(), "run() must survive a Redis outage"
        redis_server.start()
        deadline = time.monotonic() + 3
        while not leases.owns("gate") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert leases.owns("gate"), "ownership did not come back after Redis restarted"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connection.aclose()


@pytest.mark.parametrize(("worker", "lease_ms"), [("", 10000), ("two words", 10000), ("w", 100)])
def test_unusable_settings_are_refused(worker: str, lease_ms: int) -> None:
    client = redis.asyncio.Redis()  # never connects: construction alone must refuse
    with pytest.raises(LeaseConfigError, match="cluster"):
        CameraLeases(client, worker, ["gate"], lease_ms=lease_ms)
