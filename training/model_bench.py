"""`crowdstream bench models`: size, compute and CPU speed of the production model and the seed's networks,
with validation accuracy where a trained result is recorded in the shipped model card data."""

from __future__ import annotations

import json
import statistics
import time

import torch

from engines.models import MODELS_DIR
from training.models import ARCHITECTURES, build_model, count_flops, count_parameters

ACCURACY_FILE = MODELS_DIR / "crowd-lite0.metrics.json"


def _time_forward(model: torch.nn.Module, repeats: int) -> float:
    """Median milliseconds of one batch-1 forward pass after a warm-up."""
    x = torch.randn(1, 3, 224, 224)
    model.eval()
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_models(repeats: int = 10) -> list[dict]:
    accuracy = json.loads(ACCURACY_FILE.read_text()) if ACCURACY_FILE.exists() else {}
    rows = []
    for name in ARCHITECTURES:
        model = build_model(name, pretrained=False)
        slow = name == "seed-nopool"  # ~240 GFLOPs per input: a few passes are plenty
        rows.append(
            {
                "model": name,
                "parameters": count_parameters(model),
                "gflops": round(count_flops(model) / 1e9, 2),
                "torch_cpu_ms": round(_time_forward(model, 2 if slow else repeats), 1),
                **accuracy.get(name, {}),
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'model':16} {'params':>10} {'GFLOPs':>8} {'CPU ms':>8}"]
    for row in rows:
        lines.append(
            f"{row['model']:16} {row['parameters'] / 1e6:9.2f}M {row['gflops']:8.2f} {row['torch_cpu_ms']:8.1f}"
        )
    return "\n".join(lines)
