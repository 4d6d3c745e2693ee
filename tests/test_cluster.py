"""Three `crowdstream serve` workers share one camera list through leases in a real Redis: the cameras
spread out, a worker killed with SIGKILL has its cameras counted again by the others once its lease ran
out, and no camera is ever counted by two workers at once (checked on the count records themselves,
which carry the worker id and the lease's fencing token). How many lease rounds the takeover takes is
tests/test_leases.py's; here nothing compares durations, the waits' timeouts only stop a hung test."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import redis

from crowdstream.stream.redis_publisher import counts_key
from tests.conftest import RedisServer, ServiceProcess, wait_until

PREFIX = "cluster:"
LEASE_MS = 3000
CAMERAS = [f"cam{i}" for i in range(1, 7)]


def config(redis_url: str) -> dict:
    return {
        "cameras": [{"id": c, "url": "demo", "max_fps": 2, "tiles": "1x1"} for c in CAMERAS],
        "engine": {"threads": 1},
        "redis": {"url": redis_url, "prefix": PREFIX},
        "cluster": {"enabled": True, "lease_ms": LEASE_MS},
    }


def owners(client: redis.Redis) -> dict[str, str | None]:
    """camera -> worker id holding its lease now (the lease value is '<worker> <token>')."""
    values = client.mget([f"{PREFIX}lease:{camera}" for camera in CAMERAS])
    return {
        camera: value.split(" ")[0] if value else None for camera, value in zip(CAMERAS, values, strict=True)
    }


def records(client: redis.Redis, camera: str) -> list[dict]:
    return [fields for _id, fields in client.xrange(counts_key(PREFIX, camera))]


def wait(condition, timeout: float, what: str, workers: list[ServiceProcess]) -> None:
    """wait_until, failing with the workers' recent logs."""
    wait_until(condition, timeout, what, lambda: "\n".join(worker.logs()[-1500:] for worker in workers))


def assert_never_counted_twice(client: redis.Redis) -> None:
    """Along each camera's records (in capture order) the fencing token never goes back, and one token
    belongs to one worker: two workers counting at once would interleave their tokens."""
    for camera in CAMERAS:
        history = [(int(r["fence"]), r["worker"]) for r in records(client, camera)]
        tokens = [token for token, _ in history]
        assert tokens == sorted(tokens), f"{camera}: tokens went back: {history}"
        assert all(token > 0 for token in tokens), f"{camera}: a record without a lease: {history}"
        by_token = {token: {w for t, w in history if t == token} for token in tokens}
        assert all(len(workers) == 1 for workers in by_token.values()), f"{camera}: {by_token}"


@pytest.mark.slow  # three services and a lease expiry: about 20 s on an idle 2-core machine
def test_killed_worker_cameras_resume_elsewhere_after_its_lease(
    service_process, redis_server: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    workers = {
        name: service_process(config(redis_server.url), env={"CROWDSTREAM_CLUSTER__WORKER_ID": name})
        for name in ("w1", "w2", "w3")
    }
    everyone = list(workers.values())

    def spread() -> bool:
        held = Counter(owners(client).values())
        return None not in held and sorted(held.values()) == [2, 2, 2]

    wait(spread, 30, "two cameras per worker", everyone)
    wait(lambda: all(records(client, c) for c in CAMERAS), 60, "records from every camera", everyone)

    orphaned = [camera for camera, worker in owners(client).items() if worker == "w2"]
    killed_at = time.time()
    os.killpg(workers["w2"].process.pid, signal.SIGKILL)
    workers["w2"].process.wait(timeout=5)
    survivors = [workers["w1"], workers["w3"]]

    wait(
        lambda: all(owners(client)[c] not in (None, "w2") for c in orphaned), 60, "lease takeover", survivors
    )

    def resumed(camera: str) -> bool:
        """Whether another worker has counted a frame of `camera` captured after the kill."""
        return any(r["worker"] != "w2" and float(r["timestamp"]) > killed_at for r in records(client, camera))

    wait(lambda: all(resumed(c) for c in orphaned), 60, "counting to resume", survivors)
    assert set(owners(client).values()) == {"w1", "w3"}
    # Every camera keeps being counted by the two survivors.
    counted = {c: len(records(client, c)) for c in CAMERAS}
    wait(
        lambda: all(len(records(client, c)) > counted[c] for c in CAMERAS), 20, "counting to go on", survivors
    )
    for worker in survivors:
        assert worker.process.poll() is None
        assert "Traceback" not in worker.logs()
    assert_never_counted_twice(client)
    client.close()
