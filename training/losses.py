"""Training loss: pixel MSE on the density map plus a per-tile count term and a DM-Count-style total
variation term. The count term is normalised by sqrt(count + 1) so sparse tiles are not drowned out by
dense ones (a pure pixel MSE under-counts by ~10 %)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossWeights:
    pixel: float = 0.01
    count: float = 1.0
    tv: float = 0.1


def density_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: LossWeights = LossWeights()
) -> dict[str, torch.Tensor]:
    """Loss terms for a batch of (N, 1, H, W) maps; 'total' is what to minimise."""
    pred_count = pred.flatten(1).sum(1)
    true_count = target.flatten(1).sum(1)
    pixel = ((pred - target) * 100.0).pow(2).flatten(1).mean(1).mean()
    count = ((pred_count - true_count).abs() / (true_count + 1.0).sqrt()).mean()
    pred_shape = pred.flatten(1) / (pred_count[:, None] + 1e-6)
    true_shape = target.flatten(1) / (true_count[:, None] + 1e-6)
    tv = (0.5 * (pred_shape - true_shape).abs().sum(1) * true_count).mean()
    total = weights.pixel * pixel + weights.count * count + weights.tv * tv
    return {"total": total, "pixel": pixel, "count": count, "tv": tv}
