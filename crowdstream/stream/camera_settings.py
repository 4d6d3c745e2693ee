"""The one owner of the cameras' settings while the service runs, and of the config file they came from.

Every edit the page makes to a camera (its zones, its model) goes through `CameraSettings.change`. Under
one lock it takes the camera as it is now, builds and validates the new camera in a thread (polygon
checks are not free), rewrites that camera in the config file as the file is now on disk
(stream.zone_file: read-modify-write, checked by the service's own loader, atomic, `.bak` kept), and
only then puts the new camera into the running service. Edits never interleave, so a zone save and a
model switch sent together both survive, and the file and the service never disagree. The step runs
shielded: a request cancelled half-way cannot leave the file written and the service not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crowdstream.stream.config import CameraConfig, ServiceConfig
from crowdstream.stream.zone_file import CameraNotInFile

NO_FILE = "not saved: the service was started without a config file (crowdstream serve -c FILE)"

Update = Callable[[CameraConfig], CameraConfig]
"""The new camera from the current one; raises (a CrowdstreamError) to refuse the edit. Run in a thread."""
Write = Callable[[Path, CameraConfig, Callable[[Path], object]], Path]
"""Writes the new camera's edited part into the file (path, camera, check); returns the backup."""
Apply = Callable[[CameraConfig], None]
"""Makes the running service use the new camera (in the event loop; must not fail)."""


@dataclass(frozen=True)
class SavedCamera:
    """The outcome of an edit: the camera as it now runs, and where (if anywhere) it was saved."""

    camera: CameraConfig
    saved_to: str | None
    previous: str | None
    note: str | None


class CameraSettings:
    """The cameras of `config` (the service's, shared with everything that reads it) and the file at
    `path` (None: not started from a file); `check` loads a file the way the service was started and
    raises for one it could not start with."""

    def __init__(self, config: ServiceConfig, path: Path | None, check: Callable[[Path], object]) -> None:
        self.config, self.path, self.check = config, path, check
        self._lock = asyncio.Lock()

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera as it runs now (KeyError for an unknown id)."""
        for camera in self.config.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)

    async def change(self, camera_id: str, update: Update, write: Write, apply: Apply) -> SavedCamera:
        """Edit one camera: validate, save, apply, as one step among all edits of every camera."""
        return await asyncio.shield(asyncio.ensure_future(self._change(camera_id, update, write, apply)))

    async def _change(self, camera_id: str, update: Update, write: Write, apply: Apply) -> SavedCamera:
        async with self._lock:
            new = await asyncio.to_thread(update, self.camera(camera_id))
            saved_to = previous = None
            note = NO_FILE if self.path is None else None
            if self.path is not None:
                try:
                    backup = await asyncio.to_thread(write, self.path, new, self.check)
                    saved_to, previous = str(self.path), str(backup)
                except CameraNotInFile as exc:
                    note = f"not saved: {exc}"
            self._put(new)  # looked up by id now, after the awaits: nothing stale
            apply(new)
            return SavedCamera(new, saved_to, previous, note)

    def _put(self, camera: CameraConfig) -> None:
        cameras = self.config.cameras
        cameras[next(index for index, old in enumerate(cameras) if old.id == camera.id)] = camera
