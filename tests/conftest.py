"""Shared fixtures that start real processes on loopback and always clean them up.

`redis_server` starts a real `redis-server` (Debian package `redis-server`) on a free port in its own
process group; tests may `kill()` and `start()` it again on the same port to simulate an outage.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.redis_server import free_port, redis_server_command
from crowdstream.stream.soak import processes


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on `port`, or fail the test."""
    try:
        processes.wait_for_port(port, timeout, host)
    except CrowdstreamError as exc:
        pytest.fail(str(exc))


class RedisServer:
    """A real redis-server on a fixed port that can be killed and started again on the same port. It keeps an
    append-only file synced on every write, so like a production Redis it comes back with its data."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        command = redis_server_command(executable, self.port, self.workdir, durable=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL: the abrupt outage a crashed or restarted Redis gives its clients."""
        processes.kill_process_group(self.process)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process_group(self.process)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test; `.url`, `.port`, `.kill()`, `.start()`."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a fresh redis-server (for tests that only need to talk to one)."""
    return redis_server.url
