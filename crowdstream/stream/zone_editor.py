"""Zones edited in the page: validated by the config model, saved to the config file the service was
started with, applied to the running service without a restart.

`ZoneEditor.replace` takes a camera's complete new zone list (the page sends what it shows), checks it
as `CameraConfig` checks a file (shape, polygons, unique names) and against the frame the camera
delivers, writes the file (stream.zone_file: comments kept, atomic, the previous version kept), then
hands the new camera config to `apply`. Nothing is applied when the file cannot be written; a camera
that is not in a file (started from --source, or with no -c) is applied and says it was not saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.config import CameraConfig, ServiceConfig, format_validation_error
from crowdstream.stream.zone_file import CameraNotInFile, write_zones


class ZoneEditError(CrowdstreamError):
    """Zones that the config model refuses (the message is one line naming the zone and the key)."""


@dataclass(frozen=True)
class SavedZones:
    """The outcome of an edit: the camera as it now runs, and where (if anywhere) it was saved."""

    camera: CameraConfig
    saved_to: str | None
    previous: str | None
    note: str | None

    def as_dict(self) -> dict:
        return {
            "camera": self.camera.id,
            "zones": zone_list(self.camera),
            "saved_to": self.saved_to,
            "previous": self.previous,
            "note": self.note,
        }


def zone_list(camera: CameraConfig) -> list[dict]:
    return [zone.model_dump(mode="json") for zone in camera.zones]


class ZoneEditor:
    """The zones of the cameras of one service. `check` loads a config file the way the service was
    started (environment and options included) and raises ConfigError if it could not start."""

    def __init__(
        self,
        config: ServiceConfig,
        path: Path | None,
        check: Callable[[Path], object],
        apply: Callable[[CameraConfig], None],
    ) -> None:
        self.config, self.path, self.check, self.apply = config, path, check, apply

    def camera(self, camera_id: str) -> CameraConfig:
        return next(camera for camera in self.config.cameras if camera.id == camera_id)

    async def replace(
        self, camera_id: str, zones: Sequence[Any], frame_size: Sequence[int] | None = None
    ) -> SavedZones:
        """Validate, save (in a thread) and apply a camera's new zones; `frame_size` (the camera's
        frames as they arrive) bounds the polygons when the config gives no frame_size of its own."""
        current = self.camera(camera_id)
        new = self._validated(current, zones, frame_size)
        saved_to = previous = note = None
        if self.path is None:
            note = "not saved: the service was started without a config file (crowdstream serve -c FILE)"
        else:
            try:
                backup = await asyncio.to_thread(
                    write_zones, self.path, camera_id, zone_list(new), self.check
                )
                saved_to, previous = str(self.path), str(backup)
            except CameraNotInFile as exc:
                note = f"not saved: {exc}"
        self.config.cameras[self.config.cameras.index(current)] = new
        self.apply(new)
        return SavedZones(new, saved_to, previous, note)

    @staticmethod
    def _validated(
        current: CameraConfig, zones: Sequence[Any], frame_size: Sequence[int] | None
    ) -> CameraConfig:
        data = {**current.model_dump(), "zones": zones}
        try:
            if current.frame_size is None and frame_size is not None:
                CameraConfig.model_validate({**data, "frame_size": list(frame_size)})  # inside the frame?
            return CameraConfig.model_validate(data)
        except ValidationError as exc:
            raise ZoneEditError(format_validation_error(f"camera {current.id}", exc)) from None
