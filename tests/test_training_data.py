"""Training tiles: head coordinates follow the crop and the flip, people-free tiles are people-free, the
loader order is reproducible, and the device choice is honest."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdstream.training.annotations import Sample  # noqa: E402
from crowdstream.training.datasets import (  # noqa: E402
    Augment,
    LoadedImage,
    TileDataset,
    collate_tiles,
    crop_plan,
    flip,
    normalise_rgb,
)
from crowdstream.training.loader import epoch_order, iterate_batches  # noqa: E402
from crowdstream.training.negatives import TextureBank, head_free_box  # noqa: E402
from crowdstream.training.tile_render import TilePlan, TileRenderer  # noqa: E402
from tests.data_paths import PART_B, needs_data  # noqa: E402


def loaded(points: list[tuple[float, float]], height: int = 400, width: int = 600) -> LoadedImage:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    sample = Sample(Path("x.jpg"), np.array(points, np.float32).reshape(-1, 2), width, height)
    return LoadedImage(sample, image, None, "A")


def test_heads_are_mapped_into_output_pixels_of_the_crop():
    item = loaded([(150.0, 120.0), (10.0, 10.0), (349.0, 319.0)])
    tile = crop_plan(0, item, y0=100, x0=100, ch=224, cw=250)
    # (150,120) → ((150-100)·56/250, (120-100)·56/224) = (11.2, 5.0); (10,10) is outside the crop
    np.testing.assert_allclose(tile.points, [[11.2, 5.0], [249 * 56 / 250, 219 * 56 / 224]], rtol=1e-5)
    assert tile.plan == TilePlan(0, (100, 100, 224, 250)) and tile.density is None


def test_a_flip_mirrors_the_heads_with_the_pixels():
    item = loaded([(150.0, 120.0)])
    tile = crop_plan(0, item, 100, 100, 224, 224)
    mirrored = flip(tile)
    np.testing.assert_allclose(mirrored.points, [[56 - 50 * 56 / 224, 20 * 56 / 224]], rtol=1e-6)
    renderer = TileRenderer([item.image])
    pixels, mirrored_pixels = renderer.render([tile.plan, mirrored.plan])
    torch.testing.assert_close(mirrored_pixels[:, :, 0], pixels[:, :, -1])


@needs_data
@pytest.mark.parametrize(
    "box",
    [(37, 51, 300, 410), (5, 9, 224, 224), (120, 200, 90, 130), (0, 0, 768, 1024), (10, 10, 333, 333)]
    + [(5, 9, 150, 400)],  # more pixels than a tile, but one side grows: OpenCV's area-up variant
)
def test_rendered_tiles_match_the_engines_opencv_resize(box):
    """Training tiles must look like the tiles engines.preprocess cuts from frames (area averaging when
    shrinking, bilinear when growing, RGB order): equal up to OpenCV's rounding to uint8."""
    from crowdstream.engines.preprocess import resize_tile

    image = cv2.imread(str(PART_B / "images" / "IMG_1.jpg"))
    y0, x0, h, w = box
    expected = resize_tile(image[y0 : y0 + h, x0 : x0 + w])[..., ::-1].transpose(2, 0, 1).astype(np.float32)
    rendered = TileRenderer([image]).render([TilePlan(0, box)])[0].numpy()
    assert np.abs(rendered - expected).max() <= 0.8


def test_colour_greyscale_and_blur_are_applied_as_planned():
    image = np.random.default_rng(6).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    renderer = TileRenderer([image])
    plain, grey, brighter, blurred = renderer.render(
        [
            TilePlan(0, (0, 0, 224, 224)),
            TilePlan(0, (0, 0, 224, 224), grey=True),
            TilePlan(0, (0, 0, 224, 224), gain=(1.0, 1.0, 0.5), offset=10.0),
            TilePlan(0, (0, 0, 224, 224), blur=1.0),
        ]
    )
    expected_grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    assert np.abs(grey[0].numpy() - expected_grey).max() <= 0.51  # OpenCV rounds to uint8
    torch.testing.assert_close(grey[0], grey[2])
    # gain is per (B, G, R) channel; rendered tiles are RGB: red (channel 0) is halved, then +10
    torch.testing.assert_close(brighter[0], (plain[0] * 0.5 + 10).clamp(0, 255))
    torch.testing.assert_close(brighter[1], (plain[1] + 10).clamp(0, 255))
    expected_blur = cv2.GaussianBlur(image, (0, 0), 1.0)[..., ::-1].transpose(2, 0, 1).astype(np.float32)
    assert np.abs(blurred.numpy() - expected_blur).max() <= 1.0


def test_planned_batches_are_reproducible_and_people_free_tiles_have_no_heads():
    items = [loaded([(50.0 + 9 * i, 60.0 + 5 * i) for i in range(30)]) for _ in range(2)]
    augment = Augment(scale=(0.25, 2.0), negatives=0.5, blur=0.3)
    first, second = (TileDataset(items, "auto", 40, augment, seed=8) for _ in range(2))
    batch = collate_tiles([first[i] for i in range(40)])
    again = collate_tiles([second[i] for i in range(40)])
    assert batch["plans"] == again["plans"]
    textures = [plan for plan in batch["plans"] if plan.source >= len(items)]
    assert textures, "with negatives=0.5 some tiles come from the synthetic textures"
    for row, plan in enumerate(batch["plans"]):
        if plan.source >= len(items):
            assert not batch["valid"][row].any()
    pixels = TileRenderer(first.sources).render(batch["plans"])
    assert pixels.shape == (40, 3, 224, 224) and float(pixels.min()) >= 0 and float(pixels.max()) <= 255


NINE_HEADS = [(20.0 + 50 * i, 30.0) for i in range(9)]
NINETY_NINE_HEADS = [(5.0 + 6 * (i % 99), 40.0 + 3 * (i // 99)) for i in range(99)]


@pytest.mark.parametrize("power, dense_share", [(0.0, 0.5), (1.0, 100 / 110)])
def test_heads_power_draws_the_dense_image_in_proportion_to_its_heads(power, dense_share):
    sparse, dense = loaded(NINE_HEADS), loaded(NINETY_NINE_HEADS)  # (9 + 1) ** power, (99 + 1) ** power
    tiles = TileDataset([sparse, dense], "auto", 4000, Augment(flip=False), seed=3, heads_power=power)
    drawn = np.array([tiles[i].plan.source for i in range(4000)])
    assert abs((drawn == 1).mean() - dense_share) < 0.025  # over 3 binomial standard deviations


def test_heads_power_leaves_people_free_images_their_equal_share():
    empty = loaded([])
    sparse, dense = loaded(NINE_HEADS), loaded(NINETY_NINE_HEADS)
    tiles = TileDataset([empty, sparse, dense], "auto", 6000, Augment(flip=False), seed=4, heads_power=1.0)
    drawn = np.array([tiles[i].plan.source for i in range(6000)])
    # the empty image keeps 1/3; the other 2/3 go 10 : 100 to the sparse and the dense image
    for source, share in enumerate((1 / 3, 2 / 3 * 10 / 110, 2 / 3 * 100 / 110)):
        assert abs((drawn == source).mean() - share) < 0.025


def test_head_free_boxes_keep_their_distance_from_every_head():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 600, size=(40, 2)).astype(np.float32)
    points[:, 1] *= 400 / 600
    for _ in range(50):
        box = head_free_box(points, 400, 600, 120, 160, rng)
        if box is None:
            continue
        y0, x0, h, w = box
        inside = (points[:, 0] >= x0 - 4) & (points[:, 0] < x0 + w + 4)
        inside &= (points[:, 1] >= y0 - 4) & (points[:, 1] < y0 + h + 4)
        assert not inside.any()
    crowded = np.stack(np.meshgrid(np.arange(0, 600, 10), np.arange(0, 400, 10)), -1).reshape(-1, 2)
    assert head_free_box(crowded.astype(np.float32), 400, 600, 120, 160, rng) is None


def test_synthetic_textures_are_reproducible_model_sized_tiles():
    a, b = TextureBank(seed=3, size=5), TextureBank(seed=3, size=5)
    plan_a, plan_b = a.plan(np.random.default_rng(7), 10), b.plan(np.random.default_rng(7), 10)
    assert plan_a == plan_b and 10 <= plan_a.source < 15
    tile_a = TileRenderer([np.zeros((4, 4, 3), np.uint8)] * 10 + a.textures).render([plan_a])
    tile_b = TileRenderer([np.zeros((4, 4, 3), np.uint8)] * 10 + b.textures).render([plan_b])
    assert tile_a.shape == (1, 3, 224, 224)
    torch.testing.assert_close(tile_a, tile_b)


def test_collate_pads_heads_and_normalisation_matches_the_engines_contract():
    from crowdstream.engines.preprocess import normalise

    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
    tiles = [crop_plan(i, loaded([(10.0, 10.0)] * n), 0, 0, 224, 224) for i, n in enumerate((3, 1))]
    batch = collate_tiles(tiles)
    assert batch["points"].shape == (2, 3, 2) and batch["valid"].sum(1).tolist() == [3, 1]
    rendered = TileRenderer(images).render(batch["plans"])
    np.testing.assert_allclose(normalise_rgb(rendered).numpy(), normalise(np.stack(images)), atol=1e-5)


def test_the_batch_order_is_a_seeded_permutation_and_threads_do_not_change_it():
    order = epoch_order(50, seed=4, epoch=2)
    assert sorted(order.tolist()) == list(range(50))
    np.testing.assert_array_equal(order, epoch_order(50, seed=4, epoch=2))
    assert not np.array_equal(order, epoch_order(50, seed=4, epoch=3))
    data = [(i, torch.tensor([i])) for i in range(50)]

    def collate(items):
        return [i for i, _ in items]

    serial = list(iterate_batches(data, order, 8, collate, workers=0))
    threaded = list(iterate_batches(data, order, 8, collate, workers=3))
    assert serial == threaded and sum(serial, []) == order.tolist()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the error path does not apply")
def test_asking_for_cuda_without_it_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "crowdstream", "train", "--device", "cuda", "--limit", "2", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "device: cuda" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with a CUDA build of torch")
def test_training_runs_on_cuda(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "crowdstream",
        "train",
        "--device",
        "cuda",
        "--epochs",
        "1",
        "--limit",
        "4",
    ]
    command += ["--samples-per-part", "16", "--batch-size", "8", "--out", str(out), "--no-finalize"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "last.pt").is_file()
