"""Zoomed crops and the evaluation loop, checked on hand-made scenes with a fake engine of known output."""

import math
from pathlib import Path

import numpy as np
import pytest

from crowdstream.training.evaluate import Scene, evaluate_variants, unchanged
from crowdstream.training.zoom import check_zoom, zoom_rows, zoom_scene, zoom_variants, zoom_window


class ConstantEngine:
    """Counts `per_tile` people in every 224×224 input, spread evenly over its density map."""

    backend = "fake"
    model_path = Path("constant")

    def __init__(self, per_tile: float) -> None:
        self.per_tile = per_tile

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(batch)
        density = np.full((n, 1, 56, 56), self.per_tile / 56**2, np.float32)
        return density, np.full(n, self.per_tile, np.float32)


def halves(width: int = 400, height: int = 200) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 2 :] = 255
    return image


def test_window_is_one_zoomth_of_the_image_and_stays_inside():
    assert zoom_window(200, 400, 2, (200, 100)) == zoom_window(200, 400, 2.0, (200.0, 100.0))
    w = zoom_window(200, 400, 2, (200, 100))
    assert (w.x0, w.y0, w.width, w.height) == (100, 50, 200, 100)
    corner = zoom_window(200, 400, 4, (0, 199))  # centred on the bottom-left corner: shifted inside
    assert (corner.x0, corner.y0, corner.width, corner.height) == (0, 150, 100, 50)


def test_centre_crop_moves_pixels_and_heads_together():
    # 400×200, zoom 2: the window is x 100..300, y 50..150, scaled by 2 back to 400×200
    points = np.array([[150, 50], [299, 149], [99, 100], [300, 100], [250, 40]], np.float32)
    zoomed = zoom_scene(Scene("halves", halves(), points), 2, "centre")
    assert zoomed.image.shape == (200, 400, 3)
    assert zoomed.image[:, 190].max() == 0 and zoomed.image[:, 210].min() == 255  # the edge at x=200 stays
    # (150, 50) → (100, 0); (299, 149) → (398, 198); x=99, x=300 and y=40 are outside the window
    assert zoomed.points.tolist() == [[100, 0], [398, 198]]
    assert zoomed.count == 2 and zoomed.name == "halves@2x-centre"


def test_crowd_crop_is_centred_on_a_head_and_fixed_per_image():
    scene = Scene("one", halves(), np.array([[10.0, 10.0]], np.float32))
    zoomed = zoom_scene(scene, 2, "crowd")
    # a window of 200×100 centred on (10, 10) is shifted to the top-left corner: (10, 10) → (20, 20)
    assert zoomed.points.tolist() == [[20, 20]]
    many = Scene("many", halves(), np.random.default_rng(5).uniform([0, 0], [400, 200], (50, 2)))
    first = zoom_scene(many, 3, "crowd")
    assert np.array_equal(zoom_scene(many, 3, "crowd").image, first.image)
    assert not np.array_equal(zoom_scene(many, 3, "crowd", seed=1).points, first.points)
    empty = Scene("empty", halves(), np.zeros((0, 2), np.float32))
    assert zoom_scene(empty, 2, "crowd").image[:, 190].max() == 0  # no head: the centre crop


@pytest.mark.parametrize("zoom", [0, 1, -2, 0.05, 10.5, math.nan, math.inf])
def test_bad_zooms_are_refused(zoom):
    with pytest.raises(ValueError, match="zoom must be between 0.1 and 10 and not 1"):
        check_zoom(zoom)


def test_zooming_out_shrinks_the_whole_image_and_its_heads():
    points = np.array([[0, 0], [399, 199], [200, 100]], np.float32)
    smaller = zoom_scene(Scene("halves", halves(), points), 0.5, "centre")  # the crop kind is moot below 1
    assert smaller.image.shape == (100, 200, 3) and smaller.name == "halves@0.5x-whole"
    assert smaller.image[:, 95].max() == 0 and smaller.image[:, 105].min() == 255  # the edge at x=100 now
    assert smaller.points.tolist() == [[0, 0], [199.5, 99.5], [100, 50]]  # every head kept, scaled
    assert list(zoom_variants([0.5, 2])) == ["0.5x-whole", "2x-centre", "2x-crowd"]


def test_variants_are_scored_against_their_own_annotation():
    # a 448×448 scene is one tile under `auto`, so the fake engine counts 5 on every variant
    points = np.array([[10, 10], [200, 200], [220, 230], [300, 300], [440, 440], [120, 340]], np.float32)
    scene = Scene("s", np.zeros((448, 448, 3), np.uint8), points)
    variants = {"whole": unchanged, **zoom_variants([2], crops=("centre",))}
    results = evaluate_variants(ConstantEngine(5.0), [scene, scene], variants, progress=False)
    whole, zoomed = results["whole"].summary(), results["2x-centre"].summary()
    assert (
        whole["images"] == 2 and whole["mae"] == pytest.approx(1.0) and whole["bias"] == pytest.approx(-1.0)
    )
    # the 2x centre window is x, y in [112, 336): (200, 200), (220, 230), (300, 300) → truth 3
    # ((120, 340) is 4 px below it)
    assert zoomed["truth_mean"] == pytest.approx(3) and zoomed["bias"] == pytest.approx(2.0)
    assert zoomed["game"]["0"] == pytest.approx(2.0)  # the stitched map integrates to the engine's 5
    (row,) = zoom_rows({"2x-centre": results["2x-centre"]}, whole["mae"])
    assert row["zoom"] == 2.0 and row["crop"] == "centre" and row["mae_ratio"] == pytest.approx(2.0)
    assert row["bias_pct"] == pytest.approx(100 * 2 / 3)
