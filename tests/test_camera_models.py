"""Per-camera models in the worker: each model file is loaded once, whatever name cameras give it;
cameras of the same model share one batched inference per cycle; a model no camera uses is dropped."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import crowdstream.stream.worker
from crowdstream.engines.engine import load_engine
from crowdstream.engines.models import CPU_DEFAULT_MODEL
from crowdstream.engines.spec import Engine
from crowdstream.stream.camera_models import CameraModels
from crowdstream.stream.camera_settings import CameraSettings
from crowdstream.stream.config import ServiceConfig, load_config
from crowdstream.stream.hub import Hub
from crowdstream.stream.metrics import StreamMetrics
from crowdstream.stream.sources import Frame
from crowdstream.stream.worker import Worker
from tests.web_support import demo_clip


class OneFrame:
    """A reader that always offers the same frame, newer each time it is asked (one per cycle)."""

    status, reconnects, fps, last_error, next_retry, on_frame = "up", 0, 1.0, None, None, None

    def __init__(self, image: np.ndarray) -> None:
        self.image, self.seq = image, 0

    def latest(self, after_seq: int = 0) -> Frame:
        self.seq += 1
        return Frame(self.image, time.time(), self.seq)


@pytest.fixture
def copy_model(tmp_path) -> str:
    path = tmp_path / "gate.onnx"
    shutil.copy(CPU_DEFAULT_MODEL, path)  # the file `default` opens here
    return str(path)


async def test_cameras_of_one_model_share_its_batch_and_each_file_loads_once(copy_model, monkeypatch) -> None:
    config = ServiceConfig.model_validate(
        {
            "cameras": [
                {"id": "a", "url": "demo", "max_fps": None},
                {"id": "b", "url": "demo", "max_fps": None, "model": "crowd-lite0-int8"},  # CPU default
                {"id": "c", "url": "demo", "max_fps": None, "model": copy_model},
                {"id": "d", "url": "demo", "max_fps": None, "model": copy_model},
            ]
        }
    )
    loaded: list[str] = []

    def load(model: str) -> Engine:
        loaded.append(model)
        return load_engine(model)

    default = load_engine("default")
    hub = Hub()
    worker = Worker(default, hub, StreamMetrics(), model_name="default")
    CameraModels(CameraSettings(config, None, load_config), worker, load).load_configured()
    assert loaded == [copy_model]  # "crowd-lite0-int8" is the default engine's file: not loaded again
    image = demo_clip(frames=1).frames[0]
    for camera in config.cameras:
        worker.add_camera(camera, OneFrame(image), [])

    calls: list[tuple[Engine, int]] = []
    count_frames = crowdstream.stream.worker.count_frames

    def recording(engine, images, *args):
        calls.append((engine, len(images)))
        return count_frames(engine, images, *args)

    monkeypatch.setattr(crowdstream.stream.worker, "count_frames", recording)
    assert await worker.step() == 4
    worker.close()
    copy_engine = worker.engines[copy_model]
    assert sorted((id(engine), n) for engine, n in calls) == sorted([(id(default), 2), (id(copy_engine), 2)])
    assert [hub.cameras[c].model for c in "abcd"] == ["default", "default", copy_model, copy_model]
    counts = {c: hub.cameras[c].reading.count for c in "abcd"}
    assert counts["a"] == pytest.approx(counts["c"], rel=1e-4)  # the same weights count the same frame alike

    worker.set_model("c", None)
    worker.drop_unused_engines()
    assert copy_model in worker.engines  # d still uses it
    worker.set_model("d", None)
    worker.drop_unused_engines()
    assert worker.engines == {}
    with pytest.raises(KeyError, match="not loaded"):
        worker.set_model("a", "/elsewhere.onnx")
