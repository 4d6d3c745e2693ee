"""The counting worker with real sources (the bundled clip, real images, a camera that never answers) and
the shipped model: batching, health reporting, smoothing, dropped frames, zones across resolution
changes, overlays rendered only when somebody looks."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest

import crowdstream.stream.hub
from crowdstream.engines.counting import DENSITY_SCALE, count_frames
from crowdstream.engines.engine import load_engine
from crowdstream.engines.spec import Engine
from crowdstream.stream.config import CameraConfig, ServiceConfig
from crowdstream.stream.hub import Hub
from crowdstream.stream.metrics import WHOLE_FRAME, StreamMetrics
from crowdstream.stream.readings import CameraReading
from crowdstream.stream.self_checks import RECENT_CHECKS
from crowdstream.stream.sources import Frame, Source, open_source
from crowdstream.stream.worker import Worker
from tests.conftest import free_port
from tests.data_paths import PART_A, needs_data
from tests.test_painted_frames import REPLAY, region_frame


class Recorder:
    """A publisher that keeps every reading, in order."""

    def __init__(self) -> None:
        self.readings: list[CameraReading] = []

    def publish(self, reading: CameraReading, extra: object = None) -> None:
        self.readings.append(reading)

    def of(self, camera: str) -> list[CameraReading]:
        return [r for r in self.readings if r.camera == camera]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine("default")


@pytest.fixture
def sources() -> Iterator[list[Source]]:
    """Sources a test opens; all are stopped afterwards, whatever happens."""
    opened: list[Source] = []
    yield opened
    for source in opened:
        source.stop()


async def fresh_frames(worker: Worker, timeout: float = 60.0) -> None:
    """Wait until every camera's reader holds a frame newer than the one last counted."""
    async with asyncio.timeout(timeout):
        while any(t.source.latest(t.schedule.last_seq) is None for t in worker.tasks.values()):
            await asyncio.sleep(0.01)


def add(worker: Worker, sources: list[Source], camera: CameraConfig, **options) -> Source:
    source = open_source(camera.id, camera.url, **options)
    source.start()
    sources.append(source)
    worker.add_camera(camera, source, ServiceConfig().zones_of(camera))
    return source


async def run_until(worker: Worker, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run the worker loop until `condition` holds (fails the test after `timeout` s)."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


def sample(metrics: StreamMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_cameras_share_one_inference_and_match_direct_counting(engine, sources) -> None:
    metrics, recorder, hub = StreamMetrics(), Recorder(), Hub()
    # max_batch 64: two dense 720p frames with their adaptive windows always fit one engine call
    worker = Worker(engine, hub, metrics, publishers=[recorder], alpha=0.5, max_batch=64)
    zone = {"name": "left", "polygon": [[0, 0], [640, 0], [640, 720], [0, 720]], "area_m2": 40.0}
    add(worker, sources, CameraConfig(id="a", url="demo", max_fps=None, zones=[zone]))
    add(worker, sources, CameraConfig(id="b", url="demo", max_fps=None))
    for _ in range(3):  # each cycle once both readers hold a new frame (in service it starts with the first)
        await fresh_frames(worker)
        assert await worker.step() == 2  # both cameras in the cycle's one inference
    worker.close()

    cycles = sample(metrics, "crowd_inference_duration_seconds_count", backend=engine.backend)
    assert cycles == worker.cycles == 3 and len(recorder.readings) == 6
    state = hub.cameras["a"]
    tiles = worker.tasks["a"].config.tiles
    direct = count_frames(engine, [state.counted.frame.image], tiles, DENSITY_SCALE)[0]
    reading = state.reading
    assert reading.count == pytest.approx(direct.count, rel=1e-4)
    assert reading.count > 5  # the demo clip is a crowd
    assert reading.frame_size == (1280, 720) and reading.frame_age > 0
    left = reading.zones[0]
    assert 0 < left.count < reading.count and left.density == pytest.approx(left.count / 40.0)
    assert sample(metrics, "crowd_people", camera="a", zone=WHOLE_FRAME) == pytest.approx(reading.count)
    assert sample(metrics, "crowd_density_people_per_square_meter", camera="a", zone="left") == pytest.approx(
        left.density
    )
    assert sample(metrics, "crowd_frames_processed_total", camera="b") == len(recorder.of("b"))
    x, y = reading.densest
    assert 0 <= x < 1280 and 0 <= y < 720


async def test_smoothed_count_is_an_ema_of_the_counts(engine, sources) -> None:
    recorder = Recorder()
    worker = Worker(engine, Hub(), StreamMetrics(), publishers=[recorder], alpha=0.25)
    add(worker, sources, CameraConfig(id="a", url="demo", max_fps=None))
    await run_until(worker, lambda: len(recorder.readings) >= 5)
    worker.close()
    readings = recorder.readings
    assert readings[0].smoothed == readings[0].count
    for previous, current in zip(readings, readings[1:], strict=False):
        assert current.smoothed == pytest.approx(0.25 * current.count + 0.75 * previous.smoothed)


async def test_dead_camera_is_reported_down_while_the_others_keep_counting(engine, sources) -> None:
    metrics, recorder, hub = StreamMetrics(), Recorder(), Hub()
    worker = Worker(engine, hub, metrics, publishers=[recorder])
    add(worker, sources, CameraConfig(id="alive", url="demo", max_fps=4))
    dead = CameraConfig(id="dead", url=f"rtsp://127.0.0.1:{free_port()}/live")
    add(worker, sources, dead, open_timeout=1, read_timeout=1, max_backoff=0.5)
    await run_until(
        worker,
        lambda: (
            len(recorder.of("alive")) >= 6
            and sample(metrics, "crowd_stream_reconnects_total", camera="dead") >= 2
        ),
    )
    worker.close()
    assert sample(metrics, "crowd_stream_up", camera="dead") == 0
    assert sample(metrics, "crowd_stream_up", camera="alive") == 1
    assert hub.cameras["dead"].status == "down" and hub.cameras["alive"].status == "up"
    health = hub.cameras["dead"].health  # what /api/cameras and the page show
    assert health.last_error == "Connection refused" and health.reconnects >= 2
    assert health.since <= time.time() and hub.cameras["alive"].health.last_error is None
    assert sample(metrics, "crowd_frames_processed_total", camera="dead") == 0
    assert recorder.of("dead") == []


class Numbered:
    """A reader whose frames carry chosen numbers (a camera that skipped frames in between)."""

    status, reconnects, fps, last_error, next_retry, on_frame = "up", 0, 1.0, None, None, None

    def __init__(self, image: np.ndarray, numbers: list[int]) -> None:
        self.frames = [Frame(image, time.time(), seq) for seq in numbers]

    def latest(self, after_seq: int = 0) -> Frame | None:
        return next((f for f in self.frames if f.seq > after_seq), None)


async def test_frames_between_two_counted_ones_are_dropped_without_max_fps(engine) -> None:
    """Every frame is due without max_fps: the gaps in the frame numbers are dropped frames."""
    metrics, recorder = StreamMetrics(), Recorder()
    worker = Worker(engine, Hub(), metrics, publishers=[recorder])
    image = np.full((64, 64, 3), 90, np.uint8)
    worker.add_camera(CameraConfig(id="a", url="demo", max_fps=None), Numbered(image, [1, 2, 6, 7, 10]), [])
    while await worker.step():
        pass
    worker.close()
    assert len(recorder.readings) == 5
    assert sample(metrics, "crowd_frames_dropped_total", camera="a") == 3 + 2  # 3, 4, 5 and 8, 9


class Frames:
    """A reader handing out the given images in turn, one frame each."""

    status, reconnects, fps, last_error, next_retry, on_frame = "up", 0, 1.0, None, None, None

    def __init__(self, images: list[np.ndarray]) -> None:
        self.frames = [Frame(image, time.time(), seq) for seq, image in enumerate(images, 1)]

    def latest(self, after_seq: int = 0) -> Frame | None:
        return next((f for f in self.frames if f.seq > after_seq), None)


async def test_a_painted_camera_keeps_its_paint_from_frame_to_frame(engine) -> None:
    """A fixed camera's frames come painted alike: the worker finds the paint on the first frame and reuses
    it (engines.paint.unpaint's previous), and each reading is what counting that frame alone gives."""
    picture = cv2.imread(str(sorted(REPLAY.glob("*.jpg"))[0]))
    images = [region_frame(np.roll(picture, shift, axis=1)) for shift in (0, 23, 51)]
    metrics, recorder = StreamMetrics(), Recorder()
    worker = Worker(engine, Hub(), metrics, publishers=[recorder])
    worker.add_camera(CameraConfig(id="a", url="demo", max_fps=None), Frames(images), [])
    first = None
    while await worker.step():
        first = first or worker.tasks["a"].paint
    worker.close()
    assert first is not None and worker.tasks["a"].paint.painted is first.painted
    counts = [r.count for r in recorder.of("a")]
    alone = [c.count for c in count_frames(engine, images, "adaptive", DENSITY_SCALE)]
    assert counts == pytest.approx(alone, rel=0.01) and min(counts) > 1


@needs_data
async def test_resolution_change_keeps_zones_right_and_reports_zones_outside(
    engine, sources, tmp_path, caplog
):
    folder = tmp_path / "frames"
    folder.mkdir()
    images = PART_A / "images"
    shutil.copy(images / "IMG_1.jpg", folder / "1.jpg")  # 1024x768
    shutil.copy(images / "IMG_103.jpg", folder / "2.jpg")  # 400x400
    recorder = Recorder()
    worker = Worker(engine, Hub(), StreamMetrics(), publishers=[recorder])
    zone = {"name": "top", "polygon": [[0, 0], [1024, 0], [1024, 400], [0, 400]]}
    add(worker, sources, CameraConfig(id="a", url=str(folder), max_fps=None, zones=[zone]), fps=8.0)
    with caplog.at_level(logging.ERROR, logger="crowdstream.stream.worker"):
        await run_until(
            worker, lambda: {r.frame_size for r in recorder.readings} >= {(1024, 768), (400, 400)}
        )
    worker.close()
    outside = [r for r in caplog.records if "outside the frame" in r.getMessage()]
    assert len(outside) == 1 and outside[0].frame == "400x400"
    small = next(r for r in recorder.readings if r.frame_size == (400, 400))
    assert small.zones[0].count == pytest.approx(small.count, rel=1e-3)  # the zone covers all of it
    large = next(r for r in recorder.readings if r.frame_size == (1024, 768))
    assert 0 < large.zones[0].count < large.count


async def test_nothing_is_rendered_until_somebody_looks(engine, sources, monkeypatch) -> None:
    renders: list[int] = []

    def counting(counted, zones):
        renders.append(counted.seq)
        return render(counted, zones)

    render = crowdstream.stream.hub.render_snapshot
    monkeypatch.setattr(crowdstream.stream.hub, "render_snapshot", counting)
    recorder, hub = Recorder(), Hub()
    worker = Worker(engine, hub, StreamMetrics(), publishers=[recorder])
    add(worker, sources, CameraConfig(id="a", url="demo", max_fps=None))
    await run_until(worker, lambda: len(recorder.of("a")) >= 3)
    worker.close()
    assert renders == []  # counting alone draws nothing
    camera = hub.cameras["a"]
    snapshot = camera.snapshot()
    assert camera.snapshot() is snapshot and renders == [camera.counted.seq]  # once per counted frame
    raw = camera.counted.frame.image
    assert snapshot.shape == raw.shape and not np.array_equal(snapshot, raw)


class OneFrame:
    """A reader holding a single fixed frame (here one no real reader would produce: float pixels)."""

    status, reconnects, fps, last_error, next_retry, on_frame = "up", 0, 1.0, None, None, None

    def __init__(self, image: np.ndarray) -> None:
        self.frame = Frame(image, time.time(), 1)

    def latest(self, after_seq: int = 0) -> Frame | None:
        return self.frame if after_seq < 1 else None


async def test_a_frame_that_cannot_be_counted_costs_only_its_camera(engine, sources, caplog) -> None:
    recorder = Recorder()
    worker = Worker(engine, Hub(), StreamMetrics(), publishers=[recorder])
    add(worker, sources, CameraConfig(id="good", url="demo", max_fps=None))
    worker.add_camera(CameraConfig(id="bad", url="demo"), OneFrame(np.zeros((720, 1280, 3), np.float32)), [])
    with caplog.at_level(logging.ERROR, logger="crowdstream.stream.worker"):
        await run_until(worker, lambda: len(recorder.of("good")) >= 2)
    worker.close()
    assert recorder.of("bad") == []
    failures = [r for r in caplog.records if r.getMessage().startswith("frame could not be counted")]
    assert len(failures) == 1 and failures[0].camera == "bad"


async def test_a_cycle_takes_the_most_overdue_cameras_that_fill_one_engine_call(engine) -> None:
    """Five 720p cameras (6 inputs a frame) with a batch of 12: each cycle counts two, most overdue
    first; a camera left waiting is counted next cycle, with its grid of due times unchanged."""
    recorder = Recorder()
    worker = Worker(engine, Hub(), StreamMetrics(), publishers=[recorder], max_batch=12)
    image = np.full((720, 1280, 3), 90, np.uint8)
    for name in "abcde":
        worker.add_camera(CameraConfig(id=name, url="demo", max_fps=None), Numbered(image, [1, 2, 3]), [])
    assert await worker.step() == 5  # nothing known of the cameras yet: one input each
    assert {task.inputs for task in worker.tasks.values()} == {6}
    for task, overdue in zip(worker.tasks.values(), [1, 5, 3, 4, 2], strict=True):
        task.schedule.period, task.schedule.next_due = 10.0, time.monotonic() - overdue
    grid = {task.id: task.schedule.next_due for task in worker.tasks.values()}
    cycles = []
    while counted := await worker.step():
        cycles.append([r.camera for r in recorder.readings[-counted:]])
    worker.close()
    assert cycles == [["b", "d"], ["c", "e"], ["a"]]
    assert all(task.schedule.next_due == grid[task.id] + 10.0 for task in worker.tasks.values())


async def test_each_camera_gets_a_self_check_that_its_readings_and_metrics_carry(engine, sources) -> None:
    """The self-check is the same frame counted again with finer tiles (engines.uncertainty); the worker
    runs it for one camera per cycle when its last is due, and the figure travels with every reading."""
    metrics, recorder, hub = StreamMetrics(), Recorder(), Hub()
    worker = Worker(engine, hub, metrics, publishers=[recorder], self_check_every=1.0)
    add(worker, sources, CameraConfig(id="a", url="demo", max_fps=None))
    add(worker, sources, CameraConfig(id="b", url="demo", max_fps=None))

    def checked(camera: str) -> list[CameraReading]:
        return [r for r in recorder.of(camera) if r.self_checks.latest is not None]

    def checks(camera: str) -> list:
        """Each self-check once, in the order the camera's readings carried them."""
        seen: list = []
        for reading in checked(camera):
            if not seen or reading.self_checks.latest is not seen[-1]:
                seen.append(reading.self_checks.latest)
        return seen

    await run_until(worker, lambda: len(checks("a")) >= 2 and len(checks("b")) >= 2)
    worker.close()
    assert recorder.of("a")[0].self_checks.latest is not None  # the first camera is checked at once
    for camera in ("a", "b"):
        readings = recorder.of(camera)
        first = readings.index(checked(camera)[0])
        assert all(r.self_checks.latest is not None for r in readings[first:])  # kept until the next check
        recent = readings[-1].self_checks
        assert recent.checks == tuple(checks(camera)[-RECENT_CHECKS:])  # the camera keeps its recent ones
        assert sample(metrics, "crowd_count_uncertainty", camera=camera) == pytest.approx(
            recent.latest.spread
        )
        assert sample(metrics, "crowd_count_uncertain", camera=camera) == float(recent.uncertain)
        record = readings[-1].as_dict()
        assert record["uncertain"] == recent.uncertain and record["uncertain_reason"] == recent.reason
        assert record["uncertain_share"] == pytest.approx(recent.share, abs=1e-3)


async def test_a_new_model_starts_without_the_old_models_self_checks(engine, sources) -> None:
    """A camera switched to another model (a taught one) is judged on that model's checks only."""
    recorder, metrics = Recorder(), StreamMetrics()
    worker = Worker(engine, Hub(), metrics, publishers=[recorder], self_check_every=1000.0)
    add(worker, sources, CameraConfig(id="a", url="demo", max_fps=None))
    await run_until(worker, lambda: any(r.self_checks.latest is not None for r in recorder.of("a")))
    series = metrics.registry.get_sample_value
    assert series("crowd_count_uncertain", {"camera": "a"}) is not None
    worker.add_engine("taught", engine)
    worker.set_model("a", "taught")
    switched = len(recorder.of("a"))
    await run_until(worker, lambda: len(recorder.of("a")) >= switched + 2)
    worker.close()
    assert all(r.self_checks.latest is None for r in recorder.of("a")[switched:])  # no check due yet
    assert recorder.of("a")[switched].as_dict()["uncertain"] is None
    assert series("crowd_count_uncertain", {"camera": "a"}) is None  # the alert clears, not lingers
    assert series("crowd_count_uncertainty", {"camera": "a"}) is None


async def test_no_self_check_when_it_is_turned_off(engine, sources) -> None:
    recorder = Recorder()
    worker = Worker(engine, Hub(), StreamMetrics(), publishers=[recorder], self_check_every=0)
    add(worker, sources, CameraConfig(id="a", url="demo", max_fps=None))
    await run_until(worker, lambda: len(recorder.readings) >= 3)
    worker.close()
    assert all(r.self_checks.latest is None and r.as_dict()["uncertain"] is None for r in recorder.readings)
