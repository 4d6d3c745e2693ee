"""Camera leases against a real redis-server: spreading, takeover, exclusivity and fencing.

Leases are short here (600 ms, renewed every 200 ms) so that expiry and takeover happen within a test.
Nothing here compares durations: a busy machine delays rounds, so takeover is measured in lease rounds
(which only get fewer when the machine is slow) and handover in what Redis holds; waits have generous
timeouts that only stop a hung test.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from crowdstream.stream.leases import CameraLeases, LeaseConfigError

pytestmark = pytest.mark.timeout(60)  # a hung round must fail the test, not stall the suite

LEASE_MS = 600
CAMERAS = [f"cam-{i}" for i in range(7)]
WAIT_S = 20.0
"""How long a wait may take before the test fails: a timeout for hung code, not a measured bound."""


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
        self.rounds: dict[str, int] = {}  # worker -> lease rounds it completed
        self._sampler: asyncio.Task | None = None
        self._on_round = lambda: None

    def start(self, worker: str) -> CameraLeases:
        manager = CameraLeases(self.client, worker, self.cameras, lease_ms=LEASE_MS)
        self.managers[worker] = manager
        self.rounds[worker] = 0
        step = manager.step

        async def counted_step() -> None:
            await step()
            self.rounds[worker] += 1
            self._on_round()

        manager.step = counted_step
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

    def settled(self) -> bool:
        """Every camera has exactly one owner and no worker holds more than its share."""
        quota = math.ceil(len(self.cameras) / max(len(self.managers), 1))
        single = all(len(owners) == 1 for owners in self.owners().values())
        return single and all(len(m.owned()) <= quota for m in self.managers.values())

    async def settle(self, timeout: float = WAIT_S) -> dict[str, int]:
        """Wait until `settled()`; returns the rounds each worker had completed by then (the check runs
        right after each round, so no round slips in between); fails the test after `timeout`."""
        done = asyncio.get_running_loop().create_future()
        self._on_round = lambda: done.done() or not self.settled() or done.set_result(dict(self.rounds))
        self._on_round()
        try:
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            pytest.fail(f"cameras not all owned within {timeout} s: {self.owners()}")
        finally:
            self._on_round = lambda: None

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
    await cluster.settle()
    await asyncio.sleep(4 * LEASE_MS / 1000)  # several rounds: shares must hold steady, not oscillate
    quota = math.ceil(len(CAMERAS) / 3)
    shares = {w: m.owned() for w, m in cluster.managers.items()}
    assert all(len(owned) <= quota for owned in shares.values()), shares
    assert sorted(c for owned in shares.values() for c in owned) == sorted(CAMERAS)
    assert cluster.violations == []


async def test_a_joining_worker_gets_its_share(cluster: Cluster) -> None:
    first = cluster.start("first")
    await cluster.settle()
    assert len(first.owned()) == len(CAMERAS)
    second = cluster.start("second")
    deadline = time.monotonic() + WAIT_S
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
    await cluster.settle()
    orphaned = cluster.managers["b"].owned()
    assert orphaned
    tokens_before = {camera: cluster.managers["b"].token(camera) for camera in orphaned}
    await cluster.crash("b")
    before = dict(cluster.rounds)
    settled = await cluster.settle()
    # Counted in a survivor's rounds: the one in flight at the crash, at most lease/interval + 1 that
    # start while the crashed worker's lease runs out (rounds start at least `interval` apart; a slow
    # machine only spreads them further), then the first round after expiry takes the cameras over.
    limit = round(LEASE_MS / 1000 / cluster.managers["a"].interval) + 3
    taken = {worker: settled[worker] - before[worker] for worker in ("a", "c")}
    assert max(taken.values()) <= limit, taken
    for camera in orphaned:
        new_owner = next(m for m in cluster.managers.values() if m.owns(camera))
        assert new_owner.token(camera) > tokens_before[camera]
    assert cluster.samples > 100
    assert cluster.violations == []


async def test_fencing_tokens_only_grow_across_owners(cluster: Cluster) -> None:
    for worker in ("a", "b", "c"):
        cluster.start(worker)
    await cluster.settle()
    await cluster.crash("a")
    await cluster.settle()
    cluster.start("d")
    await asyncio.sleep(3 * LEASE_MS / 1000)
    await cluster.settle()
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
    await cluster.settle()
    await cluster.crash("leaving")  # stop its rounds first, as the service does on shutdown
    await leaving.release_all()
    assert leaving.owned() == []
    assert await client.zscore("crowd:workers", "leaving") is None
    keys = [f"crowd:lease:{camera}" for camera in CAMERAS]
    assert await client.exists(*keys) == 0  # deleted, not left to expire
    staying = CameraLeases(client, "staying", CAMERAS, lease_ms=LEASE_MS)
    await staying.step()  # so its very first round takes them all
    assert sorted(staying.owned()) == sorted(CAMERAS)


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
        deadline = time.monotonic() + WAIT_S
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
