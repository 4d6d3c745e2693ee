"""`crowdstream bench train`: training tiles per second on this machine for each precision and memory
format, so the trainer's defaults are measured rather than assumed.

Each variant runs the real training step (CrowdLite0 as a config freezes it, the point loss, AdamW) on the
same synthetic batches (random pixels, 40 heads a tile). Variants are interleaved round by round so a busy
machine slows them alike; the median round counts.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from crowdstream.engines.table import Column
from crowdstream.training.losses import point_loss
from crowdstream.training.models import CrowdLite0


@dataclass(frozen=True)
class Variant:
    precision: str  # "fp32" or "bf16" (autocast)
    channels_last: bool

    @property
    def name(self) -> str:
        return f"{self.precision}{' channels-last' if self.channels_last else ''}"


VARIANTS = [Variant(p, c) for p in ("fp32", "bf16") for c in (False, True)]


def _batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.randn(size, 3, 224, 224, generator=generator)
    points = torch.rand(size, 40, 2, generator=generator) * 56
    return images, points, torch.ones(size, 40, dtype=torch.bool)


def _step_seconds(model, optimizer, variant: Variant, batch, device: torch.device) -> float:
    images, points, valid = (t.to(device) for t in batch)
    if variant.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    started = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.precision == "bf16"):
        pred = model(images)
    loss = point_loss(pred.float(), points, valid)["total"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def bench_train_steps(
    batch_size: int = 16, rounds: int = 5, frozen_blocks: int = 3, device: str = "cpu"
) -> list[dict]:
    """One row per variant: median tiles/s over `rounds` interleaved steps (after one warm-up step each)."""
    target = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    batch = _batch(batch_size, generator)
    setups = []
    for variant in VARIANTS:
        torch.manual_seed(0)
        model = CrowdLite0(pretrained=False, frozen_blocks=frozen_blocks).to(target)
        if variant.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        _step_seconds(model, optimizer, variant, batch, target)  # warm-up: allocator, kernels
        setups.append((variant, model, optimizer, []))
    for _ in range(rounds):
        for variant, model, optimizer, times in setups:
            times.append(_step_seconds(model, optimizer, variant, batch, target))
    return [
        {
            "variant": variant.name,
            "device": device,
            "batch": batch_size,
            "tiles_per_s": round(batch_size / statistics.median(times), 2),
            "step_ms": round(1000 * statistics.median(times), 1),
        }
        for variant, _, _, times in setups
    ]


STEP_COLUMNS = (
    Column("variant", 22, lambda r: r["variant"], left=True),
    Column("tiles/s", 9, lambda r: f"{r['tiles_per_s']:.2f}"),
    Column("ms/step", 9, lambda r: f"{r['step_ms']:.1f}"),
)
"""`bench train`'s table of `bench_train_steps` rows."""
