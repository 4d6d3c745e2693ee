"""`crowdstream serve` as a real subprocess: SIGTERM flushes and exits 0 within 10 s, Redis killed and
restarted under load loses nothing and keeps order, and it runs without any Redis at all."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from crowdstream.stream.redis_publisher import counts_key
from tests.conftest import RedisServer, ServiceProcess, demo_cameras, free_port

PREFIX = "svc:"


def records_written(served: ServiceProcess) -> int:
    match = re.search(r"stopped records_written=(\d+) records_lost=(\d+)", served.logs())
    assert match, served.logs()[-2000:]
    assert match.group(2) == "0"
    return int(match.group(1))


def read_streams(url: str, cameras: list[str]) -> dict[str, list[tuple[str, dict]]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {camera: client.xrange(counts_key(PREFIX, camera)) for camera in cameras}
    finally:
        client.close()


def assert_ordered(entries: list[tuple[str, dict]]) -> None:
    ids = [tuple(map(int, entry_id.split("-"))) for entry_id, _ in entries]
    stamps = [float(fields["timestamp"]) for _, fields in entries]
    assert ids == sorted(set(ids)) and stamps == sorted(stamps)


def test_sigterm_flushes_records_held_back_and_exits_0(service_process, redis_server: RedisServer) -> None:
    served = service_process(
        {"cameras": demo_cameras(2), "redis": {"url": redis_server.url, "prefix": PREFIX}}
    )
    served.wait_until(lambda: (served.metric("crowd_redis_records_written_total") or 0) >= 4, what="records")
    os.kill(redis_server.process.pid, signal.SIGSTOP)  # Redis hangs: records pile up in memory
    try:
        served.wait_until(lambda: (served.metric("crowd_redis_backlog") or 0) >= 3, what="a backlog")
        served.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    code = served.process.wait(timeout=10)
    assert code == 0
    streams = read_streams(redis_server.url, ["cam1", "cam2"])
    assert sum(len(entries) for entries in streams.values()) == records_written(served)
    for entries in streams.values():
        assert_ordered(entries)
    assert "Traceback" not in served.logs()


def test_redis_outage_under_load_loses_nothing_and_keeps_order(
    service_process, redis_server: RedisServer
) -> None:
    served = service_process(
        {"cameras": demo_cameras(2), "redis": {"url": redis_server.url, "prefix": PREFIX}}
    )
    served.wait_until(lambda: (served.metric("crowd_redis_records_written_total") or 0) >= 4, what="records")
    redis_server.kill()
    counted_before = served.metric("crowd_frames_processed_total", camera="cam1")
    served.wait_until(lambda: (served.metric("crowd_redis_backlog") or 0) >= 6, what="the backlog to rise")
    assert served.metric("crowd_redis_up") == 0
    assert served.metric("crowd_frames_processed_total", camera="cam1") > counted_before  # still counting
    redis_server.start()
    served.wait_until(lambda: served.metric("crowd_redis_backlog") == 0, what="the backlog to drain")
    assert served.metric("crowd_redis_up") == 1
    assert served.metric("crowd_redis_records_dropped_total") == 0
    code, seconds = served.terminate()
    assert code == 0 and seconds < 10
    streams = read_streams(redis_server.url, ["cam1", "cam2"])
    assert sum(len(entries) for entries in streams.values()) == records_written(served)
    for entries in streams.values():
        assert_ordered(entries)
    assert "redis unreachable, buffering" in served.logs() and "redis reachable" in served.logs()


def test_without_redis_it_publishes_to_prometheus_only(service_process) -> None:
    path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "redis-server").exists()
    )
    served = service_process({"cameras": demo_cameras(1)}, env={"PATH": path})
    served.wait_until(
        lambda: (served.metric("crowd_frames_processed_total", camera="cam1") or 0) >= 2,
        what="counted frames",
    )
    assert served.metric("crowd_people", camera="cam1", zone="") > 0
    assert served.metric("crowd_stream_up", camera="cam1") == 1
    code, _seconds = served.terminate()
    assert code == 0
    assert served.logs().count("publishing to Prometheus only") == 1


def try_command(served: ServiceProcess) -> list[str]:
    """The redis-cli command serve's first lines invite to run."""
    first_lines = served.logs().splitlines()[:3]
    found = [re.search(r"try='([^']+)'", line) for line in first_lines]
    commands = [match.group(1) for match in found if match]
    assert commands, first_lines
    return shlex.split(commands[0])


def test_without_a_redis_url_it_starts_a_private_redis_the_logged_redis_cli_reads(service_process) -> None:
    port = free_port()
    served = service_process({"cameras": demo_cameras(1), "redis": {"prefix": PREFIX, "embedded_port": port}})
    served.wait_until(lambda: (served.metric("crowd_redis_records_written_total") or 0) >= 3, what="records")
    command = try_command(served)
    assert command == ["redis-cli", "-p", str(port), "XREVRANGE", "svc:cam1:counts", "+", "-", "COUNT", "3"]
    newest = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout
    assert newest.count("timestamp") == 3 and "smoothed" in newest  # three real records, newest first
    status, body = served.get("/api/config")
    assert status == 200 and json.loads(body)["redis"] == {
        "url": f"redis://127.0.0.1:{port}/0",
        "embedded": True,
        "data_dir": None,
        "kept": False,
        "try": shlex.join(command),
    }
    assert "data discarded on exit" in served.logs()
    code, _seconds = served.terminate()
    assert code == 0
    with pytest.raises(redis.ConnectionError):  # the private server went away with the service
        redis.Redis(port=port, socket_connect_timeout=1).ping()


def test_a_taken_redis_port_falls_back_to_a_free_one_and_says_so(service_process) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        wanted = taken.getsockname()[1]
        served = service_process(
            {"cameras": demo_cameras(1), "redis": {"prefix": PREFIX, "embedded_port": wanted}}
        )
        served.wait_until(
            lambda: (served.metric("crowd_redis_records_written_total") or 0) >= 1, what="records"
        )
    assert f"port {wanted} is taken: the embedded redis-server uses port" in served.logs()
    command = try_command(served)
    port = int(command[command.index("-p") + 1])
    assert port != wanted and redis.Redis(port=port).xlen("svc:cam1:counts") >= 1


def test_the_embedded_redis_keeps_its_data_in_data_dir_across_restarts(
    service_process, tmp_path: Path
) -> None:
    data = tmp_path / "redis-data"
    config = {
        "cameras": demo_cameras(1),
        "redis": {"prefix": PREFIX, "embedded_port": free_port(), "data_dir": str(data)},
    }
    first = service_process(config)
    first.wait_until(lambda: (first.metric("crowd_redis_records_written_total") or 0) >= 2, what="records")
    assert f"data kept in {data}" in first.logs()
    assert first.terminate()[0] == 0
    written = records_written(first)
    second = service_process(config)
    port = int(try_command(second)[2])
    kept = redis.Redis(port=port).xrange("svc:cam1:counts", count=written)
    assert len(kept) == written  # every record of the first run, then the second run's
    assert second.terminate()[0] == 0


def test_sources_from_the_command_line_and_a_bad_one(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdstream",
            "serve",
            "--source",
            "ftp://nowhere/x",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unsupported source 'ftp://nowhere/x'" in result.stderr


def test_cluster_workers_split_cameras_and_take_over_after_sigkill(
    service_process, redis_server: RedisServer
) -> None:
    config = {
        "cameras": demo_cameras(2, max_fps=2),
        "redis": {"url": redis_server.url, "prefix": PREFIX},
        "cluster": {"enabled": True, "lease_ms": 1500},
    }
    first = service_process({**config, "cluster": {**config["cluster"], "worker_id": "first"}})
    second = service_process({**config, "cluster": {**config["cluster"], "worker_id": "second"}})

    def owned(served: ServiceProcess) -> set[str]:
        return {c for c in ("cam1", "cam2") if served.metric("crowd_stream_up", camera=c) == 1}

    second.wait_until(lambda: len(owned(first)) == 1 and len(owned(second)) == 1, what="the cameras to split")
    (lost,) = owned(first)
    assert first.metric("crowd_stream_up", camera=({"cam1", "cam2"} - {lost}).pop()) is None  # no false alarm
    os.killpg(first.process.pid, signal.SIGKILL)
    second.wait_until(lambda: owned(second) == {"cam1", "cam2"}, what="the survivor to take over")
    second.wait_until(
        lambda: (second.metric("crowd_frames_processed_total", camera=lost) or 0) >= 2,
        what="the taken-over camera to be counted",
    )
    code, _seconds = second.terminate()
    assert code == 0
    entries = read_streams(redis_server.url, [lost])[lost]
    workers = [fields["worker"] for _, fields in entries]
    assert workers[0] == "first" and workers[-1] == "second"
    fences = [int(fields["fence"]) for _, fields in entries]
    assert fences == sorted(fences) and fences[-1] > fences[0]
    assert_ordered(entries)
