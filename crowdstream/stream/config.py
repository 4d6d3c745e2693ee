"""The service configuration: one YAML file, validated with pydantic, overridden by environment variables.

Every mistake becomes a `ConfigError` whose one-line message names the file, the key and what was
expected, so `crowdstream serve` can exit 2 without a traceback. Environment variables named
`CROWDSTREAM_<SECTION>__<KEY>` (for example `CROWDSTREAM_REDIS__URL`, `CROWDSTREAM_HTTP__PORT`,
`CROWDSTREAM_CAMERAS__0__MAX_FPS`) override the file; their values are read as YAML scalars.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from crowdstream.engines.errors import ConfigError
from crowdstream.engines.preprocess import parse_tiles
from crowdstream.engines.spec import DEFAULT_TILES
from crowdstream.stream.alert_store import KEEP
from crowdstream.stream.alerts import END_AFTER_S
from crowdstream.stream.finetune_config import FinetuneConfig
from crowdstream.stream.redis_server import EMBEDDED_PORT
from crowdstream.stream.sources.decoding import DecodeConfig
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.zones import Zone, check_polygon, fits_frame

ENV_PREFIX = "CROWDSTREAM_"
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it: a file with thousands of zone points loads several times
faster, and the zone editor loads the file after every save to check it."""
DEMO_URL = "demo"
MAX_ERRORS_SHOWN = 3

_CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Strict(BaseModel):
    """Unknown keys are mistakes, and so is an infinite or NaN number (YAML's .inf): no setting means it,
    and JSON (the API, the event stream) cannot carry it."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


MAX_ZONES = 32
"""Zones one camera may have (each is counted on every frame)."""
MAX_AREA_M2 = 1_000_000.0  # a square kilometre
MIN_AREA_M2 = 0.01  # smaller areas turn one person into 100 people per m² and more
MAX_THRESHOLD = 1_000_000.0


class ZoneConfig(Strict):
    """A polygon in frame pixels; `area_m2` turns its count into people per m². Numbers are finite and
    in range (numbers, not true or "5") and names printable: they end up in metric labels, YAML and the
    page."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="unique per camera; printable, no line breaks or surrounding spaces"
    )
    polygon: list[tuple[StrictFloat, StrictFloat]] = Field(
        description="[[x, y], ...] in frame pixels, 3 or more points"
    )
    area_m2: StrictFloat | None = Field(
        None, ge=MIN_AREA_M2, le=MAX_AREA_M2, description="ground area the zone covers, in square metres"
    )
    threshold: StrictFloat | None = Field(
        None, ge=0, le=MAX_THRESHOLD, description="alert above this many people per m² (or people)"
    )

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.isprintable() or name.strip() != name:
            raise ValueError(
                "zone names are printable text without control characters, line breaks or surrounding spaces"
            )
        return name

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        check_polygon(points)
        return points


class CameraConfig(Strict):
    id: str = Field(
        description="1 to 64 letters, digits, '_', '.' or '-': used in Redis keys, metric labels and URLs"
    )
    name: str | None = Field(None, description="display name (defaults to the id)")
    url: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="rtsp://…, http(s)://… MJPEG, a video file, an image folder, /dev/videoN, an index, or 'demo'"
    )
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=MAX_ZONES)
    tiles: str = Field(DEFAULT_TILES, description="'adaptive', 'auto' or a grid such as '2x3'")
    max_fps: float | None = Field(2.0, gt=0, le=120, description="most frames counted per second (null: all)")
    loop: bool = Field(True, description="restart video files when they end")
    frame_size: tuple[int, int] | None = Field(
        None, description="[width, height], if known in advance, to check zones at load time"
    )
    model: str | None = Field(None, min_length=1, description="this camera's model (null: engine.model)")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, camera_id: str) -> str:
        """Ids end up in Redis keys, metric labels and URL paths, so they are kept to a safe alphabet."""
        if not _CAMERA_ID.match(camera_id):
            raise ValueError(
                "camera ids are 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return camera_id

    @field_validator("tiles", mode="before")
    @classmethod
    def _tiles_as_text(cls, tiles: Any) -> Any:
        """YAML reads an unquoted 0x3 as the hexadecimal number 3: say so instead of 'not a string'."""
        if isinstance(tiles, int | float) and not isinstance(tiles, bool):
            raise ValueError(
                'tiles must be text such as "2x3" or auto, not a number: quote the grid, e.g. tiles: "0x3" '
                "(YAML reads an unquoted 0x3 as the hexadecimal number 3)"
            )
        return tiles

    @field_validator("tiles")
    @classmethod
    def _tile_grid(cls, tiles: str) -> str:
        parse_tiles(tiles)
        return tiles

    @field_validator("frame_size")
    @classmethod
    def _positive_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and min(size) < 1:
            raise ValueError(
                f"frame_size must be [width, height] in pixels, both at least 1, got {list(size)}"
            )
        return size

    @model_validator(mode="after")
    def _zones_fit(self) -> CameraConfig:
        names = [zone.name for zone in self.zones]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"zone names must be unique per camera, repeated: {', '.join(duplicates)}")
        if self.frame_size is not None:
            width, height = self.frame_size
            for zone in self.zones:
                if not fits_frame(zone.polygon, width, height):
                    raise ValueError(f"zone {zone.name!r} lies outside the {width}x{height} frame")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


class EngineConfig(Strict):
    model: str = Field("default", description="a shipped model name or a model file path")
    backend: str = Field("auto", description="auto, onnxruntime, tensorrt or torch")
    threads: int = Field(0, ge=0, le=256, description="CPU threads for inference (0: all cores)")
    max_batch: int = Field(32, ge=1, le=1024, description="most tiles per inference call")
    device: str = Field(
        "auto", description="torch backend only: auto (CUDA when present), cpu, cuda or cuda:N"
    )
    self_check_every: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="seconds between a camera's count self-checks (one frame counted again with 1.5x finer tiles, "
        "engines.uncertainty: about 2.5 frames' inference per camera per period); the camera's count is uncertain "
        "when over 40 % of its last 10 were (stream.self_checks); 0 turns them off",
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return device


class RedisConfig(Strict):
    url: str | None = Field(
        None, description="redis://host:port/db; null starts a local redis-server if one is installed"
    )
    embedded: bool = Field(True, description="without a url, start a private redis-server when it is on PATH")
    embedded_port: int = Field(
        EMBEDDED_PORT, ge=0, le=65535, description="the private redis-server's port (if taken: a free one)"
    )
    data_dir: Path | None = Field(
        None, description="keep the private redis-server's data in this folder (null: discarded on exit)"
    )
    prefix: str = Field("crowd:", max_length=64, description="prefix of every key and channel")
    maxlen: int = Field(100_000, ge=1, description="approximate length cap of each camera's counts stream")
    backlog: int = Field(10_000, ge=1, description="records kept in memory while Redis is unreachable")

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"url must start with redis://, rediss:// or unix://, got {url!r}")
        return url

    @field_validator("data_dir")
    @classmethod
    def _home(cls, folder: Path | None) -> Path | None:
        return None if folder is None else folder.expanduser()

    @model_validator(mode="after")
    def _data_dir_is_embedded(self) -> RedisConfig:
        if self.data_dir is not None and self.url is not None:
            raise ValueError("data_dir keeps the embedded Redis's data; with a url, Redis keeps its own")
        return self


class ClusterConfig(Strict):
    enabled: bool = Field(False, description="share the camera list with other workers through Redis leases")
    lease_ms: int = Field(
        10_000,
        ge=500,
        le=600_000,
        description="milliseconds after which a dead worker's cameras are taken over",
    )
    worker_id: str | None = Field(None, description="defaults to host name and process id")


class SmoothingConfig(Strict):
    alpha: float = Field(0.3, gt=0, le=1, description="EMA weight of the newest count (1: no smoothing)")


class ThresholdsConfig(Strict):
    """Defaults for zones that set no threshold of their own."""

    people: float | None = Field(None, ge=0, description="people in a zone without an area")
    density: float | None = Field(None, ge=0, description="people per m² in a zone with an area")


class AlertsConfig(Strict):
    """The alert history (/api/alerts, the page's list): a zone over its threshold is one alert."""

    keep: int = Field(KEEP, ge=1, le=100_000, description="newest alerts kept (in Redis and in memory)")
    end_after_s: float = Field(
        END_AFTER_S, ge=0, le=3600, description="an alert ends once its zone stayed under the limit this long"
    )


class ServiceConfig(Strict):
    cameras: list[CameraConfig] = Field(
        default_factory=lambda: [CameraConfig(id="demo", name="Demo clip", url=DEMO_URL)]
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig)
    thresholds: ThresholdsConfig = Field(default_factory=ThresholdsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    data_root: Path | None = Field(
        None,
        description="folder holding shanghaitech/part_A|part_B/train_data, the standard hold-out a fine-tune "
        "is judged on ($CROWDSTREAM_DATA wins over it; null: none named)",
    )

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        if not cameras:
            raise ValueError("at least one camera is needed")
        ids = [camera.id for camera in cameras]
        duplicates = sorted({camera_id for camera_id in ids if ids.count(camera_id) > 1})
        if duplicates:
            raise ValueError(f"camera ids must be unique, repeated: {', '.join(duplicates)}")
        return cameras

    def zone_threshold(self, zone: ZoneConfig) -> float | None:
        """The zone's own threshold, else the default for its kind (density with an area, else people)."""
        if zone.threshold is not None:
            return zone.threshold
        return self.thresholds.density if zone.area_m2 is not None else self.thresholds.people

    def model_of(self, camera: CameraConfig) -> str:
        """The model a camera counts with: its own, else the engine's."""
        return camera.model or self.engine.model

    def zones_of(self, camera: CameraConfig) -> list[Zone]:
        """A camera's zones, ready to count, with the default thresholds filled in."""
        return [Zone(z.name, z.polygon, z.area_m2, self.zone_threshold(z)) for z in camera.zones]


def _key_path(location: tuple[int | str, ...]) -> str:
    """('cameras', 1, 'zones', 0, 'polygon') → 'cameras[1].zones[0].polygon'."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.startswith(("function-", "tagged-union")):
            shown = part if part.isprintable() and part.strip() == part and part else repr(part)
            text += f".{shown}" if text else shown
    return text or "(top level)"


def _origin_of(key: str, origins: Mapping[str, str]) -> str | None:
    """The option or variable that set `key` or a section above it (the most specific one)."""
    setters = [k for k in origins if key == k or key.startswith((f"{k}.", f"{k}["))]
    return origins[max(setters, key=len)] if setters else None


def _describe(error: Mapping[str, Any], origins: Mapping[str, str]) -> tuple[str, bool]:
    """One error as '<key>: <expectation> (got <value>)', the key prefixed by the option or variable
    that set it; and whether such an origin was found."""
    key = _key_path(error["loc"])
    origin = _origin_of(key, origins)
    where = f"{origin} ({key})" if origin else key
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key", origin is not None
    if error["type"] == "missing":
        return f"{where}: required key is missing", origin is not None
    text = f"{where}: {message[:1].lower() + message[1:]}"
    received = error.get("input")
    if isinstance(received, str | int | float | bool | type(None)) and "got " not in message:
        text += f" (got {repr(received)[:60]})"
    return text, origin is not None


def format_validation_error(
    source: str, exc: ValidationError, origins: Mapping[str, str] | None = None
) -> str:
    """One line: '<source>: <key>: <expectation> (got <value>); …', at most a few errors. A key set by
    a command-line option or an environment variable (`origins`: key path → its name) is reported
    under that name, and the source is left out when it set none of the keys shown."""
    errors = exc.errors(include_url=False)
    described = [_describe(error, origins or {}) for error in errors[:MAX_ERRORS_SHOWN]]
    shown = "; ".join(text for text, _ in described)
    more = len(errors) - MAX_ERRORS_SHOWN
    line = shown + (f"; and {more} more" if more > 0 else "")
    return line if all(overridden for _, overridden in described) else f"{source}: {line}"


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], Any]]:
    overrides = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except (yaml.YAMLError, ValueError, RecursionError):
            value = raw  # not a YAML scalar: take the text as it is
        overrides.append((path, value))
    return overrides


def _apply_override(data: dict, path: list[str], value: Any, variable: str) -> None:
    node: Any = data
    for depth, key in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"{variable}: index {key!r} does not name an existing list entry")
            key = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(f"{variable}: {'.'.join(path[:depth])} is not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def _parse_yaml(text: str) -> Any:
    """`text` parsed by the fast loader; a file it refuses is parsed again by PyYAML's own, whose error
    names the line and column a person would point at."""
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__}: {exc})") from None
    try:
        data = _parse_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # bad dates raise ValueError
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections (cameras, engine, redis, …), got {type(data).__name__}"
        )
    return data


def build_config(
    data: Mapping[str, Any],
    source: str = "config",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """Validate a parsed mapping into a ServiceConfig or raise ConfigError. Environment variables apply
    over the file, then `overrides` (dotted keys such as ``"http.port"``, from command-line flags).
    `flags` names the option behind an override key (``{"http.port": "--port"}``) so that an error in
    its value names the option the user typed."""
    merged = copy.deepcopy(dict(data))
    changes = [
        (path, value, f"{ENV_PREFIX}{'__'.join(path).upper()}")
        for path, value in _env_overrides(os.environ if environ is None else environ)
    ]
    if changes:
        source = f"{source} (with {ENV_PREFIX}* overrides)"
    changes += [
        (key.split("."), value, (flags or {}).get(key, f"option {key}"))
        for key, value in (overrides or {}).items()
    ]
    defaults = ServiceConfig().model_dump(mode="json")
    origins = {}
    for path, value, origin in changes:
        if path[0] not in merged and path[0] in defaults:
            merged[path[0]] = defaults[path[0]]
        _apply_override(merged, path, value, origin)
        origins[_key_path(tuple(int(part) if part.isdigit() else part for part in path))] = origin
    try:
        return ServiceConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, origins)) from None


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """Read a YAML config file (or the defaults when `path` is None), then apply environment variables
    and command-line `overrides` (set by the options named in `flags`)."""
    if path is None:
        return build_config({}, "defaults", environ, overrides, flags)
    path = Path(path)
    return build_config(_read_yaml(path), str(path), environ, overrides, flags)


def cameras_from_urls(urls: list[str], names: list[str] | None = None) -> list[dict[str, Any]]:
    """`--source URL` flags → camera entries (their URLs are checked when opened). The n-th `--name` names
    the n-th source; the others are named from their URL (`name_from_url`, made unique). Ids are the
    names in the id alphabet, made unique: they key Redis, the metrics and the API."""
    names = list(names or [])
    if len(names) > len(urls):
        raise ConfigError(f"--name: {len(names)} names for {len(urls)} --source URLs (one name per source)")
    cameras: list[dict[str, Any]] = []
    for index, url in enumerate(urls):
        taken = [camera["name"] for camera in cameras]
        name = names[index] if index < len(names) else _unique(name_from_url(url), taken)
        camera_id = _unique(_as_id(name), [camera["id"] for camera in cameras])
        cameras.append({"id": camera_id, "name": name, "url": url})
    return cameras


def name_from_url(url: str) -> str:
    """A camera's name from its URL: a stream's host (never its credentials), else the file or folder
    name without its suffix (/dev/video0 → video0, clip.mp4 → clip, demo → demo)."""
    host = urlsplit(url).hostname if "://" in url else None
    if host:
        return host
    return PurePath(url.removeprefix("file://").rstrip("/")).stem or url


def _as_id(name: str) -> str:
    """`name` in the camera id alphabet: other characters become '-', at most 64 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:60] or "camera"


def _unique(text: str, taken: list[str]) -> str:
    """`text`, or `text-2`, `text-3`, … if it is taken."""
    number, candidate = 1, text
    while candidate in taken:
        number += 1
        candidate = f"{text}-{number}"
    return candidate
