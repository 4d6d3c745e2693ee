"""The service config loader: the documented example, one-line errors naming file, key and expectation,
environment and command-line overrides, the CLI's exit code 2, and hypothesis fuzzing (never a traceback)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crowdstream.engines.errors import ConfigError
from crowdstream.stream.cli import EXAMPLE_CONFIG
from crowdstream.stream.config import ServiceConfig, build_config, load_config

EXAMPLE = Path(str(EXAMPLE_CONFIG))
CAMERA = "{id: gate, url: demo}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_documented_example_loads() -> None:
    config = load_config(EXAMPLE, environ={})
    demo = config.cameras[0]
    assert (demo.id, demo.max_fps, demo.frame_size) == ("demo", 2, (1280, 720))
    assert [z.name for z in demo.zones] == ["left-half", "walkway"]
    assert config.zone_threshold(demo.zones[0]) == 1.5
    assert config.zone_threshold(demo.zones[1]) is None  # no area: the people default (null) applies
    assert config.redis.prefix == "crowd:" and config.http.port == 8080


def test_config_example_prints_the_shipped_example_and_its_data_root_is_a_key(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "crowdstream", "config", "example"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == EXAMPLE.read_text(encoding="utf-8")
    assert load_config(EXAMPLE, environ={}).data_root is None  # commented out: no data root named
    text = result.stdout.replace("# data_root: /srv/data", f"data_root: {tmp_path}")
    assert load_config(write(tmp_path, text), environ={}).data_root == tmp_path


def test_no_file_means_the_demo_clip_on_loopback() -> None:
    config = load_config(None, environ={})
    assert [c.url for c in config.cameras] == ["demo"]
    assert config.http.host == "127.0.0.1" and config.redis.url is None
    assert config.redis.embedded_port == 6380 and config.redis.data_dir is None  # README's Redis section


@pytest.mark.parametrize(
    ("text", "key", "expectation"),
    [
        (f"cameras: [{CAMERA}]\nbogus: 1", "bogus", "unknown key"),
        ("cameras: [{id: gate, url: demo, fps: 3}]", "cameras[0].fps", "unknown key"),
        ("cameras: [{id: gate, url: demo, max_fps: -1}]", "cameras[0].max_fps", "greater than 0"),
        ("cameras: [{id: gate, url: demo, max_fps: fast}]", "cameras[0].max_fps", "valid number"),
        ("http: {port: eighty}", "http.port", "valid integer"),
        ("cameras: [{id: gate}]", "cameras[0].url", "required key is missing"),
        (f"cameras: [{CAMERA}, {CAMERA}]", "cameras", "unique, repeated: gate"),
        ("cameras: []", "cameras", "at least one camera"),
        ("cameras: [{id: ../etc, url: demo}]", "cameras[0].id", "letters, digits"),
        ("cameras: [{id: gate, url: demo, tiles: lots}]", "cameras[0].tiles", "'auto' or 'RxC'"),
        (
            "cameras: [{id: gate, url: demo, zones: [{name: z, polygon: [[0, 0], [10, 10], [10, 0], [0, 10]]}]}]",
            "cameras[0].zones[0].polygon",
            "self-intersecting",
        ),
        (
            "cameras: [{id: gate, url: demo, frame_size: [640, 480], zones: [{name: z, polygon: [[0, 0], [700, 0], [0, 100]]}]}]",
            "cameras[0]",
            "outside the 640x480 frame",
        ),
        (
            "cameras: [{id: gate, url: demo, zones: [{name: z, polygon: [[0, 0], [9, 0], [0, 9]], area_m2: 0}]}]",
            "cameras[0].zones[0].area_m2",
            "greater than or equal to 0.01",
        ),
        ("redis: {url: localhost:6379}", "redis.url", "must start with redis://"),
        (
            "cameras: [{id: gate, url: demo, zones: [{name: z, polygon: [[0, 0], [9, 0], [0, 9]], threshold: .inf}]}]",
            "cameras[0].zones[0].threshold",
            "finite number",
        ),
        ("thresholds: {people: .nan}", "thresholds.people", "finite number"),
        ("redis: {url: 'redis://r:6379/0', data_dir: /tmp/r}", "redis", "data_dir keeps the embedded"),
        ("redis: {embedded_port: 70000}", "redis.embedded_port", "less than or equal to 65535"),
        ("smoothing: {alpha: 2}", "smoothing.alpha", "less than or equal to 1"),
        ("engine: {device: gpu}", "engine.device", "auto, cpu, cuda or cuda:N"),
    ],
)
def test_mistakes_name_file_key_and_expectation(tmp_path, text, key, expectation) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: ")
    assert expectation in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expectation"),
    [
        ("cameras: [", "not valid YAML at line 1, column 11"),
        ("- just\n- a list", "expected a mapping of sections"),
        ("a: 2001-13-45", "not valid YAML"),
    ],
)
def test_unreadable_files_are_reported(tmp_path, text, expectation) -> None:
    with pytest.raises(ConfigError, match=expectation):
        load_config(write(tmp_path, text), environ={})


def test_missing_file_is_reported(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_environment_overrides_the_file_and_options_override_both(tmp_path) -> None:
    path = write(tmp_path, f"cameras: [{CAMERA}]\nhttp: {{port: 8080}}")
    environ = {
        "CROWDSTREAM_HTTP__PORT": "9000",
        "CROWDSTREAM_REDIS__URL": "redis://cache:6379/1",
        "CROWDSTREAM_CAMERAS__0__MAX_FPS": "5",
        "CROWDSTREAM_SMOOTHING__ALPHA": "0.5",
        "UNRELATED": "x",
    }
    config = load_config(path, environ=environ)
    assert (config.http.port, config.redis.url, config.cameras[0].max_fps) == (
        9000,
        "redis://cache:6379/1",
        5.0,
    )
    assert config.smoothing.alpha == 0.5
    config = load_config(path, environ=environ, overrides={"http.port": 7000})
    assert config.http.port == 7000


@pytest.mark.parametrize(
    ("environ", "expectation"),
    [
        (
            {"CROWDSTREAM_HTTP__PORT": "many"},
            "CROWDSTREAM_HTTP__PORT (http.port): input should be a valid integer",
        ),
        ({"CROWDSTREAM_CAMERAS__3__URL": "demo"}, "CROWDSTREAM_CAMERAS__3__URL: index '3'"),
        ({"CROWDSTREAM_WHATEVER__KEY": "1"}, "whatever: unknown key"),
    ],
)
def test_bad_environment_overrides_are_reported(environ, expectation) -> None:
    with pytest.raises(ConfigError, match=re.escape(expectation)):
        load_config(None, environ=environ)


def test_cli_reports_a_bad_config_in_one_line_with_exit_2(tmp_path) -> None:
    path = write(tmp_path, "cameras: [{id: gate, url: demo, max_fps: -2}]")
    result = subprocess.run(
        [sys.executable, "-m", "crowdstream", "serve", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "cameras[0].max_fps" in lines[0]


KEYS = [
    "cameras",
    "id",
    "url",
    "zones",
    "name",
    "polygon",
    "area_m2",
    "threshold",
    "max_fps",
    "tiles",
    "loop",
    "frame_size",
    "engine",
    "redis",
    "http",
    "port",
    "host",
    "cluster",
    "smoothing",
    "alpha",
    "thresholds",
    "prefix",
    "backlog",
    "maxlen",
    "users",
    "enabled",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["demo", "auto", "2x2", "redis://h:1/0", "-1", "1e9"]),
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
@example(data={"cameras": None, "cluster": {"\n": None}})  # a key with a line break, echoed in the message
def test_fuzzed_documents_load_or_raise_config_error(data) -> None:
    try:
        config = build_config(data, "fuzz.yaml", environ={})
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml") and "\n" not in str(exc)
    else:
        assert isinstance(config, ServiceConfig)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(
        alphabet=st.sampled_from(list("cameras:[]{}-, \n\tidurlzone0123.:'\"&*!|>#%@`")), max_size=80
    )
)
def test_fuzzed_yaml_text_loads_or_raises_config_error(tmp_path, text) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert str(path) in str(exc)


@settings(max_examples=100, deadline=None)
@given(
    environ=st.dictionaries(
        st.builds(
            lambda parts: "CROWDSTREAM_" + "__".join(parts),
            st.lists(st.sampled_from([k.upper() for k in KEYS] + ["0", "1", "X"]), min_size=1, max_size=4),
        ),
        st.text(max_size=10),
        max_size=3,
    )
)
def test_fuzzed_environment_overrides_load_or_raise_config_error(environ) -> None:
    try:
        load_config(None, environ=environ)
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_round_trip_of_a_valid_config(tmp_path) -> None:
    config = load_config(EXAMPLE, environ={})
    path = write(tmp_path, yaml.safe_dump(config.model_dump(mode="json")))
    assert load_config(path, environ={}) == config
