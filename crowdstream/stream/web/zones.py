"""`/api/cameras/{id}/zones`: a camera's zones as the config holds them (GET), and the page's zone
editor saving a camera's complete new zone list (PUT, JSON only, so a form on another site cannot
send one; behind the access check like every other route, so refused without credentials when auth
is on)."""

from __future__ import annotations

from aiohttp import web

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.hub import Hub
from crowdstream.stream.web.api import find_camera
from crowdstream.stream.web.bodies import json_body
from crowdstream.stream.web.errors import json_error
from crowdstream.stream.zone_editor import ZoneEditor, zone_list


class Zones:
    """Handlers of the zone editor; without an editor (an app not run by `serve`) zones are read-only
    and a PUT is refused."""

    def __init__(self, hub: Hub, editor: ZoneEditor | None) -> None:
        self.hub, self.editor = hub, editor

    async def get(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        editor = self._editor()
        return web.json_response(
            {
                "camera": feed.id,
                "frame_size": self._frame_size(feed.id),
                "zones": zone_list(editor.camera(feed.id)),
                "config_file": None if editor.path is None else str(editor.path),
            }
        )

    async def put(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        editor = self._editor()
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) != {"zones"}:
            raise json_error(web.HTTPBadRequest, 'send {"zones": [...]}, the complete list of the camera')
        try:  # one edit of any camera at a time (stream.camera_settings)
            saved = await editor.replace(feed.id, body["zones"], self._frame_size(feed.id))
        except CrowdstreamError as exc:
            raise json_error(web.HTTPBadRequest, str(exc)) from None
        return web.json_response(saved.as_dict())

    def _editor(self) -> ZoneEditor:
        if self.editor is None:
            raise json_error(web.HTTPServiceUnavailable, "zones cannot be edited in this server")
        return self.editor

    def _frame_size(self, camera_id: str) -> list[int] | None:
        """The size of the camera's frames as they arrive (the editor draws on them)."""
        feed = self.hub.cameras[camera_id]
        if feed.counted is not None:
            return list(feed.counted.reading.frame_size)
        frame = feed.live_frame()
        return None if frame is None else [frame.image.shape[1], frame.image.shape[0]]
