"""The JSON API: cameras and their newest counts from the hub, count history from the Redis Stream,
health and readiness probes, Prometheus metrics and the OpenAPI document. Answers that carry readings
are written by web.bodies.dumps: never a bare NaN or Infinity, which would stop the page reading them."""

from __future__ import annotations

import json
import math
import time
from importlib import resources

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.exceptions import RedisError

from crowdstream.stream.alert_store import AlertStore
from crowdstream.stream.hub import CameraFeed, Hub
from crowdstream.stream.redis_publisher import counts_key
from crowdstream.stream.redis_server import RedisInfo
from crowdstream.stream.web.bodies import dumps
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.errors import json_error

HISTORY_WINDOW_S = 300.0  # `since` defaults to this long ago
HISTORY_MAX = 10_000  # most records one history request returns
ALERTS_DEFAULT, ALERTS_MAX = 100, 1000  # alerts one /api/alerts request returns


def find_camera(hub: Hub, request: web.Request) -> CameraFeed:
    """The camera named by the `{id}` path parameter, or a 404 JSON error."""
    camera = hub.cameras.get(request.match_info["id"])
    if camera is None:
        raise json_error(web.HTTPNotFound, "no such camera")
    return camera


def camera_summary(camera: CameraFeed, viewers: int) -> dict:
    """What the page and API clients need to show one camera."""
    reading = camera.reading.as_dict() if camera.reading else None
    zones = (
        reading["zones"]
        if reading
        else [
            {
                "name": zone.name,
                "count": None,
                "density": None,
                "threshold": zone.threshold,
                "over_threshold": False,
            }
            for zone in camera.zones
        ]
    )
    health = camera.health
    return {
        "id": camera.id,
        "name": camera.name,
        "url": camera.url,
        "status": health.status,
        "status_since": round(health.since, 3),
        "last_error": health.last_error,
        "reconnects": health.reconnects,
        "next_retry": None if health.next_retry is None else round(health.next_retry, 3),
        "fps": round(camera.fps, 2),
        "count": reading["count"] if reading else None,
        "smoothed": reading["smoothed"] if reading else None,
        "timestamp": reading["timestamp"] if reading else None,
        "uncertain": reading["uncertain"] if reading else None,
        "uncertainty": reading["uncertainty"] if reading else None,
        "uncertain_share": reading["uncertain_share"] if reading else None,
        "uncertain_reason": reading["uncertain_reason"] if reading else None,
        "zones": zones,
        "viewers": viewers,
        "model": camera.model,
        "over_threshold": any(zone["over_threshold"] for zone in zones),
    }


def parse_float(request: web.Request, name: str, default: float) -> float:
    """A finite float query parameter, or a 400 JSON error naming it."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise json_error(web.HTTPBadRequest, f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise json_error(web.HTTPBadRequest, f"{name} must be a finite number")
    return value


def history_record(stream_id: bytes, fields: dict[bytes, bytes]) -> dict:
    """One Redis Stream entry of the publisher as JSON (numbers as numbers, zones decoded)."""
    text = {key.decode(): value.decode() for key, value in fields.items()}
    record: dict = {"id": stream_id.decode()}
    for key in ("timestamp", "count", "smoothed", "frame_age"):
        if key in text:
            record[key] = float(text[key])
    record["zones"] = json.loads(text["zones"]) if text.get("zones") else []
    return record


class Api:
    """Handlers of the JSON endpoints; `viewers` reports open live streams per camera."""

    def __init__(
        self,
        hub: Hub,
        http: HttpConfig,
        registry: CollectorRegistry,
        redis_url: str | None,
        key_prefix: str,
        viewers: dict[str, int],
        redis_info: RedisInfo | None = None,
        alert_store: AlertStore | None = None,
    ) -> None:
        self.hub, self.http, self.registry, self.key_prefix = hub, http, registry, key_prefix
        self.viewers, self.redis_info, self.alert_store = viewers, redis_info, alert_store
        self.redis = (
            aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
            if redis_url
            else None
        )
        self.openapi = resources.files("crowdstream.stream.web").joinpath("openapi.json").read_bytes()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    def summary(self, camera: CameraFeed) -> dict:
        return camera_summary(camera, self.viewers.get(camera.id, 0))

    async def cameras(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"cameras": [self.summary(c) for c in self.hub.cameras.values()]}, dumps=dumps
        )

    async def camera(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary(find_camera(self.hub, request)), dumps=dumps)

    async def config(self, request: web.Request) -> web.Response:
        """What the page needs to connect: ICE servers (with TURN credentials) and the frame rate; and
        which Redis holds the counts (with the redis-cli command that reads them), if any."""
        servers = [server.model_dump(exclude_none=True) for server in self.http.ice_servers]
        redis = self.redis_info.as_dict() if self.redis_info else None
        return web.json_response({"ice_servers": servers, "live_fps": self.http.live_fps, "redis": redis})

    async def history(self, request: web.Request) -> web.Response:
        """Count records since `since` (Unix seconds; default five minutes ago), oldest first."""
        camera = find_camera(self.hub, request)
        now = time.time()
        since = parse_float(request, "since", now - HISTORY_WINDOW_S)
        limit = parse_float(request, "limit", HISTORY_MAX)
        if not 0 <= since <= now + 86400:
            raise json_error(web.HTTPBadRequest, "since must be Unix seconds between 0 and now")
        if not 1 <= limit <= HISTORY_MAX or limit != int(limit):
            raise json_error(web.HTTPBadRequest, f"limit must be an integer from 1 to {HISTORY_MAX}")
        if self.redis is None:
            raise json_error(web.HTTPServiceUnavailable, "history needs Redis, which is not configured")
        try:
            entries = await self.redis.xrange(
                counts_key(self.key_prefix, camera.id), min=str(int(since * 1000)), max="+", count=int(limit)
            )
        except RedisError as exc:
            raise json_error(web.HTTPServiceUnavailable, f"history is unavailable: Redis: {exc}") from None
        records = [history_record(stream_id, fields) for stream_id, fields in entries]
        return web.json_response({"camera": camera.id, "since": since, "records": records}, dumps=dumps)

    async def alerts(self, request: web.Request) -> web.Response:
        """The newest alerts first, of every camera or of `?camera=ID`, at most `limit` (default 100)."""
        camera = request.query.get("camera")
        if camera is not None and camera not in self.hub.cameras:
            raise json_error(web.HTTPNotFound, "no such camera")
        limit = parse_float(request, "limit", ALERTS_DEFAULT)
        if not 1 <= limit <= ALERTS_MAX or limit != int(limit):
            raise json_error(web.HTTPBadRequest, f"limit must be an integer from 1 to {ALERTS_MAX}")
        alerts = await self.alert_store.recent(camera, int(limit)) if self.alert_store else []
        return web.json_response({"alerts": alerts})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "uptime_s": round(time.time() - self.hub.started, 1)})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready once the model is loaded and every camera has been opened (or has failed to)."""
        statuses = {camera.id: camera.status for camera in self.hub.cameras.values()}
        ready = self.hub.ready and "starting" not in statuses.values() and "up" in statuses.values()
        body = {"ready": ready, "model_loaded": self.hub.ready, "cameras": statuses}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def openapi_document(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type="application/json")
