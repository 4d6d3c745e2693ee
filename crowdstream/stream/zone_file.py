"""Writing a camera's zones (or its model) back into the YAML config file the service was started with.

The file is the operator's: its comments, key order and quoting survive (ruamel.yaml's round trip;
PyYAML would drop every comment). A zone that keeps its name is updated in place, so its own comments
stay too. The new text is written next to the file, checked by `check` (the same loader the service
started with), the current file is kept as `<name>.bak`, and the new one takes its place with one
atomic rename: a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from crowdstream.engines.errors import CrowdstreamError

ZONE_KEYS = ("name", "polygon", "area_m2", "threshold")


class ZoneFileError(CrowdstreamError):
    """The config file cannot take the zones (unreadable, not writable)."""


class CameraNotInFile(ZoneFileError):
    """The camera came from the command line or the environment, not from the file."""


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 110
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _flow(items: Sequence[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _number(value: float) -> int | float:
    """Whole pixel coordinates and areas as integers (what a person would type)."""
    return int(value) if float(value).is_integer() else round(float(value), 2)


def zone_node(zone: dict, node: CommentedMap | None = None) -> CommentedMap:
    """A zone as a YAML mapping, its polygon on one line; `node` (the zone's old mapping) is updated in
    place so that its comments survive. Unset optional keys are left out."""
    node = CommentedMap() if node is None else node
    values = {
        "name": zone["name"],
        "polygon": _flow([_flow([_number(x), _number(y)]) for x, y in zone["polygon"]]),
        "area_m2": None if zone.get("area_m2") is None else _number(zone["area_m2"]),
        "threshold": None if zone.get("threshold") is None else _number(zone["threshold"]),
    }
    for key in list(node):
        if key not in values or values[key] is None:
            del node[key]
    for key, value in values.items():
        if value is not None:
            node[key] = value
    return node


def zones_yaml(zones: Sequence[dict]) -> str:
    """`zones:` and the list, as they would appear under a camera of the config file."""
    stream = io.StringIO()
    _yaml().dump({"zones": [zone_node(zone) for zone in zones] or _flow([])}, stream)
    return stream.getvalue()


def write_zones(
    path: Path, camera_id: str, zones: Sequence[dict], check: Callable[[Path], object]
) -> Path | None:
    """Replace camera `camera_id`'s zones in the config file at `path`; returns the backup of the
    previous version. `check(candidate)` must raise for a file the service could not start with."""

    def edit(camera: CommentedMap) -> None:
        old = {node.get("name"): node for node in camera.get("zones") or [] if isinstance(node, CommentedMap)}
        nodes = [zone_node(zone, old.get(zone["name"])) for zone in zones]
        if isinstance(camera.get("zones"), CommentedSeq) and nodes:
            camera["zones"][:] = nodes  # in place: the comments after the list stay where they were
        else:
            camera["zones"] = nodes or _flow([])

    return _edit_camera(path, camera_id, edit, check, "the zones")


def write_model(path: Path, camera_id: str, model: str | None, check: Callable[[Path], object]) -> Path:
    """Set camera `camera_id`'s `model:` in the config file at `path` (None removes the key: the
    engine's model again); returns the backup of the previous version."""

    def edit(camera: CommentedMap) -> None:
        if model is None:
            camera.pop("model", None)
        else:
            camera["model"] = model

    return _edit_camera(path, camera_id, edit, check, "the model")


def _edit_camera(
    path: Path,
    camera_id: str,
    edit: Callable[[CommentedMap], None],
    check: Callable[[Path], object],
    what: str,
) -> Path:
    """Load the file keeping its comments, `edit` the camera's mapping in place, and save it."""
    yaml = _yaml()
    try:
        data = yaml.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise ZoneFileError(f"{path}: cannot read the config file to save {what} ({exc})") from None
    edit(_camera_node(data, camera_id, path, what))
    text = io.StringIO()
    yaml.dump(data, text)
    return _replace(path, text.getvalue(), check, what)


def _camera_node(data: Any, camera_id: str, path: Path, what: str) -> CommentedMap:
    cameras = data.get("cameras") if isinstance(data, CommentedMap) else None
    for camera in cameras or []:
        if isinstance(camera, CommentedMap) and camera.get("id") == camera_id:
            return camera
    raise CameraNotInFile(
        f"{path} has no camera {camera_id!r} (it came from --source or the environment): "
        f"the change lasts until the service stops; add the camera to the file to keep {what}"
    )


def _replace(path: Path, text: str, check: Callable[[Path], object], what: str) -> Path:
    """Write `text` as the new `path` atomically, keeping the old file as `<path>.bak`."""
    backup = path.with_name(f"{path.name}.bak")
    candidate = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".new", delete=False
        ) as handle:
            candidate = Path(handle.name)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.copymode(path, candidate)
        check(candidate)
        shutil.copy2(path, backup)
        os.replace(candidate, path)
        candidate = None
    except OSError as exc:
        raise ZoneFileError(f"{path}: cannot save {what} ({exc.strerror or exc})") from None
    finally:
        if candidate is not None:
            candidate.unlink(missing_ok=True)
    return backup
