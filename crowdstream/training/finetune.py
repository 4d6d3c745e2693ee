"""Fine-tune a model on one camera's annotated snapshots (issue 16, "teach it your camera").

Starts from an ONNX model (the shipped one by default), trains only its decoder and last backbone blocks
(training.onnx_weights) with the Bayesian point loss (or the previous Gaussian-map loss, `loss: density`) on
strongly augmented tiles of the camera's training snapshots, mixed with replayed ShanghaiTech training tiles
so it does not forget, and trains the boxes marked "nobody here" towards zero density. The run is fitted
into a wall-clock budget; the result is judged on held-out snapshots and on the project's standard hold-out
before and after, and written as `<out>.report.json` beside the model. `better` says whether the page should
offer switching.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch
from pydantic import BaseModel, ConfigDict, Field

from crowdstream.engines.frames import DEFAULT_DATA_ROOT, holdout_split, spread
from crowdstream.engines.models import resolve_model
from crowdstream.engines.onnx_torch import load_onnx_module
from crowdstream.engines.spec import DEFAULT_TILES
from crowdstream.training.annotations import Sample, list_dataset
from crowdstream.training.datasets import Augment, LoadedImage, TileDataset, load_images, normalise_rgb
from crowdstream.training.density import DensityConfig, density_map
from crowdstream.training.export import check_parity
from crowdstream.training.finetune_eval import snapshot_mae, standard_mae, standard_parts
from crowdstream.training.losses import PointLossConfig, density_loss, point_loss
from crowdstream.training.negatives import TextureBank
from crowdstream.training.onnx_weights import (
    expose_raw_density,
    make_trainable,
    trainable_names,
    tuned_tensors,
    write_tuned,
)
from crowdstream.training.schedule import WarmupCosine
from crowdstream.training.snapshots import MixedTiles, SnapshotTiles, read_snapshots, split_snapshots

log = logging.getLogger(__name__)
Emit = Callable[[dict], None]

MAX_STANDARD_DROP = 0.10
"""`better` allows the standard hold-out MAE to get at most this much worse (relative)."""
CAMERA_AUGMENT = Augment(
    scale=(0.35, 2.0), aspect=(0.8, 1.25), colour=0.3, greyscale=0.1, negatives=0.1, blur=0.1
)
"""Strong augmentation for a handful of snapshots: 3× zoom in to 2× out, colour, grey, blur, flips."""
REPLAY_AUGMENT = Augment(
    scale=(0.25, 2.0), aspect=(0.8, 1.25), colour=0.2, greyscale=0.1, negatives=0.15, blur=0.1
)
"""The shipped model's own recipe (crowdstream/engines/models/MODEL_CARD.md), so replayed tiles look as in training."""


TEXTURES = 5
"""Synthetic people-free textures made for the run, one of each kind (each costs up to seconds to draw on a
busy CPU; every tile drawn from one is a random crop, rotation and colour of it)."""


class FinetuneRunConfig(BaseModel):
    """Every setting of a fine-tune; recorded in the report."""

    model_config = ConfigDict(extra="forbid")

    dataset: Path
    base: str = "default"
    out: Path
    minutes: float = Field(5.0, gt=0, le=600, description="wall-clock training budget")
    steps: int | None = Field(
        None, ge=1, description="training steps (the minutes still cap the time): a run that is repeatable"
    )
    holdout: int | None = Field(None, ge=1, description="snapshots held out (default a fifth, at least 1)")
    standard_limit: int | None = Field(
        None, ge=1, description="standard hold-out images per part (all: None)"
    )
    last_blocks: int = Field(3, ge=0, le=16, description="backbone blocks trained with the decoder")
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(8, ge=1, le=64)
    replay_share: float = Field(
        0.5, ge=0, lt=1, description="share of tiles from ShanghaiTech training images"
    )
    replay_images: int = Field(40, ge=0, description="ShanghaiTech training images per part kept in memory")
    loss: Literal["points", "density"] = Field(
        "points",
        description="camera tiles: the point loss on the heads, or the previous loss (pixel, count and "
        "total variation against geometry-adaptive Gaussian maps, training.losses.density_loss)",
    )
    spread_neighbours: int = Field(
        3, ge=0, description="point loss: widen each head's geometry with its k nearest neighbours (0: off)"
    )
    replay_weight: float = Field(
        0.15, ge=0, description="weight of replayed tiles' distance from the base model"
    )
    empty_weight: float = Field(1.0, ge=0, description="weight of the density inside 'nobody here' boxes")
    replay_negatives: Literal["anchor", "zero", "none"] = Field(
        "anchor",
        description="replayed people-free tiles: anchored to the base model's answer like the rest of the "
        "replay, trained towards zero, or not drawn",
    )
    tiles: str = DEFAULT_TILES
    threads: int = Field(2, ge=1, le=64)
    seed: int = 0
    int8: bool = False
    data_root: Path = DEFAULT_DATA_ROOT

    @property
    def report_path(self) -> Path:
        return self.out.with_name(self.out.stem + ".report.json")


def replay_images(config: FinetuneRunConfig) -> list[LoadedImage]:
    """`replay_images` training-split images of each ShanghaiTech part, spread over the part."""
    return training_split_images(config.data_root, config.replay_images)


def training_split_images(data_root: Path, per_part: int | None = None) -> list[LoadedImage]:
    """Training-split images of each ShanghaiTech part (never the standard hold-out), `per_part` of them
    spread over the part (all: None); none when the data is not on this machine."""
    images = []
    for part, root in standard_parts(data_root).items():
        train, _ = holdout_split(list_dataset(root))
        images += load_images(train if per_part is None else spread(train, per_part), part, None)
    return images


def loaded(samples: list[Sample]) -> list[LoadedImage]:
    return [LoadedImage(sample, sample.load_image(), None, "camera") for sample in samples]


def tile_source(config: FinetuneRunConfig, train: list[Sample]) -> tuple[MixedTiles, int]:
    """The training tile stream and how many replay images it draws from."""
    camera = SnapshotTiles(
        loaded(train), "auto", 1, CAMERA_AUGMENT, config.seed, TextureBank(config.seed, TEXTURES)
    )
    replay_set = replay_images(config) if config.replay_images and config.replay_share else []
    replay = None
    if replay_set:
        augment = REPLAY_AUGMENT
        if config.replay_negatives == "none":
            augment = replace(REPLAY_AUGMENT, negatives=0.0)
        replay = TileDataset(replay_set, "auto", 1, augment, config.seed, camera.textures)
    else:
        log.warning("no ShanghaiTech training images to replay: the model may forget what it knew")
    zero = config.replay_negatives == "zero"
    return MixedTiles(camera, replay, config.replay_share, config.seed, zero), len(replay_set)


def step_loss(
    module: torch.nn.Module, teacher: torch.nn.Module, batch: dict, config: FinetuneRunConfig
) -> torch.Tensor:
    """Mean over the batch's tiles of: on camera tiles, the point loss on the density before the count head
    (the modules' last output while training, see training.onnx_weights.raw_density_name) plus the density
    left in "nobody here" boxes; on replayed tiles, how far the density moved from the base model's
    (people per 4×4-pixel cell, L1). Replay holds the base model's own answers, not the annotations: the
    point loss alone on replayed tiles still let the standard hold-out drift 14-24 % in ten minutes."""
    images = normalise_rgb(batch["images"])
    *_, density = module(images)
    camera, replay = ~batch["replay"], batch["replay"]
    total = density.new_zeros(())
    if camera.any():
        heads = head_loss(density[camera], batch["points"][camera], batch["valid"][camera], config)
        empty = (density[camera] * batch["empty"][camera]).flatten(1).sum(1).mean()
        total = total + (heads + config.empty_weight * empty) * camera.sum()
    if replay.any():
        with torch.no_grad():
            *_, target = teacher(images[replay])
        moved = (cell_counts(density[replay]) - cell_counts(target)).abs().flatten(1).sum(1).mean()
        total = total + config.replay_weight * moved * replay.sum()
    return total / len(images)


TARGET_DENSITY = DensityConfig(method="adaptive", sigma=1.0, min_sigma=0.5, max_sigma=8.0)
"""`loss: density` targets, in output pixels (a 224 input has 56): σ = 0.3 × the mean distance to the 3
nearest heads in the tile, 0.5-8 px (2-32 input px), 1 px for a head alone."""


def head_loss(
    density: torch.Tensor, points: torch.Tensor, valid: torch.Tensor, config: FinetuneRunConfig
) -> torch.Tensor:
    """The configured loss of camera tiles against their heads (points in output pixels, padded)."""
    if config.loss == "points":
        geometry = PointLossConfig(spread_neighbours=config.spread_neighbours)
        return point_loss(density, points, valid, geometry)["total"]
    size = density.shape[-1]
    targets = [
        density_map(tile[keep].cpu().numpy(), size, size, TARGET_DENSITY)
        for tile, keep in zip(points, valid, strict=True)
    ]
    target = torch.from_numpy(np.stack(targets))[:, None].to(density)
    return density_loss(density, target)["total"]


def cell_counts(density: torch.Tensor, cell: int = 4) -> torch.Tensor:
    """People per cell×cell block of output pixels."""
    return torch.nn.functional.avg_pool2d(density, cell) * cell * cell


def train(
    config: FinetuneRunConfig,
    module: torch.nn.Module,
    teacher: torch.nn.Module,
    parameters: list,
    tiles: MixedTiles,
    emit: Emit,
) -> dict:
    """Steps until the budget is spent (at least one); the learning rate warms up and anneals on time, or
    over `steps` when given (then the same seed gives the same model on a busy machine as on an idle one)."""
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=1e-4)
    budget = config.minutes * 60
    schedule = WarmupCosine(config.lr, total_steps=config.steps or 10**9, budget_seconds=budget)
    started, step, losses, last_emit = time.perf_counter(), 0, [], 0.0
    while step == 0 or schedule.progress(step, time.perf_counter() - started) < 1.0:
        elapsed = time.perf_counter() - started
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(schedule.progress(step, elapsed))
        batch = tiles.batch(step * config.batch_size, config.batch_size)
        loss = step_loss(module, teacher, batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(float(loss.detach()))
        now = time.perf_counter() - started
        if now - last_emit >= 2.0:
            last_emit = now
            done = schedule.progress(step, now)
            emit(
                {
                    "stage": "training",
                    "done": done,
                    "step": step,
                    "loss": float(np.mean(losses[-20:])),
                    "eta_s": now * (1 - done) / max(done, 1e-6),
                }
            )
    return {
        "steps": step,
        "tiles": step * config.batch_size,
        "seconds": time.perf_counter() - started,
        "final_loss": float(np.mean(losses[-20:])),
    }


class Progress:
    """Turns stage-local progress into the job's `progress` events: evaluating before (first 10 %),
    training (to 90 %), evaluating after; `eta_s` counts the evaluation still to come."""

    SPANS = {"before": (0.0, 0.1), "training": (0.1, 0.9), "after": (0.9, 1.0)}

    def __init__(self, emit: Emit, minutes: float):
        self.emit, self.minutes, self.eval_seconds = emit, minutes, 30.0

    def __call__(self, update: dict) -> None:
        phase = update.pop("stage")
        low, high = self.SPANS[phase]
        eta = update.pop("eta_s", None)
        if eta is None:
            eta = self.eval_seconds * (1 - update["done"]) + (
                self.minutes * 60 + self.eval_seconds if phase == "before" else 0.0
            )
        elif phase == "training":
            eta += self.eval_seconds
        stage = "training" if phase == "training" else "evaluating"
        fraction = round(low + (high - low) * update.pop("done"), 4)
        self.emit(
            {"event": "progress", "fraction": fraction, "stage": stage, "eta_s": round(eta, 1), **update}
        )


def evaluate_model(model: Path, held: list[Sample], config: FinetuneRunConfig, cached: bool, tick) -> dict:
    """Held-out snapshot MAE and standard hold-out MAE of one model file."""
    held_mae, predicted = snapshot_mae(model, held, config.tiles, config.threads)
    tick(0.2)
    standard, images = standard_mae(
        model,
        config.standard_limit,
        config.tiles,
        config.threads,
        cached,
        lambda share: tick(0.2 + 0.8 * share),
        config.data_root,
    )
    return {
        "holdout_mae": held_mae,
        "holdout_predicted": predicted,
        "standard_mae": standard,
        "standard_images": images,
    }


def is_better(before: dict, after: dict) -> bool:
    """The held-out snapshots improved and no standard part got more than MAX_STANDARD_DROP worse."""
    if not after["holdout_mae"] < before["holdout_mae"]:
        return False
    return all(
        after["standard_mae"][part] <= before["standard_mae"][part] * (1 + MAX_STANDARD_DROP)
        for part in before["standard_mae"]
    )


def run_finetune(config: FinetuneRunConfig, emit: Emit = lambda _event: None) -> dict:
    """The whole job: read and split the snapshots, score the base model, train, write the model (and
    its INT8 copy), score it, write the report; returns the report."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    samples = read_snapshots(config.dataset)
    train_set, held = split_snapshots(samples, config.holdout)
    base = resolve_model(config.base)
    module = load_onnx_module(base)  # a corrupt or unsupported (INT8) file is a one-line EngineError here
    names = trainable_names(onnx.load(str(base)), config.last_blocks)
    parameters = make_trainable(module, names)
    emit(
        {
            "event": "start",
            "dataset": str(config.dataset),
            "base_model": str(base),
            "snapshots": len(samples),
            "train": [s.image_path.name for s in train_set],
            "holdout": [s.image_path.name for s in held],
            "minutes": config.minutes,
            "trained_tensors": len(names),
            "niceness": os.nice(0),
            "threads": torch.get_num_threads(),
        }
    )
    progress = Progress(emit, config.minutes)
    started = time.perf_counter()
    before = evaluate_model(base, held, config, True, lambda d: progress({"stage": "before", "done": d}))
    progress.eval_seconds = max(time.perf_counter() - started, 5.0)
    tiles, replayed = tile_source(config, train_set)
    graph, teacher = onnx.load(str(base)), load_onnx_module(base)
    outputs = expose_raw_density(module, graph)
    expose_raw_density(teacher, graph)
    run = train(config, module, teacher, parameters, tiles, progress)
    module.output_names = outputs
    write_tuned(base, config.out, tuned_tensors(module, names))
    check_parity(module.eval(), config.out)
    after = evaluate_model(config.out, held, config, False, lambda d: progress({"stage": "after", "done": d}))
    report = {
        "base_model": str(base),
        "model": str(config.out),
        "snapshots": len(samples),
        "train": [s.image_path.name for s in train_set],
        "holdout": [s.image_path.name for s in held],
        "holdout_truth": [s.count for s in held],
        "holdout_mae_before": before["holdout_mae"],
        "holdout_mae_after": after["holdout_mae"],
        "holdout_predicted_before": before["holdout_predicted"],
        "holdout_predicted_after": after["holdout_predicted"],
        "standard_mae_before": before["standard_mae"],
        "standard_mae_after": after["standard_mae"],
        "standard_images": after["standard_images"],
        "better": is_better(before, after),
        "minutes": round(run["seconds"] / 60, 3),
        "tiles": run["tiles"],
        "steps": run["steps"],
        "final_loss": run["final_loss"],
        "replay_images": replayed,
        "trained_tensors": names,
        "settings": json.loads(config.model_dump_json()),
    }
    if config.int8:
        report["int8_model"] = str(quantize_copy(config, train_set))
    config.report_path.write_text(json.dumps(report, indent=2))
    return report


def quantize_copy(config: FinetuneRunConfig, train_set: list[Sample]) -> Path:
    """`<out>-int8.onnx`, calibrated like the shipped INT8 model on training tiles, the camera's own
    training snapshots among them (never a held-out one)."""
    from crowdstream.engines.preprocess import prepare_frame
    from crowdstream.engines.quantize import calibration_tiles, quantize_model

    tiles = [prepare_frame(sample.load_image(), "auto")[0] for sample in train_set]
    if standard_parts(config.data_root):
        tiles.append(calibration_tiles(config.data_root, 16))
    out = config.out.with_name(config.out.stem + "-int8.onnx")
    return quantize_model(config.out, out, np.concatenate(tiles))
