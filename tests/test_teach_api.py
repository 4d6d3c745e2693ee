"""The "Correct this camera" API over the real service on the demo clip, started from a config file:
snapshots with the model's heads, corrected marks, one-line 4xx for bad input, the model switch
(only to a fine-tuned model whose report says better; saved to the file, counted with at once), and
every route behind the token when auth is on."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import yaml

from crowdstream.engines.models import DEFAULT_MODEL
from crowdstream.stream.config import load_config
from crowdstream.stream.service import Service
from tests.conftest import eventually

TOKEN = "a-token-of-twenty-chars"
CONFIG = """\
cameras:
  - id: demo
    name: Concourse   # kept by the model switch
    url: demo
redis:
  embedded: false
finetune:
  data_dir: {data}
http:
  port: 0
"""


@contextlib.asynccontextmanager
async def running(tmp_path: Path, extra: str = "") -> AsyncIterator[tuple[Service, str, Path]]:
    path = tmp_path / "cameras.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data") + extra)
    service = Service(load_config(path, environ={}), path, lambda p: load_config(p, environ={}))
    await service.start()
    try:
        yield service, f"http://127.0.0.1:{service.bound_port}", path
    finally:
        await service.stop()


async def call(session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> tuple[int, dict]:
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def counted(session: aiohttp.ClientSession, url: str) -> dict:
    return await eventually(
        lambda: call(session, "GET", f"{url}/api/cameras/demo"), lambda r: r[1]["count"] is not None
    )


async def test_snapshots_are_taken_with_predicted_heads_corrected_and_refused_when_wrong(tmp_path) -> None:
    async with running(tmp_path) as (_, url, _), aiohttp.ClientSession() as session:
        _, camera = await counted(session, url)
        assert camera["model"] == "default"
        status, snapshot = await call(session, "POST", f"{url}/api/cameras/demo/snapshots")
        assert status == 201 and snapshot["size"] == [1280, 720] and snapshot["model"] == "default"
        points = np.array(snapshot["points"])
        assert len(points) >= 5  # the demo clip is a crowd: the model's peaks are its first marks
        assert ((points >= 0) & (points <= [1280, 720])).all()
        stem = snapshot["stem"]
        folder = tmp_path / "data" / "finetune" / "demo"
        assert json.loads((folder / f"{stem}.json").read_text())["points"] == snapshot["points"]

        async with session.get(f"{url}/api/cameras/demo/snapshots/{stem}/image.jpg") as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(await response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (720, 1280, 3)

        marks = {"points": [[100, 100], [640.5, 360]], "empty_regions": [[900, 0, 1280, 200]]}
        status, saved = await call(session, "PUT", f"{url}/api/cameras/demo/snapshots/{stem}", json=marks)
        assert status == 200 and saved["points"] == [[100, 100], [640.5, 360]]
        assert json.loads((folder / f"{stem}.json").read_text())["empty_regions"] == [[900, 0, 1280, 200]]
        status, listed = await call(session, "GET", f"{url}/api/cameras/demo/snapshots")
        assert [s["stem"] for s in listed["snapshots"]] == [stem] and listed["folder"] == str(folder)
        assert listed["snapshots"][0]["corrected"] and listed["suggested"] is None  # nothing left to correct

        bad = [
            (
                "PUT",
                f"snapshots/{stem}",
                {"json": {"points": [[2000, 5]]}},
                400,
                "outside the 1280x720 frame",
            ),
            ("PUT", f"snapshots/{stem}", {"data": "points"}, 415, "application/json"),
            ("PUT", "snapshots/20200101T000000-9", {"json": {"points": []}}, 404, "no snapshot"),
            ("GET", "snapshots/..%2Fx", {}, 404, "no snapshot"),
            ("POST", "finetune", {"json": {"quick": "yes"}}, 400, '{"quick": true}'),
            ("POST", "finetune", {"json": {}}, 409, "fine-tuning needs at least 2"),
            ("DELETE", "finetune", {}, 409, "no fine-tuning running"),
            ("PUT", "model", {"json": {"model": "/etc/passwd"}}, 400, "fine-tuned for camera demo"),
            ("PUT", "model", {"json": {"name": "x"}}, 400, '{"model"'),
        ]
        for method, path, kwargs, expected, words in bad:
            status, body = await call(session, method, f"{url}/api/cameras/demo/{path}", **kwargs)
            assert (status, words in body["error"], "\n" in body["error"]) == (expected, True, False), body
        status, body = await call(session, "GET", f"{url}/api/cameras/nope/snapshots")
        assert status == 404

        status, second = await eventually(
            lambda: call(session, "POST", f"{url}/api/cameras/demo/snapshots"), lambda r: r[0] == 201
        )
        status, listed = await call(session, "GET", f"{url}/api/cameras/demo/snapshots")
        assert not second["corrected"] and listed["suggested"] == second["stem"]  # the one not corrected
        for taken in (second["stem"], stem):
            status, body = await call(session, "DELETE", f"{url}/api/cameras/demo/snapshots/{taken}")
            assert status == 200
        assert not any(folder.iterdir())


async def test_the_camera_switches_to_a_better_fine_tuned_model_and_the_file_keeps_it(tmp_path) -> None:
    async with running(tmp_path) as (service, url, path), aiohttp.ClientSession() as session:
        await counted(session, url)
        models = tmp_path / "data" / "models" / "demo"
        models.mkdir(parents=True)
        worse, better = models / "worse.onnx", models / "better.onnx"
        for model, is_better in ((worse, False), (better, True)):
            shutil.copy(DEFAULT_MODEL, model)  # a copy: another file, so the worker loads a second engine
            model.with_suffix(".report.json").write_text(json.dumps({"better": is_better}))
        status, body = await call(session, "PUT", f"{url}/api/cameras/demo/model", json={"model": str(worse)})
        assert status == 400 and "did not beat" in body["error"]

        status, body = await call(
            session, "PUT", f"{url}/api/cameras/demo/model", json={"model": str(better)}
        )
        assert status == 200 and body == {
            "camera": "demo",
            "model": str(better),
            "saved_to": str(path),
            "note": None,
        }
        camera = yaml.safe_load(path.read_text())["cameras"][0]
        assert camera["model"] == str(better) and "# kept by the model switch" in path.read_text()
        assert load_config(path, environ={}).cameras[0].model == str(better)
        engine = service.worker.engines[str(better)]
        assert engine.model_path == better and service.worker.tasks["demo"].model == str(better)
        seen = service.hub.cameras["demo"].counted.seq
        _, camera = await eventually(
            lambda: call(session, "GET", f"{url}/api/cameras/demo"),
            lambda r: r[1]["model"] == str(better) and service.hub.cameras["demo"].counted.seq > seen + 1,
        )
        assert camera["count"] > 5  # counted by the new model's engine from its next frame on
        status, body = await call(session, "GET", f"{url}/api/cameras/demo/finetune")
        assert body == {"camera": "demo", "model": str(better), "job": None}

        status, body = await call(session, "PUT", f"{url}/api/cameras/demo/model", json={"model": None})
        assert status == 200 and body["model"] == "default"
        assert "model" not in yaml.safe_load(path.read_text())["cameras"][0]
        assert service.worker.engines == {}  # nobody uses the fine-tuned model: unloaded


ROUTES = [
    ("GET", "snapshots"),
    ("POST", "snapshots"),
    ("GET", "snapshots/20200101T000000-1"),
    ("PUT", "snapshots/20200101T000000-1"),
    ("DELETE", "snapshots/20200101T000000-1"),
    ("GET", "snapshots/20200101T000000-1/image.jpg"),
    ("GET", "finetune"),
    ("POST", "finetune"),
    ("DELETE", "finetune"),
    ("PUT", "model"),
]


async def test_every_route_needs_the_token_when_auth_is_on(tmp_path) -> None:
    async with running(tmp_path, f"  token: {TOKEN}\n") as (_, url, _), aiohttp.ClientSession() as session:
        await eventually(lambda: call(session, "GET", f"{url}/healthz"), lambda r: r[0] == 200)
        for method, path in ROUTES:
            status, body = await call(session, method, f"{url}/api/cameras/demo/{path}", json={})
            assert status == 401 and body["error"], (method, path)
        authorised = {"Authorization": f"Bearer {TOKEN}"}
        for method, path in ROUTES:
            status, _ = await call(
                session, method, f"{url}/api/cameras/demo/{path}", json={}, headers=authorised
            )
            assert status != 401, (method, path)
