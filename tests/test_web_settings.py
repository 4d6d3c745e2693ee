"""Settings and jobs of a real service (two demo cameras, a token, a config file) under concurrent and
hostile clients: zone saves and model switches fired together lose nothing and the file and the API
agree; hostile bodies on every JSON endpoint are 4xx, change nothing and log no traceback; a deleted
zone leaves /metrics; of 8 fine-tune starts sent together one runs, and DELETE leaves no process.

One service runs for the whole module, in a thread with its own event loop (hypothesis drives it
synchronously); each test states what it changes and checks it from its own starting point."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdstream.stream.config import load_config
from crowdstream.stream.service import Service
from tests.conftest import process_gone, until, wait_until

TOKEN = "a-token-of-twenty-chars"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """\
# two cameras of the concourse
cameras:
  - id: north
    name: North   # kept by every edit
    url: demo
    max_fps: 4
  - id: south
    url: demo
    max_fps: 4
redis:
  embedded: false
finetune:
  data_dir: {data}
http:
  port: 0
  token: {token}
  offer_rate_per_minute: 100000
"""


class Problems(logging.Handler):
    """Every record at ERROR or above, and every record carrying a traceback, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {self.format(r) if r.exc_info else ''}" for r in self.records]


@dataclass
class Running:
    service: Service
    url: str
    path: Path
    problems: Problems

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=BEARER, timeout=30)


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("serve")
    path = folder / "cameras.yaml"
    path.write_text(CONFIG.format(data=folder / "data", token=TOKEN))
    problems = Problems()
    logging.getLogger().addHandler(problems)
    started, holder = threading.Event(), {}

    async def main() -> None:
        service = Service(load_config(path, environ={}), path, lambda p: load_config(p, environ={}))
        holder["stop"] = stop = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        try:
            await service.start()
            holder["service"] = service
        finally:
            started.set()
        try:
            await stop.wait()
        finally:
            await service.stop()

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the fixture
            holder["error"] = exc
            started.set()

    thread = threading.Thread(target=thread_main, name="served", daemon=True)
    thread.start()
    assert started.wait(180), "the service did not start in 180 s"
    if "service" not in holder:
        raise holder.get("error") or RuntimeError("the service did not start")
    service = holder["service"]
    served = Running(service, f"http://127.0.0.1:{service.bound_port}", path, problems)
    wait_until(
        lambda: all(c["count"] is not None for c in served.get("/api/cameras").json()["cameras"]),
        60,
        "every camera counted",
    )
    try:
        yield served
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        logging.getLogger().removeHandler(problems)


def strict_json(text: str) -> object:
    """JSON as any other parser reads it: a bare NaN or Infinity fails."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in an answer"))


def in_file(path: Path, camera: str) -> dict:
    return next(c for c in yaml.safe_load(path.read_text())["cameras"] if c["id"] == camera)


# concurrent edits


def zones_of_round(number: int) -> list[dict]:
    polygon = [[10, 10], [100 + number, 10], [100, 90]]
    return [{"name": f"round {number}", "polygon": polygon, "area_m2": 10 + number, "threshold": number}]


MODELS = [None, "crowd-lite0-int8", None, "crowd-lite0"]  # int8 is the default engine's file; lite0 loads


async def fire_together(session: aiohttp.ClientSession, url: str, requests_: list[tuple[str, dict]]) -> list:
    """PUT every (path, body) at once: each waits at a barrier, then sends on its own connection."""
    barrier = asyncio.Barrier(len(requests_))

    async def put(path: str, body: dict) -> tuple[int, dict]:
        await barrier.wait()
        async with session.put(f"{url}{path}", json=body, headers=BEARER) as response:
            return response.status, await response.json()

    return await asyncio.gather(*(put(path, body) for path, body in requests_))


@pytest.mark.parametrize(
    "cameras", [("north", "north"), ("north", "south")], ids=["one camera", "two cameras"]
)
async def test_zone_saves_and_model_switches_sent_together_all_survive(running, cameras) -> None:
    zone_camera, model_camera = cameras
    expected = {camera: {"zones": None, "model": None} for camera in ("north", "south")}
    for camera in expected:
        expected[camera]["zones"] = running.get(f"/api/cameras/{camera}/zones").json()["zones"]
        expected[camera]["model"] = in_file(running.path, camera).get("model")
    async with aiohttp.ClientSession() as session:
        for number in range(12):
            zones, model = zones_of_round(number), MODELS[number % len(MODELS)]
            answers = await fire_together(
                session,
                running.url,
                [
                    (f"/api/cameras/{zone_camera}/zones", {"zones": zones}),
                    (f"/api/cameras/{model_camera}/model", {"model": model}),
                ],
            )
            assert [status for status, _ in answers] == [200, 200], answers
            expected[zone_camera]["zones"], expected[model_camera]["model"] = zones, model
            for camera, want in expected.items():
                stored = in_file(running.path, camera)
                assert stored.get("zones", []) == want["zones"], (number, camera)
                assert stored.get("model") == want["model"], (number, camera)
                assert stored["url"] == "demo" and stored.get("max_fps") == 4
                listed = running.get(f"/api/cameras/{camera}/zones").json()["zones"]
                assert listed == want["zones"], (number, camera)
                shown = running.get(f"/api/cameras/{camera}").json()
                assert shown["model"] == ("crowd-lite0" if want["model"] == "crowd-lite0" else "default")
    for camera, want in expected.items():  # counted with them from the next frame on
        names = [zone["name"] for zone in want["zones"]]
        wait_until(
            lambda c=camera, n=names: (
                [z["name"] for z in running.get(f"/api/cameras/{c}").json()["zones"]] == n
            ),
            60,
            f"camera {camera} counting with its saved zones",
        )
    text = running.path.read_text()
    assert "# two cameras of the concourse" in text and "# kept by every edit" in text
    assert running.path.with_name("cameras.yaml.bak").is_file()
    assert not [p for p in running.path.parent.iterdir() if p.name.endswith(".new")]


# metrics


def zone_series(running: Running, camera: str, zone: str) -> bool:
    metrics = requests.get(f"{running.url}/metrics", timeout=30).text
    return f'crowd_people{{camera="{camera}",zone="{zone}"}}' in metrics


def test_a_deleted_zone_leaves_metrics(running) -> None:
    zone = {"name": "short lived", "polygon": [[10, 10], [300, 10], [300, 200]], "area_m2": 20}
    put = requests.put(
        f"{running.url}/api/cameras/south/zones", json={"zones": [zone]}, headers=BEARER, timeout=30
    )
    assert put.status_code == 200, put.text
    wait_until(lambda: zone_series(running, "south", "short lived"), 30, "the zone's series exported")
    put = requests.put(
        f"{running.url}/api/cameras/south/zones", json={"zones": []}, headers=BEARER, timeout=30
    )
    assert put.status_code == 200, put.text
    wait_until(lambda: not zone_series(running, "south", "short lived"), 5, "the zone's series removed")
    time.sleep(2)  # several more counted frames: nothing brings it back
    metrics = requests.get(f"{running.url}/metrics", timeout=30).text
    assert 'zone="short lived"' not in metrics and 'crowd_people{camera="south",zone=""}' in metrics


# fine-tuning

STAND_IN = textwrap.dedent(
    """
    import json, subprocess, sys, time
    out = sys.argv[sys.argv.index("-o") + 1]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(out + ".pids", "w").write(json.dumps([__import__("os").getpid(), child.pid]))
    print(json.dumps({"event": "start"}), flush=True)
    time.sleep(120)
    """
)


async def test_eight_starts_sent_together_run_one_job_and_delete_leaves_no_process(running, tmp_path) -> None:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    running.service.jobs.program = [sys.executable, str(script)]
    for camera in ("north", "south"):
        folder = running.service.config.finetune.dataset_dir(camera)
        folder.mkdir(parents=True, exist_ok=True)
        for stem in ("20260101T000000-1", "20260101T000000-2"):  # one to train on, one to judge by
            (folder / f"{stem}.json").write_text('{"points": []}')
    url = f"{running.url}/api/cameras/north/finetune"
    async with aiohttp.ClientSession() as session:
        barrier = asyncio.Barrier(8)

        async def start() -> tuple[int, dict]:
            await barrier.wait()
            async with session.post(url, json={"quick": True}, headers=BEARER) as response:
                return response.status, await response.json()

        answers = await asyncio.gather(*(start() for _ in range(8)))
        assert sorted(status for status, _ in answers) == [202] + [409] * 7, answers
        assert all("already being fine-tuned" in body["error"] for status, body in answers if status == 409)
        job = next(body["job"] for status, body in answers if status == 202)
        async with session.post(
            f"{running.url}/api/cameras/south/finetune", json={}, headers=BEARER
        ) as response:
            refused = await response.json()
            assert response.status == 429 and "running now: camera north (started" in refused["error"]
        pids_file = Path(job["model"] + ".pids")
        await until(pids_file.exists, 30, "the fine-tune wrote its process ids")
        pids = json.loads(pids_file.read_text())
        assert not any(process_gone(pid) for pid in pids)
        async with session.delete(url, headers=BEARER) as response:
            cancelled = await response.json()
            assert response.status == 200 and cancelled["job"]["state"] == "cancelled"
        assert all(process_gone(pid) for pid in pids)  # the answer came after the whole group ended
        async with session.delete(url, headers=BEARER) as response:
            assert response.status == 200 and (await response.json()) == cancelled  # idempotent
        models = running.service.config.finetune.models_dir("north")
        assert [p.name for p in models.glob("*.log")] == [Path(job["model"]).with_suffix(".log").name]


# hostile bodies

BAD_NUMBERS = [
    "1e400",
    "-1e400",
    "Infinity",
    "-Infinity",
    "NaN",
    "1" + "0" * 400,
    "9" * 5000,
    "9007199254740993",
]
BAD_TEXT = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=5).map(
    lambda text: json.dumps(f"zone{text}")
)
DEEP = st.integers(9, 50_000).map(lambda depth: "[" * depth + "]" * depth)
WRONG = st.sampled_from(["{}", "[]", "[[1, 2]]", '{"a": [1]}'])  # wrong for every slot below
BAD_VALUE = st.one_of(st.sampled_from(BAD_NUMBERS), DEEP, WRONG)
NOT_A_NUMBER = st.one_of(BAD_VALUE, st.sampled_from(['"5"', "true", "null"]))
BAD_NAME = st.one_of(
    BAD_TEXT, BAD_VALUE, st.sampled_from(["5", "true", "null", json.dumps("x" * 65), '" padded "'])
)

ZONE = '{{"zones": [{{"name": {name}, "polygon": [[{x}, 10], [200, 10], [200, 200]], "area_m2": {area}, "threshold": {threshold}}}]}}'
ZONE_SLOTS = {"name": '"ok"', "x": "10", "area": "12", "threshold": "2"}


@st.composite
def zone_bodies(draw) -> str:
    slot = draw(st.sampled_from(sorted(ZONE_SLOTS)))
    bad = draw(BAD_NAME if slot == "name" else NOT_A_NUMBER.filter(lambda value: value != "null"))
    return ZONE.format(**{**ZONE_SLOTS, slot: bad})


MARKS = '{{"points": [[{x}, {y}]], "empty_regions": []}}'
WHOLE = st.one_of(
    DEEP,
    st.sampled_from(BAD_NUMBERS),
    st.sampled_from(['{"zones": ', "", "[1, 2", '{"a": 1}}', '{"a" 1}']),
    st.integers(9, 3000).map(lambda depth: '{"zones": ' + "[" * depth + "]" * depth + "}"),
)


@st.composite
def hostile(draw) -> tuple[str, str, str | bytes, str]:
    """(method, path, body, content type) for one JSON endpoint, the body wrong in one place."""
    endpoint = draw(st.sampled_from(["zones", "model", "marks", "finetune", "offer"]))
    whole = draw(st.booleans())
    bad = draw(WHOLE) if whole else None
    if endpoint == "zones":
        body = bad or draw(zone_bodies())
        request = ("PUT", "/api/cameras/north/zones")
    elif endpoint == "model":
        model = draw(
            st.one_of(
                BAD_NAME.filter(lambda v: v != "null"), st.sampled_from(['"/etc/passwd"', '"../x.onnx"'])
            )
        )
        body = bad or f'{{"model": {model}}}'
        request = ("PUT", "/api/cameras/north/model")
    elif endpoint == "marks":
        x, y = draw(st.permutations([draw(NOT_A_NUMBER), "10"]))
        body = bad or MARKS.format(x=x, y=y)
        request = ("PUT", "/api/cameras/north/snapshots/{stem}")
    elif endpoint == "finetune":
        body = bad or f'{{"quick": {draw(NOT_A_NUMBER.filter(lambda v: v != "true"))}}}'
        request = ("POST", "/api/cameras/north/finetune")
    else:
        body = bad or f'{{"type": "offer", "sdp": {draw(st.one_of(NOT_A_NUMBER, BAD_TEXT))}}}'
        request = ("POST", "/api/cameras/north/offer")
    content_type = draw(
        st.sampled_from(["application/json"] * 8 + ["text/plain", "application/x-www-form-urlencoded"])
    )
    encoded: str | bytes = body if draw(st.integers(0, 20)) != 0 else body.encode() + b"\xff"
    return (*request, encoded, content_type)


@pytest.fixture(scope="module")
def snapshot(running) -> str:
    response = requests.post(f"{running.url}/api/cameras/north/snapshots", headers=BEARER, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["stem"]


def test_hostile_bodies_on_every_json_endpoint_are_4xx_and_change_nothing(running, snapshot) -> None:
    config = running.path.read_bytes()
    marks = running.get(f"/api/cameras/north/snapshots/{snapshot}").json()
    before = len(running.problems.records)
    session = requests.Session()
    statuses: dict[str, set[int]] = {}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(hostile())
    def check(case: tuple[str, str, str | bytes, str]) -> None:
        method, path, body, content_type = case
        path = path.format(stem=snapshot)
        headers = {**BEARER, "Content-Type": content_type}
        response = session.request(method, f"{running.url}{path}", data=body, headers=headers, timeout=60)
        assert 400 <= response.status_code < 500, (path, str(body)[:200], response.status_code, response.text)
        assert strict_json(response.text)["status"] == response.status_code
        statuses.setdefault(path.rsplit("/", 1)[-1], set()).add(response.status_code)
        assert running.path.read_bytes() == config

    check()
    assert running.get(f"/api/cameras/north/snapshots/{snapshot}").json() == marks
    assert running.service.jobs.running == []
    for answer in (running.get("/api/cameras"), running.get("/api/cameras/north")):
        assert answer.status_code == 200 and strict_json(answer.text)
    assert running.problems.lines()[before:] == []
    assert {400, 415} <= statuses["zones"] and 400 in statuses["offer"], statuses


def test_the_event_stream_is_json_any_parser_reads(running) -> None:
    with requests.get(f"{running.url}/api/events", headers=BEARER, stream=True, timeout=30) as response:
        data = (line[len(b"data: ") :] for line in response.iter_lines() if line.startswith(b"data: "))
        events = [strict_json(next(data).decode()) for _ in range(4)]
    assert all("camera" in event for event in events)


def test_known_hostile_cases_of_the_issue(running, snapshot) -> None:
    """The cases issue 26 found, one by one, each a 4xx that leaves the file as it was."""
    config = running.path.read_bytes()
    deep = "[" * 100_000 + "]" * 100_000
    zone = {"name": "z", "polygon": [[10, 10], [200, 10], [200, 200]]}
    cases = [
        ("PUT", "/api/cameras/north/zones", deep, 400),
        ("POST", "/api/cameras/north/offer", deep[80_000:-80_000], 400),  # within the offer's 64 KiB
        (
            "PUT",
            "/api/cameras/north/zones",
            json.dumps({"zones": [{**zone, "threshold": 1}]}).replace("1}", "1e400}"),
            400,
        ),
        ("PUT", "/api/cameras/north/zones", json.dumps({"zones": [{**zone, "area_m2": math.inf}]}), 400),
        ("PUT", f"/api/cameras/north/snapshots/{snapshot}", '{"points": [[' + str(10**400) + ", 1]]}", 400),
        ("PUT", "/api/cameras/north/zones", json.dumps({"zones": [{**zone, "name": "a\u2028b"}]}), 400),
        ("PUT", "/api/cameras/north/zones", json.dumps({"zones": [{**zone, "name": "nul\x00"}]}), 400),
        ("PUT", "/api/cameras/north/model", json.dumps({"model": "x\x00.onnx"}), 400),
        (
            "PUT",
            "/api/cameras/north/zones",
            "{" + '"zones": [' + ", ".join([json.dumps(zone)] * 6000) + "]}",
            413,
        ),
    ]
    for method, path, body, status in cases:
        response = requests.request(
            method,
            f"{running.url}{path}",
            data=body,
            headers={**BEARER, "Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code == status, (path, body[:80], response.text)
        assert running.path.read_bytes() == config
    strict_json(running.get("/api/cameras").text)
