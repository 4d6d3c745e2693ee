"""The shared preprocessing contract: tiling, integral-preserving resizing and stitching."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdstream.engines.preprocess import (
    as_bgr,
    cut_tiles,
    normalise,
    parse_tiles,
    plan_tiles,
    prepare_frame,
    resize_density,
    split_density,
    stitch,
)
from crowdstream.engines.spec import INPUT_SIZE, OUTPUT_SIZE


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    oh=st.integers(1, 300),
    ow=st.integers(1, 300),
    seed=st.integers(0, 99),
)
def test_resize_density_keeps_the_integral(h, w, oh, ow, seed):
    density = np.random.default_rng(seed).random((h, w), dtype=np.float32)
    resized = resize_density(density, oh, ow)
    assert resized.shape == (oh, ow)
    assert abs(resized.sum(dtype=np.float64) - density.sum(dtype=np.float64)) < 1e-3 * max(1.0, density.sum())


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(16, 900),
    w=st.integers(16, 900),
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    seed=st.integers(0, 9),
)
def test_tiles_split_the_map_and_stitch_back_to_the_same_total(h, w, rows, cols, seed):
    density = np.random.default_rng(seed).random((h, w), dtype=np.float32)
    grid = plan_tiles(h, w, (rows, cols))
    pieces = split_density(density, grid, OUTPUT_SIZE)
    assert pieces.shape == (grid.count, OUTPUT_SIZE, OUTPUT_SIZE)
    assert abs(pieces.sum(dtype=np.float64) - density.sum(dtype=np.float64)) < 1e-3 * density.sum()
    for scale in (1.0, 0.25):
        frame = stitch(pieces, grid, scale)
        assert frame.shape == (round(h * scale), round(w * scale))
        assert abs(frame.sum(dtype=np.float64) - pieces.sum(dtype=np.float64)) < 1e-3 * density.sum()


def test_stitch_puts_each_tile_back_in_its_place():
    grid = plan_tiles(400, 600, (2, 3))
    pieces = np.zeros((6, OUTPUT_SIZE, OUTPUT_SIZE), np.float32)
    pieces[4, 10, 10] = 1.0  # row 1, col 1
    frame = stitch(pieces, grid)
    y, x = np.unravel_index(frame.argmax(), frame.shape)
    assert 200 <= y < 400 and 200 <= x < 400


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((768, 1024), (2, 2)),
        ((720, 1280), (2, 3)),
        ((200, 300), (1, 1)),
        ((1080, 1920), (2, 4)),
        ((480, 640), (1, 1)),
        ((576, 720), (2, 2)),  # PAL: the nearest grid, 1x2, would squeeze 360x576 tiles (0.625) into squares
        ((600, 800), (2, 2)),  # likewise 1x2 of 400x600
        ((100, 1000), (1, 2)),  # no neighbouring grid gives a trained shape: the nearest one stays
    ],
)
def test_auto_tiles_keep_tiles_near_the_target_size_and_shape(size, expected):
    grid = plan_tiles(*size, "auto")
    assert (grid.rows, grid.cols) == expected


def test_tile_settings_are_validated():
    assert parse_tiles("2x3") == (2, 3)
    assert parse_tiles("auto") == "auto"
    for bad in ["2", "0x2", "axb", "40x1"]:
        with pytest.raises(ValueError):
            parse_tiles(bad)


def test_prepare_frame_makes_normalised_rgb_tiles():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[..., 2] = 255  # pure red in BGR
    batch, grid = prepare_frame(frame, "1x2")
    assert batch.shape == (2, 3, INPUT_SIZE, INPUT_SIZE) and batch.dtype == np.float32
    assert batch[:, 0].mean() > 2 and batch[:, 2].mean() < -1  # channel 0 is red after BGR→RGB
    assert grid.count == 2


def test_frames_of_any_channel_layout_are_accepted_and_others_refused():
    assert as_bgr(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert as_bgr(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        as_bgr(np.zeros((4, 5, 3), np.float32))
    assert cut_tiles(np.zeros((1, 1, 3), np.uint8), plan_tiles(1, 1)).shape == (1, INPUT_SIZE, INPUT_SIZE, 3)
    assert normalise(np.zeros((1, 8, 8, 3), np.uint8)).shape == (1, 3, 8, 8)


def test_normalise_swaps_to_rgb_and_standardises_each_channel():
    tiles = np.zeros((2, 4, 6, 3), np.uint8)
    tiles[1, 2, 3] = (10, 20, 30)  # B, G, R
    out = normalise(tiles)
    assert out.shape == (2, 3, 4, 6) and out.dtype == np.float32
    # ImageNet statistics written out by hand: RGB mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
    expected = [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375]
    np.testing.assert_allclose(out[1, :, 2, 3], expected, rtol=1e-5)
    np.testing.assert_allclose(
        out[0, :, 0, 0], [-123.675 / 58.395, -116.28 / 57.12, -103.53 / 57.375], rtol=1e-5
    )
    assert normalise(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 3, 8, 8)
