""" "Correct this camera": the API behind the page's snapshots, annotation view, fine-tuning and model
switch. Behind the access check like every other route (refused without credentials when auth is on);
bodies are JSON only; every refusal is a one-line JSON error.

- `/api/cameras/{id}/snapshots`: list, or take the newest counted frame with the model's heads;
- `/api/cameras/{id}/snapshots/{stem}` (+ `/image.jpg`): read, save the corrected marks, delete;
- `/api/cameras/{id}/finetune`: the job's state, start one (`{"quick": true}` for a trial), cancel it;
- `/api/cameras/{id}/model`: switch the camera's model (`{"model": ...}`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from crowdstream.engines.errors import CrowdstreamError
from crowdstream.stream.camera_models import CameraModels
from crowdstream.stream.config import ServiceConfig
from crowdstream.stream.finetune_jobs import FinetuneJobs, JobLimit
from crowdstream.stream.head_peaks import head_positions
from crowdstream.stream.hub import CameraFeed, Hub
from crowdstream.stream.label_next import next_to_correct
from crowdstream.stream.snapshots import CameraSnapshots, SnapshotError, SnapshotExists, SnapshotNotFound
from crowdstream.stream.web.api import find_camera
from crowdstream.stream.web.bodies import json_body
from crowdstream.stream.web.errors import json_error


class Teach:
    """Handlers of the snapshots, the fine-tuning job and the model switch of every camera."""

    def __init__(self, hub: Hub, config: ServiceConfig, jobs: FinetuneJobs, models: CameraModels) -> None:
        self.hub, self.config, self.jobs, self.models = hub, config, jobs, models
        self._writing = asyncio.Lock()

    def _snapshots(self, feed: CameraFeed) -> CameraSnapshots:
        return CameraSnapshots(self.config.finetune.dataset_dir(feed.id), feed.id)

    async def list(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        store = self._snapshots(feed)
        snapshots = await asyncio.to_thread(store.list)
        return web.json_response(
            {
                "camera": feed.id,
                "folder": str(self.config.finetune.dataset_dir(feed.id)),
                "snapshots": [snapshot.as_dict() for snapshot in snapshots],
                "suggested": await asyncio.to_thread(next_to_correct, store, snapshots),
            }
        )

    async def take(self, request: web.Request) -> web.Response:
        """The newest counted frame, raw, with the heads its density map shows."""
        feed = find_camera(self.hub, request)
        counted = feed.counted
        if counted is None:
            raise json_error(web.HTTPConflict, "no counted frame from this camera yet: try again in a moment")
        height, width = counted.frame.image.shape[:2]
        points = head_positions(counted.density, (width, height), counted.reading.count)
        async with self._writing:
            snapshot = await self._run(
                self._snapshots(feed).take, counted.frame.image, points, feed.model, counted.frame.seq
            )
        return web.json_response(snapshot.as_dict(), status=201)

    async def read(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        snapshot = await self._run(self._snapshots(feed).read, request.match_info["stem"])
        return web.json_response(snapshot.as_dict())

    async def image(self, request: web.Request) -> web.FileResponse:
        feed = find_camera(self.hub, request)
        path = await self._run(self._snapshots(feed).image_path, request.match_info["stem"])
        if not path.is_file():
            raise json_error(web.HTTPNotFound, "no such snapshot")
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    async def save(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        body = await json_body(request)
        async with self._writing:
            snapshot = await self._run(self._snapshots(feed).save_marks, request.match_info["stem"], body)
        return web.json_response(snapshot.as_dict())

    async def delete(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        stem = request.match_info["stem"]
        async with self._writing:
            await self._run(self._snapshots(feed).delete, stem)
        return web.json_response({"camera": feed.id, "deleted": stem})

    async def job(self, request: web.Request) -> web.Response:
        """The camera's model and its newest fine-tuning job (running or finished), if any."""
        feed = find_camera(self.hub, request)
        return web.json_response(self._job_body(feed))

    async def start(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        body = await json_body(request)
        if (
            not isinstance(body, dict)
            or not set(body) <= {"quick"}
            or not isinstance(body.get("quick", False), bool)
        ):
            raise json_error(
                web.HTTPBadRequest, 'send {"quick": true} for a trial run or {} for a normal one'
            )
        camera = next(c for c in self.config.cameras if c.id == feed.id)
        try:
            await self.jobs.start(feed.id, self.config.model_of(camera), body.get("quick", False))
        except JobLimit as exc:  # the service's limit: another camera's job runs
            raise json_error(web.HTTPTooManyRequests, str(exc), headers={"Retry-After": "60"}) from None
        except CrowdstreamError as exc:
            raise json_error(web.HTTPConflict, str(exc)) from None
        return web.json_response(self._job_body(feed), status=202)

    async def cancel(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        try:
            await self.jobs.cancel(feed.id)
        except CrowdstreamError as exc:
            raise json_error(web.HTTPConflict, str(exc)) from None
        return web.json_response(self._job_body(feed))

    async def switch(self, request: web.Request) -> web.Response:
        feed = find_camera(self.hub, request)
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) != {"model"} or not _model_name(body["model"]):
            raise json_error(web.HTTPBadRequest, 'send {"model": "<model>"} (or null for engine.model)')
        try:
            switched = await self.models.use(feed.id, body["model"])
        except CrowdstreamError as exc:
            raise json_error(web.HTTPBadRequest, str(exc)) from None
        return web.json_response(switched.as_dict())

    def _job_body(self, feed: CameraFeed) -> dict[str, Any]:
        state = self.jobs.state(feed.id)
        return {"camera": feed.id, "model": feed.model, "job": None if state is None else state.as_dict()}

    @staticmethod
    async def _run(function: Any, *arguments: Any) -> Any:
        """A snapshot operation in a thread (it reads and writes files); its error as a 4xx."""
        try:
            return await asyncio.to_thread(function, *arguments)
        except SnapshotError as exc:
            kinds = {SnapshotNotFound: web.HTTPNotFound, SnapshotExists: web.HTTPConflict}
            raise json_error(kinds.get(type(exc), web.HTTPBadRequest), str(exc)) from None


def _model_name(model: Any) -> bool:
    """A model name or path as text the switch can look at (printable, at most 1024 characters), or None."""
    return model is None or (isinstance(model, str) and 0 < len(model) <= 1024 and model.isprintable())


async def _unavailable(request: web.Request) -> web.Response:
    raise json_error(web.HTTPServiceUnavailable, "snapshots and fine-tuning are not available in this server")


def add_routes(app: web.Application, teach: Teach | None) -> None:
    """The routes; without `teach` (an app not run by `serve`) each answers 503."""

    def handler(name: str) -> Any:
        return _unavailable if teach is None else getattr(teach, name)

    snapshot = "/api/cameras/{id}/snapshots/{stem}"
    app.router.add_get("/api/cameras/{id}/snapshots", handler("list"))
    app.router.add_post("/api/cameras/{id}/snapshots", handler("take"))
    app.router.add_get(snapshot, handler("read"))
    app.router.add_put(snapshot, handler("save"))
    app.router.add_delete(snapshot, handler("delete"))
    app.router.add_get(f"{snapshot}/image.jpg", handler("image"))
    app.router.add_get("/api/cameras/{id}/finetune", handler("job"))
    app.router.add_post("/api/cameras/{id}/finetune", handler("start"))
    app.router.add_delete("/api/cameras/{id}/finetune", handler("cancel"))
    app.router.add_put("/api/cameras/{id}/model", handler("switch"))
