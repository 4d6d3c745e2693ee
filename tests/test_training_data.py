"""Training tiles: head coordinates follow the crop and the flip, people-free tiles are people-free, the
loader order is reproducible, and the device choice is honest."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.annotations import Sample  # noqa: E402
from training.datasets import LoadedImage, collate_tiles, crop_sample, flip, normalise_rgb  # noqa: E402
from training.loader import epoch_order, iterate_batches  # noqa: E402
from training.negatives import TextureBank, head_free_box  # noqa: E402


def loaded(points: list[tuple[float, float]], height: int = 400, width: int = 600) -> LoadedImage:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    sample = Sample(Path("x.jpg"), np.array(points, np.float32).reshape(-1, 2), width, height)
    return LoadedImage(sample, image, None, "A")


def test_heads_are_mapped_into_output_pixels_of_the_crop():
    item = loaded([(150.0, 120.0), (10.0, 10.0), (349.0, 319.0)])
    tile = crop_sample(item, y0=100, x0=100, ch=224, cw=250)
    # (150,120) → ((150-100)·56/250, (120-100)·56/224) = (11.2, 5.0); (10,10) is outside the crop
    np.testing.assert_allclose(tile.points, [[11.2, 5.0], [249 * 56 / 250, 219 * 56 / 224]], rtol=1e-5)
    assert tile.tile.shape == (224, 224, 3) and tile.density is None


def test_a_flip_mirrors_the_heads_with_the_pixels():
    item = loaded([(150.0, 120.0)])
    tile = crop_sample(item, 100, 100, 224, 224)
    mirrored = flip(tile)
    np.testing.assert_allclose(mirrored.points, [[56 - 50 * 56 / 224, 20 * 56 / 224]], rtol=1e-6)
    np.testing.assert_array_equal(mirrored.tile[:, 0], tile.tile[:, -1])


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
    tile_a, tile_b = a.draw(np.random.default_rng(7)), b.draw(np.random.default_rng(7))
    assert tile_a.shape == (224, 224, 3) and tile_a.dtype == np.uint8
    np.testing.assert_array_equal(tile_a, tile_b)


def test_collate_pads_heads_and_normalisation_matches_the_engines_contract():
    from engines.preprocess import normalise

    rng = np.random.default_rng(2)
    tiles = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
    items = [
        (
            torch.from_numpy(np.ascontiguousarray(t[..., ::-1].transpose(2, 0, 1))),
            torch.ones(n, 2),
            torch.empty(0),
        )
        for t, n in zip(tiles, (3, 1), strict=True)
    ]
    batch = collate_tiles(items)
    assert batch["points"].shape == (2, 3, 2) and batch["valid"].sum(1).tolist() == [3, 1]
    np.testing.assert_allclose(normalise_rgb(batch["images"]).numpy(), normalise(np.stack(tiles)), atol=1e-5)


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
