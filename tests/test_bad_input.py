"""Every user mistake of issue 13, run as the user runs it: the real command in a subprocess. Each must
end with exactly one line on stderr that names the option or key, exit code 2, no traceback, and (for
`serve`) before anything was started: no log line of Redis, the model or a camera comes before it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.data_paths import PART_B

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "docs" / "prediction-example.jpg"
TOKEN_ENV = {"CROWDSTREAM_HTTP__TOKEN": "a-token-of-at-least-16-chars"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROWDSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "crowdstream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**environ, **(env or {})},
    )


def assert_one_line(result: subprocess.CompletedProcess, *parts: str) -> str:
    """Exit 2, a single stderr line starting 'crowdstream: error: ' and containing every part."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("crowdstream: error: "), lines[0]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("grid", "expectation"),
    [
        ("0x3", "tile grid must be between 1x1 and 16x16, got 0x3"),
        ("banana", "tiles must be 'adaptive', 'auto' or 'RxC' such as '2x2', got 'banana'"),
        ("20x20", "tile grid must be between 1x1 and 16x16, got 20x20"),
    ],
)
def test_count_with_a_bad_tile_grid(grid: str, expectation: str) -> None:
    result = run_cli("count", str(IMAGE), "--tiles", grid)
    assert result.stderr == f"crowdstream: error: --tiles: {expectation}\n"
    assert_one_line(result)


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_eval_with_a_limit_below_one(limit: str) -> None:
    result = run_cli("eval", str(PART_B), "--limit", limit)
    assert result.stderr == f"crowdstream: error: --limit must be at least 1, got {limit}\n"
    assert_one_line(result)
    assert result.stdout == ""  # no "0 images" report


def test_a_hexadecimal_looking_grid_in_yaml_says_to_quote_it(tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - id: gate\n    url: demo\n    tiles: 0x3\n")
    line = assert_one_line(run_cli("serve", "-c", str(config)), str(config), "cameras[0].tiles")
    assert 'quote the grid, e.g. tiles: "0x3"' in line and "hexadecimal" in line


def test_serve_port_out_of_range_names_the_option_not_the_defaults() -> None:
    result = run_cli("serve", "--port", "99999")
    assert result.stderr == (
        "crowdstream: error: --port (http.port): input should be less than or equal to 65535 (got 99999)\n"
    )
    assert_one_line(result)


def test_serve_redis_url_without_a_scheme_says_the_value_once() -> None:
    line = assert_one_line(run_cli("serve", "--redis-url", "notaurl"), "--redis-url", "redis://")
    assert line.count("notaurl") == 1


def test_count_on_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    line = assert_one_line(run_cli("count", str(tmp_path)), str(tmp_path))
    assert "is a folder" in line and "no such file" not in line


def test_count_on_a_text_file_says_it_is_neither_image_nor_video(tmp_path: Path) -> None:
    result = run_cli("count", "README.md", "-o", str(tmp_path / "x.png"))
    line = assert_one_line(result, "README.md: not a readable image or video (images are .bmp, .jpeg")
    assert "video is written as" not in line and ".mp4" not in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_port_in_use_fails_before_starting_anything(busy_port: int) -> None:
    result = run_cli("serve", "--port", str(busy_port))
    assert_one_line(result, f"cannot listen on 127.0.0.1:{busy_port}", "address already in use", "--port")


def test_serve_on_an_address_of_another_machine_fails_before_starting_anything() -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine
    result = run_cli("serve", "--host", "192.0.2.1", env=TOKEN_ENV)
    assert_one_line(result, "cannot listen on 192.0.2.1:8080", "--host")


def test_serve_on_an_unknown_host_name_names_the_option() -> None:
    result = run_cli("serve", "--host", "no-such-host.invalid", env=TOKEN_ENV)
    assert_one_line(result, "--host / http.host: 'no-such-host.invalid' is not an address")


def test_serve_with_a_missing_video_file_fails_before_starting_anything(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    assert_one_line(run_cli("serve", "--source", str(missing)), "camera 'nope'", str(missing))


def test_a_name_without_a_source_is_one_line() -> None:
    assert_one_line(run_cli("serve", "--name", "Main gate"), "--name: 1 names for 0 --source URLs")
