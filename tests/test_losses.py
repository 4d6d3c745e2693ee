"""The point loss on hand-made point sets: what a perfect, a shifted and an empty prediction score."""

import pytest

torch = pytest.importorskip("torch")

from crowdstream.training.losses import PointLossConfig, point_loss  # noqa: E402

SIZE = 56


def prediction(*pixels: tuple[int, int, float]) -> torch.Tensor:
    """A (1, 1, 56, 56) map with `people` at each (row, col)."""
    pred = torch.zeros(1, 1, SIZE, SIZE)
    for row, col, people in pixels:
        pred[0, 0, row, col] = people
    return pred


def heads(*xy: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    points = torch.tensor([list(p) for p in xy], dtype=torch.float32).reshape(1, -1, 2)
    return points, torch.ones(1, len(xy), dtype=torch.bool)


def test_one_person_on_each_head_scores_zero():
    points, valid = heads((10.5, 20.5), (40.5, 30.5))  # (x, y) at the centres of pixels (20, 10), (30, 40)
    terms = point_loss(prediction((20, 10, 1.0), (30, 40, 1.0)), points, valid)
    assert terms["total"].item() == pytest.approx(0.0, abs=1e-5)
    assert terms["count"].item() == pytest.approx(0.0, abs=1e-6)


def test_a_shifted_prediction_scores_more_the_farther_it_is():
    points, valid = heads((10.5, 20.5), (40.5, 30.5))
    near = point_loss(prediction((20, 11, 1.0), (30, 41, 1.0)), points, valid)["total"].item()
    far = point_loss(prediction((20, 14, 1.0), (30, 44, 1.0)), points, valid)["total"].item()
    assert 0.0 < near < far
    # four pixels from a head the background owns most of the density: nearly a person lost and one too many
    assert far > 1.5


def test_an_empty_tile_with_no_prediction_scores_zero_and_any_density_costs_its_mass():
    points, valid = torch.zeros(1, 0, 2), torch.zeros(1, 0, dtype=torch.bool)
    assert point_loss(torch.zeros(1, 1, SIZE, SIZE), points, valid)["total"].item() == 0.0
    spread = torch.full((1, 1, SIZE, SIZE), 0.001)
    assert point_loss(spread, points, valid)["total"].item() == pytest.approx(SIZE * SIZE * 0.001, rel=1e-5)


def test_padded_heads_of_a_sparser_tile_in_the_batch_are_ignored():
    points = torch.tensor([[[10.5, 20.5], [40.5, 30.5]], [[25.5, 25.5], [0.0, 0.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    pred = torch.cat([prediction((20, 10, 1.0), (30, 40, 1.0)), prediction((25, 25, 1.0))])
    assert point_loss(pred, points, valid)["total"].item() == pytest.approx(0.0, abs=1e-5)


def test_too_few_people_cost_the_shortfall():
    points, valid = heads((10.5, 20.5))
    half = point_loss(prediction((20, 10, 0.5)), points, valid, PointLossConfig())["total"].item()
    assert half == pytest.approx(0.5, abs=1e-5)


def test_neighbour_spread_keeps_dense_heads_and_widens_heads_far_apart():
    adaptive = PointLossConfig(spread_neighbours=3)
    # three heads 4 output pixels apart (dense): 0.3 x 4 / 2 < 1, the fixed geometry
    points, valid = heads((10.5, 10.5), (14.5, 10.5), (18.5, 10.5))
    pred = prediction((10, 10, 1.0), (10, 14, 1.0), (10, 18, 1.0))
    assert point_loss(pred, points, valid, adaptive)["total"].item() == pytest.approx(
        point_loss(pred, points, valid)["total"].item(), abs=1e-6
    )
    # two large heads 30 pixels apart, each person's density spread over a 5x5 patch around its point
    points, valid = heads((10.5, 10.5), (40.5, 10.5))
    pred = torch.zeros(1, 1, SIZE, SIZE)
    pred[0, 0, 8:13, 8:13] = pred[0, 0, 8:13, 38:43] = 1 / 25
    fixed = point_loss(pred, points, valid)["total"].item()
    spread = point_loss(pred, points, valid, adaptive)["total"].item()
    assert spread < 0.5 * fixed and fixed > 0.5  # the fixed geometry calls much of each head background


def test_neighbour_spread_on_empty_and_single_head_tiles():
    adaptive = PointLossConfig(spread_neighbours=3)
    points, valid = torch.zeros(1, 0, 2), torch.zeros(1, 0, dtype=torch.bool)
    assert point_loss(torch.zeros(1, 1, SIZE, SIZE), points, valid, adaptive)["total"].item() == 0.0
    points, valid = heads((10.5, 20.5))
    pred = prediction((20, 10, 1.0))
    assert point_loss(pred, points, valid, adaptive)["total"].item() == pytest.approx(0.0, abs=1e-5)
