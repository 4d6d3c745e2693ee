"""The people-free check set: head-free windows by hand, deterministic textures, the summary's arithmetic."""

import numpy as np
import pytest

from crowdstream.engines.frames import shanghaitech_part
from crowdstream.engines.uncertainty import judge
from crowdstream.training.annotations import load_shanghaitech
from crowdstream.training.people_free import (
    CheckResult,
    head_free_windows,
    holdout_crops,
    people_free_set,
    portrait_set,
    summarise_people_free,
)
from crowdstream.training.textures import TEXTURES, synthetic_textures
from tests.data_paths import DATA_ROOT, needs_data


def test_head_free_windows_by_hand():
    head = np.array([[100.0, 100.0]])
    # every 512 window of a 600×600 image starts at 0..80, so it covers (100, 100)
    assert head_free_windows(head, 600, 600, 512, margin=32) == []
    windows = head_free_windows(head, 600, 600, 384, margin=32)
    # starts 0, 16, ..., 208 (14 per axis); a window is clear when its start is past 100 + 32 on
    # either axis: 144..208 (5 starts), so 5×14 + 14×5 − 5×5 = 115 windows
    assert len(windows) == 115
    assert all(w.x0 > 132 or w.y0 > 132 for w in windows)
    assert {(w.width, w.height) for w in windows} == {(384, 384)}
    assert len(head_free_windows(np.zeros((0, 2)), 600, 600, 384)) == 14 * 14  # no heads: all clear
    assert head_free_windows(head, 300, 600, 384) == []  # larger than the image


def test_textures_are_deterministic_distinct_and_images():
    first, again = synthetic_textures(variants=2, size=128), synthetic_textures(variants=2, size=128)
    assert list(first) == [f"{name}-{v}" for name in TEXTURES for v in (1, 2)]
    for name, image in first.items():
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert np.array_equal(image, again[name])
        assert image.std() > 5  # a texture, not a flat colour
    assert not np.array_equal(first["gravel-1"], first["gravel-2"])


def checked(name: str, source: str, side: int, count: float) -> CheckResult:
    """A square people-free check image's result, its self-check calm."""
    return CheckResult(name, source, side, side, 0, count, judge(count, count, detail=0.7))


def test_summary_scales_counts_to_512_squared_and_checks_the_target():
    results = [
        checked("a", "package", 512, 0.5),
        checked("b", "package", 1024, 8.0),  # 8 on four 512² areas: 2 per 512²
        checked("c", "synthetic", 256, 0.25),  # 0.25 on a quarter: 1 per 512²
    ]
    assert [r.per_512 for r in results] == [0.5, 2.0, 1.0]
    summary = summarise_people_free(results)
    assert summary["by_source"]["package"] == {
        "images": 2,
        "mean_per_512": 1.25,
        "max_per_512": 2.0,
        "above_max": 0,
    }
    assert summary["all"]["mean_per_512"] == pytest.approx(3.5 / 3)
    assert summary["all"]["target_met"] is False  # mean 1.17 is not under 1
    assert summarise_people_free(results[:1])["all"]["target_met"] is True
    over = [checked("d", "synthetic", 512, 3.5)] + [results[0]] * 10
    assert summarise_people_free(over)["all"]["target_met"] is False  # mean 0.77 but one above 3


@needs_data
def test_holdout_crops_hold_no_annotated_head():
    crops = list(holdout_crops(DATA_ROOT, every=100))  # IMG_100, IMG_200, ... of each part
    assert crops and {c.source for c in crops} == {"holdout-crop"}
    for crop in crops:
        part, rest = crop.name.split("/")
        stem, box = rest.split("@")
        x0, y0 = (int(v) for v in box.split("+")[0].split(","))
        side = int(box.split("+")[1])
        assert crop.image.shape == (side, side, 3)
        sample = load_shanghaitech(shanghaitech_part(part, DATA_ROOT) / "images" / f"{stem}.jpg")
        x, y = sample.points[:, 0], sample.points[:, 1]
        near = (x >= x0 - 64) & (x < x0 + side + 64) & (y >= y0 - 64) & (y < y0 + side + 64)
        assert not near.any(), crop.name
        assert np.array_equal(crop.image, sample.load_image()[y0 : y0 + side, x0 : x0 + side])


def test_the_check_sets_keep_portraits_apart():
    pytest.importorskip("skimage")
    free = list(people_free_set(None))  # no data root: packages and textures only
    names = [item.name for item in free]
    assert {"skimage:grass", "skimage:gravel", "skimage:brick", "synthetic:gravel-1"} <= set(names)
    assert {item.people for item in free} == {0} and len(names) == len(set(names))
    portraits = list(portrait_set())
    assert {p.name for p in portraits} >= {"skimage:astronaut", "skimage:camera"}
    assert {p.people for p in portraits} == {1} and not set(names) & {p.name for p in portraits}
    assert all(item.image.dtype == np.uint8 and item.image.shape[2] == 3 for item in free + portraits)
