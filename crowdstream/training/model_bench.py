"""`crowdstream bench models`: size, compute and CPU speed of the production model and the seed's networks,
with validation accuracy where a trained result is recorded in the shipped model card data."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch

from crowdstream.engines.models import MODELS_DIR
from crowdstream.engines.table import Column
from crowdstream.training.models import ARCHITECTURES, build_model, count_flops, count_parameters

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


def _onnx_ms(repeats: int) -> float | None:
    """Median batch-1 milliseconds of the shipped ONNX model through ONNX Runtime (the service's path)."""
    from crowdstream.engines.engine import load_engine

    engine = load_engine("default")
    x = torch.randn(1, 3, 224, 224).numpy()
    engine.infer(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.infer(x)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _accuracy(figures: dict) -> dict:
    """Held-out MAE/RMSE per part (every 5th image, adaptive tiling) from bench/model_report.py's file."""
    columns = {}
    for part in ("A", "B"):
        values = figures.get("holdout", {}).get(f"{part}/every5-adaptive")
        if values:
            columns[f"part_{part}_mae"] = round(values["mae"], 2)
            columns[f"part_{part}_rmse"] = round(values["rmse"], 2)
    return columns


def bench_models(repeats: int = 10) -> list[dict]:
    """One row per model: parameters, GFLOPs per 224×224 input, CPU ms per input, held-out accuracy
    (where a trained result is recorded; the seed networks are compared untrained, for size and speed)."""
    accuracy = json.loads(ACCURACY_FILE.read_text()) if ACCURACY_FILE.exists() else {}
    rows = []
    for name in ARCHITECTURES:
        model = build_model(name, pretrained=False)
        slow = name == "seed-nopool"  # ~240 GFLOPs per input: a few passes are plenty
        row = {
            "model": name,
            "parameters": count_parameters(model),
            "gflops": round(count_flops(model) / 1e9, 2),
            "torch_cpu_ms": round(_time_forward(model, 2 if slow else repeats), 1),
        }
        if name == "crowd-lite0":
            row["onnxruntime_cpu_ms"] = round(_onnx_ms(repeats), 1)
            row.update(_accuracy(accuracy))
        rows.append(row)
    return rows


def _optional(key: str) -> Callable[[dict], str | None]:
    """A measurement only some rows have (the shipped model's ONNX Runtime time and accuracy)."""
    return lambda row: None if row.get(key) is None else f"{row[key]:.1f}"


MODEL_COLUMNS = (
    Column("model", 26, lambda r: r["model"], left=True),
    Column("params", 8, lambda r: f"{r['parameters'] / 1e6:.2f}M"),
    Column("GFLOPs", 7, lambda r: f"{r['gflops']:.2f}"),
    Column("torch ms", 9, lambda r: f"{r['torch_cpu_ms']:.1f}"),
    Column("ORT ms", 7, _optional("onnxruntime_cpu_ms")),
    Column("A MAE", 7, _optional("part_A_mae")),
    Column("A RMSE", 7, _optional("part_A_rmse")),
    Column("B MAE", 7, _optional("part_B_mae")),
    Column("B RMSE", 7, _optional("part_B_rmse")),
)
"""`bench models`'s table of `bench_models` rows."""
