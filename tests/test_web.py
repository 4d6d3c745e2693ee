"""The HTTP API over the real worker counting the demo clip: cameras, snapshots, events, history from a
real redis-server, probes, metrics, the OpenAPI document, and every bad input answered with JSON."""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources

import aiohttp
import cv2
import jsonschema
import numpy as np
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from yarl import URL

from crowdstream.stream.overlay import render_overlay
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.redis_publisher import RedisPublisher
from crowdstream.stream.web.app import EVENTS
from crowdstream.stream.web.config import HttpConfig
from tests.web_support import get_json, serve

OPENAPI = json.loads(resources.files("crowdstream.stream.web").joinpath("openapi.json").read_text())


def check_schema(instance: object, name: str) -> None:
    """Validate a response body against a schema of the OpenAPI document (JSON Schema 2020-12)."""
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(OPENAPI))
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry
    )
    validator.validate(instance)


@pytest.fixture
async def served():
    async with serve() as running:
        yield running


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


async def test_cameras_list_the_hub_state(served, session) -> None:
    await served.pause_counting()  # the counts now stay as they are
    status, body = await get_json(session, f"{served.url}/api/cameras")
    assert status == 200
    check_schema(body, "CameraList")
    by_id = {camera["id"]: camera for camera in body["cameras"]}
    assert set(by_id) == {"gate", "hall"}
    for camera_id, camera in by_id.items():
        counted = served.hub.cameras[camera_id].counted
        assert camera["status"] == "up" and camera["fps"] == pytest.approx(served.clip.fps, abs=0.01)
        index = next(i for i, f in enumerate(served.clip.frames) if f is counted.frame.image)
        assert camera["count"] == pytest.approx(
            served.clip.counts[index], abs=0.01
        )  # the model on that frame
        assert camera["timestamp"] == pytest.approx(counted.frame.timestamp, abs=1e-3)
        assert [zone["name"] for zone in camera["zones"]] == ["left half"]
    assert by_id["gate"]["over_threshold"] and by_id["gate"]["zones"][0]["over_threshold"]
    assert not by_id["hall"]["over_threshold"]
    status, one = await get_json(session, f"{served.url}/api/cameras/hall")
    assert status == 200 and one["id"] == "hall" and one["name"] == "Hall"
    assert one["url"] == "rtsp://admin:***@10.0.0.7:554/stream1" and by_id["gate"]["url"] == "demo"
    assert "s3cret" not in json.dumps(body)  # the password is never shown
    check_schema(one, "Camera")


@pytest.mark.parametrize(
    "path",
    [
        "/api/cameras/nope",
        "/api/cameras/..%2F..%2Fetc%2Fpasswd",
        "/api/cameras/%2e%2e",
        "/api/cameras/gate%00",
        "/api/cameras/nope/history",
        "/api/cameras/..%2Fgate/snapshot.jpg",
        "/api/cameras/nope/mjpeg",
        "/api/nothing",
        "/static/..%2F..%2Fapp.py",
        "/static/../app.py",
        "/static/%2e%2e/%2e%2e/hub.py",
    ],
)
async def test_unknown_ids_and_traversal_get_json_errors(served, session, path: str) -> None:
    async with session.get(URL(served.url + path, encoded=True)) as response:
        body = await response.read()
        assert response.status in (403, 404), path
        assert response.content_type == "application/json"
        error = json.loads(body)
        check_schema(error, "Error")
        assert b"import" not in body and b"root:" not in body


async def test_wrong_method_is_a_json_405(served, session) -> None:
    async with session.delete(f"{served.url}/api/cameras") as response:
        assert response.status == 405
        assert (await response.json())["status"] == 405


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """`image` as a JPEG of `quality` shows it (encoded here with OpenCV, as any client could)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR).astype(np.float32)


async def test_snapshot_is_the_annotated_frame(served, session) -> None:
    """The JPEG is the counted frame with its overlay: compared with that same frame drawn and encoded
    here, annotated and raw (the worker is paused, so the snapshot and the comparison see one frame).
    Comparing JPEG with JPEG leaves no encoding noise whose size depends on which frame was counted."""
    await served.pause_counting()
    async with session.get(f"{served.url}/api/cameras/gate/snapshot.jpg") as response:
        assert response.status == 200 and response.content_type == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(await response.read(), np.uint8), cv2.IMREAD_COLOR).astype(
            np.float32
        )
    camera = served.hub.cameras["gate"]
    counted = camera.counted
    raw = counted.frame.image
    annotated = render_overlay(raw, counted.density, counted.reading, camera.zones)
    assert image.shape == raw.shape
    quality = HttpConfig().jpeg_quality  # what `serve()` runs with
    expected, unannotated = jpeg_roundtrip(annotated, quality), jpeg_roundtrip(raw, quality)
    assert np.abs(image - expected).mean() < 0.5  # the same picture, encoded alike
    drawn = np.abs(annotated.astype(np.float32) - raw).mean(axis=2) > 30  # where the overlay shows
    assert drawn.mean() > 0.001
    to_annotated = np.abs(image - expected)[drawn].mean()
    to_raw = np.abs(image - unannotated)[drawn].mean()
    assert to_annotated < 0.1 * to_raw, (to_annotated, to_raw)


async def test_snapshot_before_the_first_frame_is_503(session) -> None:
    async with (
        serve(silent=("hall",)) as served,
        session.get(f"{served.url}/api/cameras/hall/snapshot.jpg") as response,
    ):
        assert response.status == 503 and response.headers["Retry-After"] == "1"


async def read_events(response: aiohttp.ClientResponse, count: int, kind: str = "reading") -> list[dict]:
    """The next `count` events of one kind (`reading` or `alert`) from an SSE stream."""
    events, data, event = [], [], None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            if event == kind:
                events.append(json.loads("".join(data)))
            data, event = [], None
            if len(events) == count:
                return events
    return events


async def test_events_stream_readings(served, session) -> None:
    async with session.get(f"{served.url}/api/events?camera=gate") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        events = await asyncio.wait_for(read_events(response, 6), 10)
    assert {event["camera"] for event in events} == {"gate"}
    for event in events:
        check_schema(event, "Reading")
    assert events[-1]["timestamp"] > events[0]["timestamp"]
    for event in events:  # each is the model's count of one clip frame (counted alone, independently)
        assert min(abs(event["count"] - count) for count in served.clip.counts) < 0.011, event["count"]


async def test_alerts_from_a_crossing_in_the_api_and_the_event_stream(served, session) -> None:
    status, body = await get_json(session, f"{served.url}/api/alerts")
    assert status == 200
    check_schema(body, "AlertList")
    (gate,) = body["alerts"]  # gate's zone has a 1-person limit: over it from the first counted frame
    assert (gate["camera"], gate["zone"], gate["ongoing"], gate["unit"]) == (
        "gate",
        "left half",
        True,
        "people",
    )
    assert gate["peak_people"] > gate["threshold"] == 1.0 and gate["fruin_level"] is None
    async with session.get(f"{served.url}/api/events?camera=hall") as response:
        served.worker.tasks["hall"].zones[0].threshold = 0.5  # the hall's zone now crosses its limit
        (alert,) = await asyncio.wait_for(read_events(response, 1, "alert"), 10)
    check_schema(alert, "Alert")
    assert (alert["camera"], alert["zone"], alert["ongoing"], alert["threshold"]) == (
        "hall",
        "left half",
        True,
        0.5,
    )
    status, body = await get_json(session, f"{served.url}/api/alerts?camera=hall")
    assert [a["id"] for a in body["alerts"]] == [alert["id"]]
    status, body = await get_json(session, f"{served.url}/api/alerts?limit=1")
    assert [a["camera"] for a in body["alerts"]] == ["hall"]  # the newest first
    served.worker.tasks["hall"].zones[0].threshold = 10_000.0  # under again: ends after end_after_s (1 s)
    await eventually_ended(session, f"{served.url}/api/alerts?camera=hall")


async def eventually_ended(session: aiohttp.ClientSession, url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = await get_json(session, url)
        if body["alerts"] and not body["alerts"][0]["ongoing"]:
            assert body["alerts"][0]["ended"] >= body["alerts"][0]["started"]
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the alert never ended: {body}")


@pytest.mark.parametrize("query", ["camera=nope", "limit=0", "limit=1001", "limit=x"])
async def test_bad_alerts_parameters(served, session, query: str) -> None:
    status, body = await get_json(session, f"{served.url}/api/alerts?{query}")
    assert status == (404 if query.startswith("camera") else 400)
    check_schema(body, "Error")


async def test_events_limits_and_unknown_camera(served, session) -> None:
    status, _ = await get_json(session, f"{served.url}/api/events?camera=nope")
    assert status == 404
    served.app[EVENTS].http = served.app[EVENTS].http.model_copy(update={"max_event_clients": 1})
    async with session.get(f"{served.url}/api/events") as first:
        await asyncio.wait_for(read_events(first, 1), 10)
        status, body = await get_json(session, f"{served.url}/api/events")
        assert status == 503 and "event streams" in body["error"]
    # the server notices the closed stream at its next write (the next reading): then its slot is free
    deadline = time.monotonic() + 10
    while True:
        async with session.get(f"{served.url}/api/events") as again:
            if again.status == 200:
                break
        assert time.monotonic() < deadline, "the closed stream's slot was never freed"
        await asyncio.sleep(0.05)


async def test_history_from_redis(redis_server, session) -> None:
    async with serve(redis_url=redis_server.url) as served:
        publisher = RedisPublisher(redis_server.url)
        writer = asyncio.create_task(publisher.run())
        start = time.time() - 60
        for i in range(5):
            publisher.publish(CameraReading("gate", start + i, 10.0 + i, 10.0 + i))
        assert await publisher.flush(5)
        writer.cancel()
        await publisher.aclose()
        status, body = await get_json(session, f"{served.url}/api/cameras/gate/history?since={start + 2}")
        assert status == 200
        check_schema(body, "History")
        assert [r["count"] for r in body["records"]] == [12.0, 13.0, 14.0]
        status, body = await get_json(session, f"{served.url}/api/cameras/gate/history?since={start}&limit=2")
        assert [r["count"] for r in body["records"]] == [10.0, 11.0]
        status, body = await get_json(session, f"{served.url}/api/cameras/hall/history")
        assert status == 200 and body["records"] == []
        redis_server.kill()
        status, body = await get_json(session, f"{served.url}/api/cameras/gate/history")
        assert status == 503 and "Redis" in body["error"]


@pytest.mark.parametrize(
    "query",
    [
        "since=abc",
        "since=nan",
        "since=inf",
        "since=-1",
        "since=1e20",
        "since=",
        "limit=0",
        "limit=1.5",
        "limit=100001",
        "limit=x",
        "since=%00",
    ],
)
async def test_bad_history_parameters_are_400(served, session, query: str) -> None:
    status, body = await get_json(session, f"{served.url}/api/cameras/gate/history?{query}")
    assert status == 400, (query, body)
    check_schema(body, "Error")


async def test_history_without_redis_is_503(served, session) -> None:
    status, body = await get_json(session, f"{served.url}/api/cameras/gate/history")
    assert status == 503 and "Redis" in body["error"]


async def test_probes_and_metrics(served, session) -> None:
    await served.pause_counting()  # the worker would report the cameras' real status again
    status, body = await get_json(session, f"{served.url}/healthz")
    assert status == 200 and body["status"] == "ok"
    check_schema(body, "Health")
    status, body = await get_json(session, f"{served.url}/readyz")
    assert status == 200 and body == {
        "ready": True,
        "model_loaded": True,
        "cameras": {"gate": "up", "hall": "up"},
    }
    served.hub.cameras["hall"].status = "starting"
    status, body = await get_json(session, f"{served.url}/readyz")
    assert status == 503 and not body["ready"]
    check_schema(body, "Ready")
    served.hub.ready = False
    served.hub.cameras["hall"].status = "up"
    status, body = await get_json(session, f"{served.url}/readyz")
    assert status == 503 and not body["model_loaded"]
    async with session.get(f"{served.url}/metrics") as response:
        assert response.status == 200 and response.content_type == "text/plain"
        assert "crowd_test_gauge 3.0" in await response.text()


async def test_openapi_documents_every_route(served, session) -> None:
    status, document = await get_json(session, f"{served.url}/api/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    routes = {route.resource.canonical for route in served.app.router.routes() if route.method != "HEAD"}
    page_routes = {"/", "/static", "/login", "/logout"}
    assert routes - page_routes == set(document["paths"])


async def test_page_and_static_files(served, session) -> None:
    async with session.get(f"{served.url}/") as response:
        assert response.status == 200 and "<video" in await response.text()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for name in ("app.js", "style.css"):
        async with session.get(f"{served.url}/static/{name}") as response:
            assert response.status == 200 and len(await response.read()) > 500


def test_http_config_rejects_short_tokens() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        HttpConfig(token="short")
