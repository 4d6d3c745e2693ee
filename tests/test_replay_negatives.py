"""The fine-tune's replay options: replayed people-free tiles are anchored to the base model's answer by
default, trained towards zero with `replay_negatives="zero"` and not drawn with "none"; `replay_heads_power`
and `snapshot_heads_power` draw the denser replayed images and camera snapshots more often."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from crowdstream.engines.models import DEFAULT_MODEL
from crowdstream.engines.onnx_torch import load_onnx_module
from crowdstream.training.annotations import Sample
from crowdstream.training.datasets import Augment, LoadedImage, TileDataset
from crowdstream.training.finetune import FinetuneRunConfig, step_loss
from crowdstream.training.negatives import TextureBank
from crowdstream.training.onnx_weights import expose_raw_density
from crowdstream.training.snapshots import MixedTiles, SnapshotTiles


def loaded(points: list[list[float]], part: str, seed: int) -> LoadedImage:
    """A 448×448 noise image with heads at `points` (the tiles' pixels do not matter to the bookkeeping)."""
    image = np.random.default_rng(seed).integers(0, 255, (448, 448, 3), dtype=np.uint8)
    sample = Sample(Path(f"{part}.jpg"), np.array(points, np.float32).reshape(-1, 2), 448, 448)
    return LoadedImage(sample, image, None, part)


@pytest.fixture(scope="module")
def textures() -> TextureBank:
    return TextureBank(0, 2)


def mixed(textures: TextureBank, zero: bool, negatives: float = 0.5, share: float = 0.95) -> MixedTiles:
    """Camera tiles of a people-free image, replayed tiles of an image with heads in its left half (so head-free
    crops exist on the right), a `share` of the tiles replayed."""
    camera = SnapshotTiles([loaded([], "camera", 1)], "auto", 1, Augment(), 0, textures)
    heads = [[x, y] for x in range(20, 200, 30) for y in range(20, 430, 30)]
    replay = TileDataset([loaded(heads, "A", 2)], "auto", 1, Augment(negatives=negatives), 0, textures)
    return MixedTiles(camera, replay, share, 0, zero_replayed_negatives=zero)


def test_by_default_every_replayed_tile_is_anchored_and_none_is_marked_empty(textures) -> None:
    tiles = mixed(textures, zero=False)
    batch = tiles.batch(0, 40)
    replayed = torch.tensor([tiles.is_replay(i) for i in range(40)])
    assert replayed.sum() >= 30 and torch.equal(batch["replay"], replayed)
    assert batch["empty"][replayed].sum() == 0


def test_zero_marks_replayed_people_free_tiles_empty_all_over_and_anchors_the_rest(textures) -> None:
    tiles = mixed(textures, zero=True)
    batch = tiles.batch(0, 40)
    drawn = [tiles[i] for i in range(40)]
    replayed = [tiles.is_replay(i) for i in range(40)]
    negative = [r and t.negative for r, t in zip(replayed, drawn, strict=True)]
    assert 5 <= sum(negative) <= sum(replayed) - 5  # both kinds are in the batch
    for row, (was_replayed, was_negative) in enumerate(zip(replayed, negative, strict=True)):
        assert bool(batch["replay"][row]) == (was_replayed and not was_negative)
        if was_negative:
            assert batch["empty"][row].min() == 1.0 and (batch["valid"][row].sum() == 0)
        elif was_replayed:
            assert batch["empty"][row].sum() == 0


def test_negative_flag_follows_the_draw_and_survives_flips() -> None:
    heads = [[x, y] for x in range(20, 200, 30) for y in range(20, 430, 30)]
    every = TileDataset([loaded(heads, "A", 2)], "auto", 1, Augment(negatives=1.0, scale=(0.3, 0.4)), 0)
    never = TileDataset([loaded(heads, "A", 2)], "auto", 1, Augment(negatives=0.0), 0)
    assert all(every[i].negative and len(every[i].points) == 0 for i in range(20))
    assert any(every[i].plan.flip for i in range(20))
    assert not any(never[i].negative for i in range(20))


def test_a_zeroed_replayed_texture_costs_its_density_where_an_anchored_one_costs_nothing(textures) -> None:
    student, teacher = load_onnx_module(DEFAULT_MODEL), load_onnx_module(DEFAULT_MODEL)
    for module in (student, teacher):
        expose_raw_density(module, onnx.load(str(DEFAULT_MODEL)))
    config = FinetuneRunConfig(dataset=Path("unused"), out=Path("unused.onnx"))
    anchored = mixed(textures, zero=False, negatives=1.0, share=1.0).batch(0, 6)
    zeroed = mixed(textures, zero=True, negatives=1.0, share=1.0).batch(0, 6)
    assert torch.equal(anchored["images"], zeroed["images"])  # the same tiles, only the targets differ
    assert anchored["replay"].all() and not zeroed["replay"].any()
    with torch.no_grad():
        assert step_loss(student, teacher, anchored, config).item() == 0.0  # the student is the teacher
        assert step_loss(student, teacher, zeroed, config).item() > 0.0


def test_the_option_is_validated_and_defaults_to_the_camera_pages_behaviour() -> None:
    config = FinetuneRunConfig(dataset=Path("d"), out=Path("o.onnx"))
    assert config.replay_negatives == "anchor"
    assert (
        FinetuneRunConfig(dataset=Path("d"), out=Path("o.onnx"), replay_negatives="zero").replay_negatives
        == "zero"
    )
    with pytest.raises(ValueError, match="replay_negatives"):
        FinetuneRunConfig(dataset=Path("d"), out=Path("o.onnx"), replay_negatives="drop")


@pytest.mark.parametrize(("option", "drawn"), [("anchor", True), ("zero", True), ("none", False)])
def test_none_draws_no_people_free_replay_tiles(tmp_path, monkeypatch, option: str, drawn: bool) -> None:
    import crowdstream.training.finetune as finetune

    camera = loaded([], "camera", 1)
    cv2.imwrite(str(tmp_path / "camera.png"), camera.image)
    heads = [[x, y] for x in range(20, 200, 30) for y in range(20, 430, 30)]
    monkeypatch.setattr(finetune, "replay_images", lambda _config: ([loaded(heads, "A", 2)], "test images"))
    config = FinetuneRunConfig(dataset=Path("d"), out=Path("o.onnx"), replay_negatives=option)
    snapshot = Sample(tmp_path / "camera.png", camera.sample.points, 448, 448)
    tiles, replayed = finetune.tile_source(config, [snapshot])
    assert replayed == {"replay_images": 1, "replay_source": "test images"}
    assert tiles.zero_replayed_negatives == (option == "zero")
    assert any(tiles.replay[i].negative for i in range(60)) == drawn


def test_replay_heads_power_draws_the_denser_replayed_image_more_often(tmp_path, monkeypatch) -> None:
    import crowdstream.training.finetune as finetune

    camera = loaded([], "camera", 1)
    cv2.imwrite(str(tmp_path / "camera.png"), camera.image)
    sparse = loaded([[30, 30]], "A", 2)
    dense = loaded([[x, y] for x in range(20, 440, 20) for y in range(20, 440, 20)], "A", 3)  # 441 heads
    monkeypatch.setattr(finetune, "replay_images", lambda _config: ([sparse, dense], "test images"))
    snapshot = Sample(tmp_path / "camera.png", camera.sample.points, 448, 448)
    shares = []
    for power in (0.0, 1.0):
        config = FinetuneRunConfig(
            dataset=Path("d"), out=Path("o.onnx"), replay_heads_power=power, replay_negatives="none"
        )
        tiles, _ = finetune.tile_source(config, [snapshot])
        shares.append(np.mean([tiles.replay[i].plan.source == 1 for i in range(400)]))
    assert 0.4 < shares[0] < 0.6 and shares[1] > 0.95  # (441 + 1) / (441 + 1 + 2) = 0.995


def test_snapshot_heads_power_reaches_the_camera_tiles(tmp_path) -> None:
    import crowdstream.training.finetune as finetune

    snapshots = []
    for name, points in (
        ("sparse", [[30, 30]]),
        ("dense", [[x, y] for x in range(20, 440, 20) for y in (40, 400)]),
    ):
        image = loaded(points, "camera", len(snapshots))
        cv2.imwrite(str(tmp_path / f"{name}.png"), image.image)
        snapshots.append(Sample(tmp_path / f"{name}.png", image.sample.points, 448, 448))
    shares = []
    for power in (0.0, 1.0):
        config = FinetuneRunConfig(
            dataset=Path("d"), out=Path("o.onnx"), replay_images=0, snapshot_heads_power=power
        )
        tiles, _ = finetune.tile_source(config, snapshots)
        shares.append(np.mean([tiles.camera[i].plan.source == 1 for i in range(400)]))
    assert 0.4 < shares[0] < 0.6 and shares[1] > 0.85  # (42 + 1) / (42 + 1 + 2) = 0.96
