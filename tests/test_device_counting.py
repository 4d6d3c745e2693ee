"""The GPU frame pipeline (engines.device_counting) against the CPU one (OpenCV + NumPy), run with
torch on the CPU: the same code the CUDA path runs, compared on real ShanghaiTech frames.

References are always OpenCV (`cv2.resize`) or engines.preprocess, never the code under test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdstream.engines.counting import count_frames  # noqa: E402
from crowdstream.engines.device_counting import DeviceCounter  # noqa: E402
from crowdstream.engines.engine import load_engine  # noqa: E402
from crowdstream.engines.frames import read_frame, shanghaitech_images, spread  # noqa: E402
from crowdstream.engines.models import DEFAULT_MODEL  # noqa: E402
from crowdstream.engines.preprocess import plan_tiles, prepare_frame, stitch  # noqa: E402
from crowdstream.engines.resize_weights import AREA, AREA_UP, LINEAR, axis_weights, resize_kind  # noqa: E402
from crowdstream.engines.spec import OUTPUT_SIZE, PIXEL_STD  # noqa: E402
from crowdstream.engines.torch_engine import TorchEngine  # noqa: E402
from tests.data_paths import DATA_ROOT, needs_data  # noqa: E402

# (crop height, width) → 224×224: true area (integer and fractional factors), OpenCV's area variant
# for crops that grow on one axis, and bilinear for small crops
CROPS = [(384, 512), (360, 427), (448, 448), (768, 1024), (200, 512), (500, 223), (100, 150), (150, 224)]


def opencv_kind(h: int, w: int) -> str:
    return resize_kind(h, w, 224, 224, h * w > 224 * 224)


def matrix_resize(image: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    (h, w), (dh, dw) = image.shape[:2], size
    rows, cols = axis_weights(h, dh, kind), axis_weights(w, dw, kind)
    channels = image.reshape(h, w, -1).astype(np.float64)
    return np.stack([rows @ channels[..., c] @ cols.T for c in range(channels.shape[2])], -1).squeeze()


@pytest.mark.parametrize("crop", CROPS)
def test_weights_reproduce_cv2_resize_of_float_images(crop: tuple[int, int]) -> None:
    h, w = crop
    image = np.random.default_rng(h * w).random((h, w), dtype=np.float32)
    interpolation = cv2.INTER_AREA if h * w > 224 * 224 else cv2.INTER_LINEAR
    expected = cv2.resize(image, (224, 224), interpolation=interpolation)
    np.testing.assert_allclose(matrix_resize(image, (224, 224), opencv_kind(h, w)), expected, atol=1e-5)


@pytest.mark.parametrize("crop", CROPS)
def test_weights_match_cv2_uint8_within_one_grey_level(crop: tuple[int, int]) -> None:
    """OpenCV's 8-bit bilinear path rounds its coefficients to 11 bits, and both round ties their own way."""
    h, w = crop
    image = cv2.GaussianBlur(np.random.default_rng(w).integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    interpolation = cv2.INTER_AREA if h * w > 224 * 224 else cv2.INTER_LINEAR
    expected = cv2.resize(image, (224, 224), interpolation=interpolation).astype(int)
    got = np.clip(np.floor(matrix_resize(image, (224, 224), opencv_kind(h, w)) + 0.5), 0, 255).astype(int)
    difference = np.abs(got - expected)
    assert difference.max() <= 1
    assert difference.mean() < (0.01 if opencv_kind(h, w) == AREA else 0.2)


def test_resize_kinds_follow_opencv() -> None:
    assert opencv_kind(384, 512) == AREA
    assert opencv_kind(200, 512) == AREA_UP  # area asked for, but one axis grows
    assert opencv_kind(100, 150) == LINEAR


@pytest.fixture(scope="module")
def torch_engine() -> TorchEngine:
    """The shipped ONNX model on torch's CPU, with the device frame pipeline switched on."""
    return TorchEngine(DEFAULT_MODEL, threads=2, device="cpu", device_frames=True)


@pytest.fixture(scope="module")
def counter(torch_engine: TorchEngine) -> DeviceCounter:
    return torch_engine.frame_counter


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Real validation frames of both parts, plus shapes that exercise every resize kind and grid."""
    real = [read_frame(p) for p in spread(shanghaitech_images(DATA_ROOT, "validation"), 4)]
    return real + [
        cv2.resize(real[0], (1280, 720), interpolation=cv2.INTER_AREA),  # the demo clip's size, 2x3 tiles
        cv2.resize(real[1], (1024, 200), interpolation=cv2.INTER_AREA),  # tiles that grow vertically
        cv2.resize(real[2], (300, 180), interpolation=cv2.INTER_AREA),  # one small, upscaled tile
    ]


@needs_data
def test_device_tiles_match_the_opencv_tiles(counter: DeviceCounter, frames: list[np.ndarray]) -> None:
    for frame in frames:
        expected, grid = prepare_frame(frame)
        plan = counter.plan(*frame.shape[:2], "auto", 0.25)
        got = counter.cut(torch.from_numpy(frame[None]), plan).numpy()
        assert got.shape == expected.shape
        levels = np.abs(got - expected) * PIXEL_STD.reshape(1, 3, 1, 1)  # back to grey levels
        assert levels.max() < 1.0 + 1e-3, frame.shape
        assert (levels > 1e-3).mean() < 0.15, frame.shape


@pytest.mark.parametrize(
    ("shape", "tiles", "scale"),
    [
        ((768, 1024), "auto", 0.25),
        ((720, 1280), "auto", 0.25),
        ((900, 700), (3, 2), 0.5),
        ((55, 115), (1, 2), 1.0),
    ],
)
def test_device_stitch_matches_preprocess_stitch(counter: DeviceCounter, shape, tiles, scale) -> None:
    """(55, 115) split 1x2 at scale 1 gives a 55x58 and a 55x57 tile map: one bilinear, one area-up."""
    grid = plan_tiles(*shape, tiles)
    maps = np.random.default_rng(grid.count).gamma(0.3, 0.01, (grid.count, OUTPUT_SIZE, OUTPUT_SIZE))
    maps = maps.astype(np.float32)
    expected = stitch(maps, grid, scale)
    plan = counter.plan(*shape, tiles, scale)
    if shape == (55, 115):
        assert len(plan.paste) == 2, "the mixed-kind case must exercise two paste products"
    got = counter.stitch(torch.from_numpy(maps), plan, 1)[0].numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() / expected.max() < 1e-4
    assert got.sum(dtype=np.float64) == pytest.approx(maps.sum(dtype=np.float64), rel=1e-4)


def test_mixed_kind_tiles_are_cut_like_opencv(counter: DeviceCounter) -> None:
    """A 224x449 frame in 1x2 tiles: a 224x224 tile (bilinear, identity) and a 224x225 one (area)."""
    frame = cv2.GaussianBlur(
        np.random.default_rng(3).integers(0, 256, (224, 449, 3), dtype=np.uint8), (0, 0), 2
    )
    expected, _ = prepare_frame(frame, (1, 2))
    plan = counter.plan(224, 449, (1, 2), 0.25)
    assert len(plan.cut) == 2
    got = counter.cut(torch.from_numpy(frame[None]), plan).numpy()
    assert (np.abs(got - expected) * PIXEL_STD.reshape(1, 3, 1, 1)).max() < 1.0 + 1e-3


@needs_data
@pytest.mark.parametrize("tiles", ["auto", "adaptive"])
def test_counts_and_maps_match_the_cpu_path(
    torch_engine: TorchEngine, frames: list[np.ndarray], tiles
) -> None:
    """The acceptance check: counts within 1 % and density maps close, on real frames, through
    count_frames itself (an engine with device frames routes there), with and without the second pass."""
    onnx = load_engine("crowd-lite0", "onnxruntime", threads=2)
    expected = count_frames(onnx, frames, tiles)
    got = count_frames(torch_engine, frames, tiles, max_batch=8)
    if tiles == "adaptive":
        assert any(r.windows for r in expected), "no frame was refined: the second pass went untested"

        def boxes(results):  # where the windows are (their first-pass densities agree to ~1e-3)
            return [[(w.y0, w.y1, w.x0, w.x1) for w in r.windows] for r in results]

        assert boxes(got) == boxes(expected)
    for cpu, device in zip(expected, got, strict=True):
        assert device.grid == cpu.grid and device.density.shape == cpu.density.shape
        assert device.count == pytest.approx(cpu.count, rel=0.01)
        assert float(device.density.sum()) == pytest.approx(float(cpu.density.sum()), rel=0.01)
        # at most 2 % of the people placed elsewhere (a pixel-wise maximum says little about the retrained
        # model's peaked maps: one pixel at a window's rounded edge can differ by 30 % with 0.5 % moved)
        assert np.abs(device.density - cpu.density).sum() / cpu.density.sum() < 0.02


@needs_data
def test_frames_of_several_sizes_come_back_in_order(counter: DeviceCounter, frames: list[np.ndarray]) -> None:
    together = counter.count(frames[::-1], max_batch=16)
    alone = [counter.count([frame])[0] for frame in frames[::-1]]
    for a, b in zip(together, alone, strict=True):
        assert a.density.shape == b.density.shape
        assert a.count == pytest.approx(b.count, rel=1e-4)
