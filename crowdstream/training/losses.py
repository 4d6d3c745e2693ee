"""Training losses.

`point_loss` is the Bayesian loss with a background term (Ma et al., "Bayesian Loss for Crowd Count
Estimation with Point Supervision", ICCV 2019, "BL+"): it learns from the head points themselves instead of
from blurred Gaussian maps. Every output pixel's density is shared among the heads near it (and a background
"head" for pixels far from all of them) by a Gaussian posterior; each head must then collect exactly one
person and the background none. A tile with no head is all background, so "nobody here" is an explicit
target rather than the absence of a blob.

`density_loss` is the previous loss (pixel MSE against a Gaussian density map, a count term and a
DM-Count-style total variation term), kept to compare the two on the same data and budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crowdstream.engines.spec import OUTPUT_SIZE


@dataclass(frozen=True)
class PointLossConfig:
    """Geometry of the posterior, in output pixels (a 224 input has 56×56 output pixels).

    `sigma`: spread of a head's likelihood (2 output px = 8 input px, the paper's 8 px at stride 8 scaled
    to our stride 4). `background_radius`: distance from the nearest head at which a pixel is as likely to
    be background as to belong to that head (the paper's 0.15 × crop size on 512 px crops is ~9 px at the
    input; 3 output px = 12 input px here)."""

    sigma: float = 2.0
    background_radius: float = 3.0
    spread_neighbours: int = 0
    """0: the same geometry for every head. k > 0: each head's geometry grows with the mean distance to its
    k nearest annotated neighbours in the tile (× `spread_share` / sigma, never below 1): heads far apart are
    usually large (close to the lens), and a fixed 2-pixel likelihood with a 3-pixel background radius calls
    most of a large head's density background, which teaches the model to miss people close to the camera.
    Dense and normal tiles keep the fixed geometry (their spacing is under sigma / spread_share)."""
    spread_share: float = 0.3


def pixel_centres(size: int = OUTPUT_SIZE, device: torch.device | str = "cpu") -> torch.Tensor:
    """(size², 2) float32 (x, y) centres of the output pixels, row-major like a flattened map."""
    coords = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def head_posterior(heads: torch.Tensor, size: int, config: PointLossConfig) -> torch.Tensor:
    """(P + 1, size²) for one tile's (P, 2) heads: for each output pixel, the probability that its density
    belongs to each head, or (last row) to the background. A tile without heads is all background."""
    if not len(heads):
        return torch.ones(1, size * size, device=heads.device)
    squared = torch.cdist(heads.float(), pixel_centres(size, heads.device)).pow(2)  # (P, S²)
    if config.spread_neighbours:
        squared = squared / head_scale(heads, config)[:, None] ** 2
    background = config.background_radius**4 / (squared.min(dim=0, keepdim=True).values + 1e-5)
    logits = -torch.cat([squared, background]) / (2 * config.sigma**2)
    return torch.softmax(logits, dim=0)


def head_scale(heads: torch.Tensor, config: PointLossConfig) -> torch.Tensor:
    """(P,) factor ≥ 1 on each head's likelihood spread and background radius: spread_share × the mean
    distance to its k nearest neighbours / sigma (1 for a head alone in the tile)."""
    if len(heads) < 2:
        return torch.ones(len(heads), device=heads.device)
    distance = torch.cdist(heads.float(), heads.float()).fill_diagonal_(float("inf"))
    nearest = distance.topk(min(config.spread_neighbours, len(heads) - 1), dim=1, largest=False).values
    return (config.spread_share * nearest.mean(1) / config.sigma).clamp_min(1.0)


def point_loss(
    pred: torch.Tensor, points: torch.Tensor, valid: torch.Tensor, config: PointLossConfig = PointLossConfig()
) -> dict[str, torch.Tensor]:
    """Bayesian loss with background for a batch.

    pred: (N, 1, S, S) density; points: (N, P, 2) head (x, y) in output pixels, padded; valid: (N, P) bool.
    Returns {'total', 'count'}: 'total' is the mean over tiles of Σ_heads |1 − E[c_head]| + |E[c_bg]|, and
    'count' the mean absolute tile count error (reported, not optimised).

    Each tile's posterior is built over its own heads only. A batch pads every tile to its densest tile's heads
    (a part A tile zoomed out holds a thousand), and a posterior over the padding (N × P × S²) cost 0.7–2.4 s
    of each 64-tile CPU step, against 0.05–0.08 s for the tiles' own heads — the same sums, so the same loss.
    On CUDA the loop launches a few small kernels per tile instead of a few large ones; unmeasured (no GPU has
    been lent since); expected to be small against the model's step on a 64-tile batch.
    """
    batch, size = pred.shape[0], pred.shape[-1]
    flat = pred.reshape(batch, -1).float()
    errors = [tile_error(flat[tile], points[tile][valid[tile]], size, config) for tile in range(batch)]
    total = torch.stack(errors).mean()
    count = (flat.sum(1) - valid.float().sum(1)).abs().mean().detach()
    return {"total": total, "count": count}


def tile_error(
    density: torch.Tensor, heads: torch.Tensor, size: int, config: PointLossConfig
) -> torch.Tensor:
    """Σ_heads |1 − E[c_head]| + |E[c_bg]| for one tile's flat (S²,) density and its (P, 2) heads."""
    with torch.no_grad():  # the posterior depends on the geometry only, not on the prediction
        posterior = head_posterior(heads, size, config)
    expected = posterior @ density
    return (expected[:-1] - 1).abs().sum() + expected[-1].abs()


@dataclass(frozen=True)
class LossWeights:
    pixel: float = 0.01
    count: float = 1.0
    tv: float = 0.1


def density_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: LossWeights = LossWeights()
) -> dict[str, torch.Tensor]:
    """The previous loss for a batch of (N, 1, H, W) maps against Gaussian density targets; 'total' is what
    to minimise. The count term is normalised by sqrt(count + 1) so sparse tiles are not drowned out."""
    pred_count = pred.flatten(1).sum(1)
    true_count = target.flatten(1).sum(1)
    pixel = ((pred - target) * 100.0).pow(2).flatten(1).mean(1).mean()
    count = ((pred_count - true_count).abs() / (true_count + 1.0).sqrt()).mean()
    pred_shape = pred.flatten(1) / (pred_count[:, None] + 1e-6)
    true_shape = target.flatten(1) / (true_count[:, None] + 1e-6)
    tv = (0.5 * (pred_shape - true_shape).abs().sum(1) * true_count).mean()
    total = weights.pixel * pixel + weights.count * count + weights.tv * tv
    return {"total": total, "pixel": pixel, "count": count, "tv": tv}
