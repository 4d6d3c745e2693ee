"""Child servers the soak and the tests start, kill and restart: each in its own process group, so a
SIGKILL takes the whole server down at once, like a crash, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from crowdstream.engines.errors import CrowdstreamError


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on `port`; CrowdstreamError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise CrowdstreamError(f"nothing listened on {host}:{port} within {timeout} s")


def kill_process_group(process: subprocess.Popen | None) -> None:
    """SIGKILL a started server's process group: its connections drop without a goodbye."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def stop_process_group(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM a started server's process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process_group(process)
    except ProcessLookupError:
        pass
