"""The web application: the dashboard page, the JSON API, WebRTC signalling, MJPEG and snapshots,
events, metrics and probes, behind the access check and the limits. `crowdstream serve` runs it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from crowdstream.stream.alert_store import AlertStore
from crowdstream.stream.hub import Hub
from crowdstream.stream.redis_publisher import DEFAULT_PREFIX
from crowdstream.stream.redis_server import RedisInfo
from crowdstream.stream.web.api import Api
from crowdstream.stream.web.auth import Access, Login, access_middleware, check_bind
from crowdstream.stream.web.bodies import MAX_BODY_BYTES
from crowdstream.stream.web.config import HttpConfig
from crowdstream.stream.web.errors import Handler, json_errors
from crowdstream.stream.web.events import Events
from crowdstream.stream.web.limits import OpenStreams, ViewerSlots
from crowdstream.stream.web.media import Media
from crowdstream.stream.web.metrics import WebCollector
from crowdstream.stream.web.teach import Teach, add_routes
from crowdstream.stream.web.webrtc import LiveView
from crowdstream.stream.web.zones import Zones
from crowdstream.stream.zone_editor import ZoneEditor

STATIC = Path(__file__).resolve().parent / "static"
LIVE_VIEW = web.AppKey("live_view", LiveView)
VIEWER_SLOTS = web.AppKey("viewer_slots", ViewerSlots)
EVENTS = web.AppKey("events", Events)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


def create_app(
    hub: Hub,
    http: HttpConfig,
    *,
    registry: CollectorRegistry,
    redis_url: str | None,
    key_prefix: str = DEFAULT_PREFIX,
    redis_info: RedisInfo | None = None,
    alerts: AlertStore | None = None,
    zone_editor: ZoneEditor | None = None,
    teach: Teach | None = None,
) -> web.Application:
    """Build the application; raises InsecureBindError for a non-loopback bind without credentials."""
    check_bind(http)
    access = Access(http)
    app = web.Application(
        middlewares=[security_headers, json_errors, access_middleware(access)],
        client_max_size=max(http.max_sdp_bytes, MAX_BODY_BYTES),  # each endpoint checks its own
    )
    slots, streams = ViewerSlots(http.max_viewers_per_camera, http.max_viewers_total), OpenStreams()
    api = Api(hub, http, registry, redis_url, key_prefix, slots.open, redis_info, alerts)
    live, media, events = (
        LiveView(hub, http, slots),
        Media(hub, http, slots, streams),
        Events(hub, http, streams),
    )
    login, zones = Login(access, STATIC / "login.html"), Zones(hub, zone_editor)
    app[LIVE_VIEW], app[VIEWER_SLOTS], app[EVENTS] = live, slots, events
    collector = WebCollector(slots, live, events)
    registry.register(collector)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/login", login.page)
    app.router.add_post("/login", login.submit)
    app.router.add_post("/logout", login.logout)
    app.router.add_get("/api/config", api.config)
    app.router.add_get("/api/cameras", api.cameras)
    app.router.add_get("/api/cameras/{id}", api.camera)
    app.router.add_get("/api/cameras/{id}/history", api.history)
    app.router.add_get("/api/cameras/{id}/zones", zones.get)
    app.router.add_put("/api/cameras/{id}/zones", zones.put)
    add_routes(app, teach)
    app.router.add_post("/api/cameras/{id}/offer", live.offer)
    app.router.add_get("/api/cameras/{id}/mjpeg", media.mjpeg)
    app.router.add_get("/api/cameras/{id}/snapshot.jpg", media.snapshot)
    app.router.add_get("/api/alerts", api.alerts)
    app.router.add_get("/api/events", events.stream)
    app.router.add_get("/api/openapi.json", api.openapi_document)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)

    async def shutdown(app: web.Application) -> None:
        streams.cancel_all()
        await live.close_all()

    async def cleanup(app: web.Application) -> None:
        registry.unregister(collector)
        await api.close()

    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
