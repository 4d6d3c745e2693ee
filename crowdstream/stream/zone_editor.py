"""Zones edited in the page: validated by the config model, saved to the config file the service was
started with, applied to the running service without a restart.

`ZoneEditor.replace` takes a camera's complete new zone list (the page sends what it shows), checks it
as `CameraConfig` checks a file (shape, polygons, unique names, limits) and against the frame the camera
delivers, and hands it to the settings owner (stream.camera_settings), which writes the file
(stream.zone_file: comments kept, atomic, the previous version kept) and then calls `apply`, one edit
of any camera at a time. Nothing is applied when the file cannot be written; a camera that is not in a
file (started from --source, or with no -c) is applied and says it was not saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.camera_settings import CameraSettings, SavedCamera
from crowdstream.stream.config import CameraConfig, format_validation_error
from crowdstream.stream.zone_file import write_zones


class ZoneEditError(CrowdstreamError):
    """Zones that the config model refuses (the message is one line naming the zone and the key)."""


@dataclass(frozen=True)
class SavedZones:
    """The outcome of an edit: the camera as it now runs, and where (if anywhere) it was saved."""

    saved: SavedCamera

    def as_dict(self) -> dict:
        return {
            "camera": self.saved.camera.id,
            "zones": zone_list(self.saved.camera),
            "saved_to": self.saved.saved_to,
            "previous": self.saved.previous,
            "note": self.saved.note,
        }


def zone_list(camera: CameraConfig) -> list[dict]:
    return [zone.model_dump(mode="json") for zone in camera.zones]


def _write(path: Path, camera: CameraConfig, check: Callable[[Path], object]) -> Path:
    return write_zones(path, camera.id, zone_list(camera), check)


class ZoneEditor:
    """The zones of the cameras of one service, edited through its settings owner; `apply` makes the
    running service count with a camera's new zones."""

    def __init__(self, settings: CameraSettings, apply: Callable[[CameraConfig], None]) -> None:
        self.settings, self.apply = settings, apply

    @property
    def path(self) -> Path | None:
        return self.settings.path

    def camera(self, camera_id: str) -> CameraConfig:
        return self.settings.camera(camera_id)

    async def replace(
        self, camera_id: str, zones: Sequence[Any], frame_size: Sequence[int] | None = None
    ) -> SavedZones:
        """Validate (in a thread), save and apply a camera's new zones; `frame_size` (the camera's
        frames as they arrive) bounds the polygons when the config gives no frame_size of its own."""

        def update(current: CameraConfig) -> CameraConfig:
            return validated(current, zones, frame_size)

        return SavedZones(await self.settings.change(camera_id, update, _write, self.apply))


def validated(current: CameraConfig, zones: Sequence[Any], frame_size: Sequence[int] | None) -> CameraConfig:
    """`current` with `zones`, checked once by the config model (inside `frame_size` when the camera
    has no frame_size of its own; the file keeps it unset)."""
    data = {**current.model_dump(), "zones": zones}
    checked_size = current.frame_size is None and frame_size is not None
    try:
        if checked_size:
            return CameraConfig.model_validate({**data, "frame_size": list(frame_size)}).model_copy(
                update={"frame_size": None}
            )
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise ZoneEditError(format_validation_error(f"camera {current.id}", exc)) from None
