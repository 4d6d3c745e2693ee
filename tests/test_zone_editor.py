"""Zones edited through the API: validated by the config model, written into the operator's file (its
comments kept, atomically, the previous version kept), refused without credentials when auth is on,
and printed as YAML by `crowdstream zones`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from crowdstream.engines.errors import ConfigError
from crowdstream.stream.camera_settings import CameraSettings
from crowdstream.stream.config import CameraConfig, load_config
from crowdstream.stream.hub import Hub
from crowdstream.stream.web.app import create_app
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.zone_editor import ZoneEditError, ZoneEditor
from crowdstream.stream.zone_file import CameraNotInFile, write_zones
from tests.conftest import free_port
from tests.web_support import TOKEN

CONFIG = """\
# cameras of the north entrance
cameras:
  - id: gate
    url: demo
    max_fps: 2          # counting rate
    zones:
      - name: queue
        polygon: [[0, 0], [100, 0], [100, 80]]
        area_m2: 12     # measured on site
  # - id: spare
  #   url: rtsp://10.0.0.9/stream
redis:
  prefix: "north:"
"""

SQUARE = {
    "name": "square",
    "polygon": [[10, 10], [300, 10], [300, 200], [10, 200]],
    "area_m2": 40,
    "threshold": 1.5,
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(CONFIG)
    return path


def check(path: Path) -> object:
    return load_config(path, environ={})


def test_zones_are_written_into_the_file_with_its_comments_and_the_previous_version_kept(config_file) -> None:
    queue = {"name": "queue", "polygon": [[0, 0], [120, 0], [120, 80]], "area_m2": 12, "threshold": None}
    backup = write_zones(config_file, "gate", [queue, SQUARE], check)
    text = config_file.read_text()
    for comment in (
        "# cameras of the north entrance",
        "# counting rate",
        "# measured on site",
        "#   url: rtsp",
    ):
        assert comment in text
    assert 'prefix: "north:"' in text and "polygon: [[10, 10], [300, 10], [300, 200], [10, 200]]" in text
    assert backup == config_file.with_name("cameras.yaml.bak") and backup.read_text() == CONFIG
    zones = yaml.safe_load(text)["cameras"][0]["zones"]
    assert zones == [{"name": "queue", "polygon": [[0, 0], [120, 0], [120, 80]], "area_m2": 12}, SQUARE]
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["cameras.yaml", "cameras.yaml.bak"]


def test_a_file_the_service_could_not_start_with_is_left_as_it_was(config_file, monkeypatch) -> None:
    monkeypatch.setenv("CROWDSTREAM_CAMERAS__0__FRAME_SIZE", "[200, 100]")  # as if set when serve started

    def check_with_environment(path: Path) -> object:
        return load_config(path)

    with pytest.raises(ConfigError, match="outside the 200x100 frame"):
        write_zones(config_file, "gate", [SQUARE], check_with_environment)
    assert config_file.read_text() == CONFIG
    assert [p.name for p in config_file.parent.iterdir()] == ["cameras.yaml"]  # no backup, no temp file


def test_a_camera_that_is_not_in_the_file(config_file) -> None:
    with pytest.raises(CameraNotInFile, match="has no camera 'cam1'"):
        write_zones(config_file, "cam1", [SQUARE], check)


def editor(config_file: Path | None, applied: list) -> ZoneEditor:
    config = load_config(config_file, environ={}) if config_file else load_config(None, environ={})
    return ZoneEditor(CameraSettings(config, config_file, check), applied.append)


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        (
            [{**SQUARE, "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}],
            "zones[0].polygon: polygon is self-intersecting",
        ),
        ([SQUARE, SQUARE], "zone names must be unique per camera, repeated: square"),
        ([{**SQUARE, "colour": "red"}], "zones[0].colour: unknown key"),
        ([{**SQUARE, "area_m2": -3}], "zones[0].area_m2: input should be greater than or equal to 0.01"),
        ([{**SQUARE, "area_m2": float("inf")}], "zones[0].area_m2: input should be a finite number"),
        (
            [{**SQUARE, "threshold": 1e300}],
            "zones[0].threshold: input should be less than or equal to 1000000",
        ),
        ([{**SQUARE, "name": "gate\u2028b"}], "zones[0].name: zone names are printable text"),
        ([{**SQUARE, "name": "a\x00"}], "zones[0].name: zone names are printable text"),
        ([{**SQUARE, "name": f"z{i}"} for i in range(33)], "zones: list should have at most 32 items"),
        (
            [{**SQUARE, "polygon": [[0, 0], [700, 0], [700, 50]]}],
            "zone 'square' lies outside the 640x360 frame",
        ),
        ("square", "zones: input should be a valid list"),
    ],
)
async def test_zones_the_config_model_refuses_change_nothing(config_file, zones, message) -> None:
    applied: list = []
    with pytest.raises(ZoneEditError) as raised:
        await editor(config_file, applied).replace("gate", zones, (640, 360))
    assert str(raised.value).startswith("camera gate: ") and message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert config_file.read_text() == CONFIG and applied == []


async def test_an_edit_is_saved_then_applied(config_file) -> None:
    applied: list[CameraConfig] = []
    zones = editor(config_file, applied)
    saved = (await zones.replace("gate", [SQUARE], (640, 360))).saved
    assert (saved.saved_to, saved.previous, saved.note) == (str(config_file), f"{config_file}.bak", None)
    assert [z.name for z in applied[0].zones] == ["square"] and zones.camera("gate") is applied[0]
    assert applied[0].max_fps == 2  # the rest of the camera as it was


async def test_without_a_config_file_an_edit_applies_and_says_it_was_not_saved() -> None:
    applied: list = []
    saved = (await editor(None, applied).replace("demo", [SQUARE], (640, 360))).saved
    assert saved.saved_to is None and "started without a config file" in saved.note
    assert [z.name for z in applied[0].zones] == ["square"]


@pytest.fixture
async def zone_server(config_file: Path):
    """The app (with a token) over a hub knowing camera gate, and the zone editor on the file."""
    applied: list[CameraConfig] = []
    hub = Hub()
    hub.add_camera("gate", "Gate", [])
    app = create_app(
        hub,
        HttpConfig(token=TOKEN),
        registry=CollectorRegistry(),
        redis_url=None,
        zone_editor=editor(config_file, applied),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", applied
    finally:
        await runner.cleanup()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_saving_zones_needs_the_token_when_auth_is_on(zone_server, config_file) -> None:
    url, applied = zone_server
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{url}/api/cameras/gate/zones", json={"zones": [SQUARE]}) as response:
            assert response.status == 401
        assert config_file.read_text() == CONFIG and applied == []
        async with session.put(
            f"{url}/api/cameras/gate/zones", json={"zones": [SQUARE]}, headers=BEARER
        ) as response:
            body = await response.json()
            assert response.status == 200, body
        assert body["zones"] == [SQUARE] and body["saved_to"] == str(config_file)
        assert yaml.safe_load(config_file.read_text())["cameras"][0]["zones"] == [SQUARE]
        async with session.get(f"{url}/api/cameras/gate/zones", headers=BEARER) as response:
            listed = await response.json()
        assert listed == {
            "camera": "gate",
            "frame_size": None,
            "zones": [SQUARE],
            "config_file": str(config_file),
        }


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        ('{"zones": []}', "text/plain", 415, "application/json"),
        ("{zones", "application/json", 400, "not valid JSON"),
        ('{"zones": [], "more": 1}', "application/json", 400, "the complete list"),
        (
            '{"zones": [{"name": "x", "polygon": [[0, 0], [1, 1]]}]}',
            "application/json",
            400,
            "needs 3 to 256 points",
        ),
    ],
)
async def test_bad_zone_requests_get_json_errors(
    zone_server, config_file, data, content_type, status, message
):
    url, applied = zone_server
    headers = {**BEARER, "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as session,
        session.put(f"{url}/api/cameras/gate/zones", data=data, headers=headers) as response,
    ):
        body = await response.json()
    assert response.status == status and message in body["error"]
    assert config_file.read_text() == CONFIG and applied == []


async def crowdstream(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crowdstream",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_crowdstream_zones_prints_the_yaml_of_the_running_service(zone_server) -> None:
    url, _ = zone_server
    async with aiohttp.ClientSession() as session:
        await session.put(f"{url}/api/cameras/gate/zones", json={"zones": [SQUARE]}, headers=BEARER)
    code, out, err = await crowdstream("zones", "gate", "--url", url, "--token", TOKEN)
    assert code == 0, err
    assert yaml.safe_load(out) == {"zones": [SQUARE]}  # pasted under the camera, it is the same zone
    code, out, err = await crowdstream("zones", "gate", "--url", url)
    assert (
        code == 2 and err == f"crowdstream: error: {url} needs a token: --token or CROWDSTREAM_HTTP__TOKEN\n"
    )
    code, out, err = await crowdstream("zones", "nope", "--url", url, "--token", TOKEN)
    assert code == 2 and err == f"crowdstream: error: {url} has no camera 'nope'\n"
