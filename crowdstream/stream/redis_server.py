"""A private `redis-server` process: the one command line the service's embedded Redis and the test
fixtures start it with, so both run the Redis the product ships against.

The embedded Redis listens on a fixed, documented port (`EMBEDDED_PORT`) so that `redis-cli -p 6380`
finds it; when that port is taken it falls back to a free one and says so. `redis_cli_command` spells
out the command that reads a camera's newest records from whichever Redis the service uses.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.sources.source import redact

log = logging.getLogger(__name__)

EMBEDDED_PORT = 6380
"""The embedded Redis's default port: next to Redis's own 6379, so a system Redis is left alone."""


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


def port_is_free(port: int) -> bool:
    """Whether a loopback TCP port can be bound right now (a listener holds it; a closed connection
    lingering in TIME_WAIT does not, as for redis-server itself)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_cli_command(url: str, *command: str) -> str:
    """The `redis-cli` command line that runs `command` on the Redis at `url` (its password left out:
    redis-cli asks for it with -a, or reads REDISCLI_AUTH)."""
    parts = urlsplit(url)
    words = ["redis-cli"]
    if parts.scheme == "unix":
        words += ["-s", unquote(parts.path)]
    else:
        if parts.hostname not in (None, "localhost", "127.0.0.1"):
            words += ["-h", parts.hostname]
        if parts.port not in (None, 6379):
            words += ["-p", str(parts.port)]
        if parts.scheme == "rediss":
            words.append("--tls")
        database = parts.path.strip("/")
        if database not in ("", "0"):
            words += ["-n", database]
    if parts.username:
        words += ["--user", unquote(parts.username)]
    return shlex.join([*words, *command])


@dataclass(frozen=True)
class RedisInfo:
    """Which Redis the service writes to, as the page and the first log lines show it."""

    url: str  # without its password
    embedded: bool
    data_dir: str | None  # where an embedded Redis keeps its data; None: nothing is kept after exit
    try_command: str  # redis-cli reading the newest records of the first camera

    def as_dict(self) -> dict:
        return {
            "url": self.url,
            "embedded": self.embedded,
            "data_dir": self.data_dir,
            "kept": not self.embedded or self.data_dir is not None,
            "try": self.try_command,
        }


class EmbeddedRedis:
    """A private `redis-server` on `port` (`EMBEDDED_PORT` by default; a free port when that one is
    taken, see `fell_back`; 0 always picks a free one). With `data_dir` it keeps an append-only file
    there and comes back with its data on the next start; without, nothing is written to disk."""

    def __init__(self, executable: str, port: int = EMBEDDED_PORT, data_dir: Path | None = None) -> None:
        self.executable = executable
        self.wanted_port = port
        self.port = port if port and port_is_free(port) else free_port()
        self.data_dir = data_dir
        self._scratch = None if data_dir else tempfile.TemporaryDirectory(prefix="crowdstream-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def fell_back(self) -> bool:
        """Whether the wanted port was taken and another one is used."""
        return self.wanted_port != 0 and self.port != self.wanted_port

    async def start(self, timeout: float = 5.0) -> None:
        if self.data_dir is not None:
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CrowdstreamError(
                    f"redis.data_dir: cannot create {self.data_dir} ({exc.strerror})"
                ) from None
        workdir = self.data_dir or self._scratch.name
        command = redis_server_command(self.executable, self.port, workdir, durable=self.data_dir is not None)
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
        self.stop()
        raise CrowdstreamError(
            f"the embedded redis-server did not start on port {self.port} (set redis.url, or "
            "redis.embedded_port to a free port)"
        )

    def kill(self) -> None:
        """SIGKILL the server (the soak's Redis outage); `start()` brings it back on the same port, with
        its data when it has a `data_dir`."""
        from crowdstream.stream.soak.processes import kill_process_group

        kill_process_group(self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._scratch is not None:
            self._scratch.cleanup()


def announce_redis(url: str, embedded: EmbeddedRedis | None, command: tuple[str, ...]) -> RedisInfo:
    """Log which Redis the service writes to, whether its data outlives the service, and the exact
    redis-cli command that reads the newest records (among serve's first lines); returns the same
    facts for the page."""
    info = RedisInfo(
        url=redact(url),
        embedded=embedded is not None,
        data_dir=str(embedded.data_dir) if embedded is not None and embedded.data_dir else None,
        try_command=redis_cli_command(url, *command),
    )
    if embedded is not None and embedded.fell_back:
        log.warning(
            f"port {embedded.wanted_port} is taken: the embedded redis-server uses port {embedded.port} "
            "instead (set redis.embedded_port to choose another)",
            extra={"wanted": embedded.wanted_port, "port": embedded.port},
        )
    if embedded is None:
        kept = "redis: writing counts to the configured Redis"
    elif info.data_dir is not None:
        kept = f"redis: embedded redis-server, data kept in {info.data_dir}"
    else:
        kept = "redis: embedded redis-server, data discarded on exit (redis.data_dir keeps it)"
    log.info(kept, extra={"url": info.url, "try": info.try_command})
    return info
