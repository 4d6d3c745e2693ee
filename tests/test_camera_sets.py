"""Camera-like sets: a degraded frame keeps its heads where the people are, a pasted person brings exactly
its head point, trained and checked texture families never overlap, and the hold-out sets are made of
hold-out images only."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdstream.engines.frames import HOLDOUT_EVERY
from crowdstream.training.annotations import Sample
from crowdstream.training.camera_look import CHECK_LOOK, CameraLook, degrade, mask_outside_region
from crowdstream.training.camera_sets import (
    elevated_views,
    night_images,
    sharp_images,
    split_samples,
    write_camera_sets,
)
from crowdstream.training.elevated_scenes import Cutout, cutouts, elevated_scene, paste
from crowdstream.training.texture_families import CHECK_FAMILIES, TRAIN_FAMILIES
from tests.data_paths import DATA_ROOT, needs_data


def test_degrade_scales_the_frame_and_reports_the_factor_for_the_head_points() -> None:
    image = np.zeros((768, 1024, 3), np.uint8)
    image[380:390, 500:510] = 255  # one bright "head" centred at (505, 385)
    out, scale = degrade(image, np.random.default_rng(1), CHECK_LOOK)
    assert out.shape[:2] == (480, 640) and scale == pytest.approx(0.625)
    y, x = np.unravel_index(np.argmax(out.sum(axis=2)), out.shape[:2])
    assert abs(x - 505 * scale) <= 2 and abs(y - 385 * scale) <= 2


def test_degrade_is_repeatable_with_the_same_seed_and_varies_with_another() -> None:
    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    look = CameraLook()
    first, _ = degrade(image, np.random.default_rng(5), look)
    again, _ = degrade(image, np.random.default_rng(5), look)
    other, _ = degrade(image, np.random.default_rng(6), look)
    assert np.array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)


def _red_person(size: float = 20.0) -> Cutout:
    height, width = 160, 60
    alpha = np.ones((height, width), np.float32)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 2] = 255
    return Cutout(pixels, alpha, (30.0, 15.0), size)


def test_a_counting_region_mask_blacks_out_the_rest_and_keeps_only_the_heads_inside() -> None:
    image = np.full((300, 400, 3), 200, np.uint8)
    heads = np.array([[200.0, 150.0], [2.0, 2.0], [398.0, 298.0], [2.0, 296.0]], np.float32)
    for seed in range(20):
        out, kept = mask_outside_region(image, heads, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert set(np.unique(out)) <= {0, 200}
        assert 0.16 <= (out[..., 0] == 200).mean() <= 1.0
        assert out[150, 200, 0] == 200 and [200.0, 150.0] in kept.tolist()  # the centre is always inside
        for x, y in kept:  # every kept head lies in the painted region, every dropped one outside it
            assert out[int(y), int(x), 0] == 200
        for x, y in heads:
            if [x, y] not in kept.tolist():
                assert out[int(y), int(x), 0] == 0


def test_paste_puts_the_head_of_the_cutout_at_the_head_point_at_the_asked_size() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    assert paste(frame, _red_person(), (150.0, 50.0), 10.0)  # half size
    assert frame[50, 150, 2] == 255  # the head point is on the person
    red = np.argwhere(frame[..., 2] > 128)
    assert red[:, 1].min() == pytest.approx(135, abs=1) and red[:, 1].max() == pytest.approx(164, abs=1)
    assert not paste(frame, _red_person(), (-5.0, 50.0), 10.0)  # a head outside the frame is no person


def test_an_elevated_scene_marks_one_head_per_pasted_person_inside_the_frame() -> None:
    rng = np.random.default_rng(3)
    frame, heads = elevated_scene(rng, [_red_person()], [], size=(320, 240), crowd=(10, 10))
    assert frame.shape == (240, 320, 3) and 1 <= len(heads) <= 10
    assert (heads[:, 0] >= 0).all() and (heads[:, 0] < 320).all() and (heads[:, 1] < 240).all()
    # far to near: heads lower in the frame are the later, larger ones; each head pixel shows a person
    assert all(frame[int(y), int(x), 2] > 200 for x, y in heads)


def test_cutouts_take_only_people_whose_box_holds_no_other_head() -> None:
    image = np.zeros((1200, 1200, 3), np.uint8)
    points = np.array([[200, 100], [205, 160], [600, 100], [1150, 100], [600, 1180]], np.float32)
    found = cutouts(Sample(Path("x.jpg"), points, 1200, 1200), image)
    # (200, 100) has (205, 160) in its body (not the other way round: a box starts just above its own
    # head); (1150, 100) and (600, 1180) reach out of the image
    assert len(found) == 2
    assert all(c.pixels.shape[:2] == c.alpha.shape and c.alpha.max() > 0.9 for c in found)
    # each cutout's head sits where the image's head is: 0.8 head sizes below the box top
    assert [c.head[1] for c in found] == [pytest.approx(0.8 * c.head_size, abs=1) for c in found]


def test_trained_and_checked_texture_families_never_overlap_and_paint_images() -> None:
    assert not set(TRAIN_FAMILIES) & set(CHECK_FAMILIES)
    for paint in {**TRAIN_FAMILIES, **CHECK_FAMILIES}.values():
        image = paint(np.random.default_rng(0), 96)
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8 and image.std() > 1


@needs_data
def test_hold_out_sets_use_hold_out_images_only(tmp_path: Path) -> None:
    holdout = split_samples(DATA_ROOT, "B", "holdout")
    numbers = [int(s.image_path.stem.split("_")[1]) for s in holdout]
    assert numbers and all(n % HOLDOUT_EVERY == 0 for n in numbers)
    train = split_samples(DATA_ROOT, "B", "train", limit=20)
    assert all(int(s.image_path.stem.split("_")[1]) % HOLDOUT_EVERY for s in train)
    counts = write_camera_sets(tmp_path, DATA_ROOT, "holdout", elevated=2, degraded_per_part=1, variants=1)
    assert counts == {"elevated": 2, "degraded": 2, "families": len(CHECK_FAMILIES)}
    (written,) = (tmp_path / "degraded").glob("degraded-B-*.json")
    source = next(s for s in holdout if written.stem == f"degraded-B-{s.image_path.stem}")
    assert len(json.loads(written.read_text())["points"]) == len(source.points)
    family = json.loads(next((tmp_path / "families").glob("*.json")).read_text())
    assert family["points"] == [] and family["empty_regions"]


@needs_data
def test_night_views_are_hold_out_street_scenes_grey_and_dark_with_all_their_heads() -> None:
    """An infrared camera at night: one grey channel, darker than the photograph shrunk alike, every
    annotated head kept and scaled to 640 px."""
    night = list(night_images(DATA_ROOT, per_part=3))
    holdout = split_samples(DATA_ROOT, "B", "holdout", limit=3)
    assert [stem for stem, _, _ in night] == [f"night-B-{s.image_path.stem}" for s in holdout]
    for (_, frame, heads), sample in zip(night, holdout, strict=True):
        photo = sample.load_image()
        shrunk = cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)
        assert frame.shape == (480, 640, 3)
        assert (
            np.abs(frame[..., 0].astype(int) - frame[..., 2]).max() <= 8
        )  # grey (JPEG leaves a little colour)
        assert frame.mean() < 0.85 * shrunk.mean()
        assert len(heads) == len(sample.points)
        np.testing.assert_allclose(heads, sample.points * 0.625)


@needs_data
def test_masked_elevated_views_are_the_same_views_black_outside_with_the_heads_inside() -> None:
    plain = list(elevated_views(DATA_ROOT, "holdout", 3))
    masked = list(elevated_views(DATA_ROOT, "holdout", 3, masked=1.0))
    for (stem, frame, heads), (masked_stem, masked_frame, kept) in zip(plain, masked, strict=True):
        assert stem == masked_stem and frame.shape == masked_frame.shape
        inside = masked_frame.max(axis=2) > 0
        assert 0.16 <= inside.mean() < 1.0
        np.testing.assert_array_equal(masked_frame[inside], frame[inside])
        assert len(kept) < len(heads) or inside.all()
        assert {tuple(h) for h in kept.tolist()} <= {tuple(h) for h in heads.tolist()}


@needs_data
def test_sharp_images_are_training_images_untouched_with_their_annotated_heads() -> None:
    sharp = list(sharp_images(DATA_ROOT, "train", 2))
    assert [stem.split("-")[1] for stem, _, _ in sharp] == ["A", "A", "B", "B"]
    for stem, image, heads in sharp:
        part, name = stem.split("-")[1:]
        (sample,) = [s for s in split_samples(DATA_ROOT, part, "train", 2) if s.image_path.stem == name]
        assert int(name.split("_")[1]) % HOLDOUT_EVERY
        np.testing.assert_array_equal(image, sample.load_image())
        np.testing.assert_array_equal(heads, sample.points)
