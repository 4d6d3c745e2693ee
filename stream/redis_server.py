"""A private `redis-server` process: the one command line the service's embedded Redis and the test
fixtures start it with, so both run the Redis the product ships against."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
from pathlib import Path


def redis_server_command(executable: str, port: int, workdir: Path | str, *, durable: bool) -> list[str]:
    """`redis-server` on 127.0.0.1:`port` with its files in `workdir`. `durable` keeps an append-only
    file synced on every write (a restarted server comes back with its data); otherwise nothing is
    written to disk."""
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
    return [
        executable,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        *persistence,
        "--dir",
        str(workdir),
    ]


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A private `redis-server` on a free loopback port for a service started without a Redis URL."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.workdir = tempfile.TemporaryDirectory(prefix="crowdstream-redis-")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 5.0) -> None:
        command = redis_server_command(self.executable, self.port, self.workdir.name, durable=False)
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and self.process.poll() is None:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"embedded redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.workdir.cleanup()
