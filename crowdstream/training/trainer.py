"""The training loop: balanced tiles from every part, validation through the stream's own tiling each
epoch, atomic checkpoints (`last.pt`, `best.pt`) so an interrupted run resumes where it stopped.

It uses the machine it runs on: channels-last everywhere, tiles rendered on the training device
(training.tile_render); on CUDA, bf16 autocast and a few tile-planning threads; on
the CPU, fp32 (`crowdstream bench train` measured bf16 autocast no faster on the 2-core Zen 4 machine)."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from crowdstream.engines.errors import ConfigError
from crowdstream.engines.preprocess import prepare_frame
from crowdstream.training.annotations import split_items
from crowdstream.training.config import TrainConfig
from crowdstream.training.datasets import (
    Augment,
    LoadedImage,
    TileDataset,
    collate_tiles,
    load_images,
    normalise_rgb,
)
from crowdstream.training.density import DensityConfig
from crowdstream.training.loader import epoch_order, iterate_batches
from crowdstream.training.losses import LossWeights, PointLossConfig, density_loss, point_loss
from crowdstream.training.metrics import mae, rmse
from crowdstream.training.models import CrowdLite0, read_checkpoint
from crowdstream.training.schedule import WarmupCosine
from crowdstream.training.tile_render import TileRenderer

log = logging.getLogger(__name__)
LOG_FIELDS = ["epoch", "seconds", "tiles_per_s", "loss", "count", "lr", "progress", "score"]


def resolve_device(name: str) -> torch.device:
    """`auto` → CUDA when available, else the CPU; asking for CUDA without it is a configuration error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no CUDA device (CPU build or no GPU)")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def validation_score(per_part: dict[str, dict[str, float]]) -> float:
    """Checkpoint selection: mean of each part's MAE relative to its mean true count, so dense and sparse
    scenes weigh the same."""
    return float(np.mean([p["mae"] / max(p["mean_count"], 1.0) for p in per_part.values()]))


COLLAPSED_SHARE = 0.001
"""A model whose validation counts average under this share of the truth in every part has an empty map. The
dead CPU run read exactly 0; a freshly initialised decoder after one tiny epoch (the tests' smoke runs) reads
0.5-1.4 % of the truth and is merely untrained, so the line sits ten times below that."""


def collapsed(per_part: dict[str, dict[str, float]]) -> bool:
    """Whether the density map has died: every part's mean predicted count (truth + bias) is close to zero.
    Softplus outputs pushed far negative leave almost no gradient: the CPU recipe at lr 1e-3 died, came back
    for one epoch and died for good (model card), and an exported empty model would count nobody anywhere.
    No validation images: nothing to judge."""
    return bool(per_part) and all(
        p["mean_count"] + p["bias"] < COLLAPSED_SHARE * p["mean_count"] for p in per_part.values()
    )


@torch.no_grad()
def predict_counts(
    model: torch.nn.Module, images: list[LoadedImage], tiles: str, batch: int = 32
) -> np.ndarray:
    """Whole-image counts through the production tiling (engines.preprocess.prepare_frame), in fp32 on the
    model's device."""
    model.eval()
    device = next(model.parameters()).device
    counts = []
    for item in images:
        inputs, _ = prepare_frame(item.image, tiles)
        total = 0.0
        for start in range(0, len(inputs), batch):
            total += float(model(torch.from_numpy(inputs[start : start + batch]).to(device)).sum())
        counts.append(total)
    return np.array(counts)


def evaluate_parts(
    model: torch.nn.Module, images: list[LoadedImage], tiles: str
) -> dict[str, dict[str, float]]:
    predicted = predict_counts(model, images, tiles)
    report = {}
    for part in sorted({i.part for i in images}):
        chosen = [k for k, i in enumerate(images) if i.part == part]
        truth = np.array([images[k].sample.count for k in chosen], dtype=float)
        report[part] = {
            "mae": mae(predicted[chosen], truth),
            "rmse": rmse(predicted[chosen], truth),
            "bias": float((predicted[chosen] - truth).mean()),
            "mean_count": float(truth.mean()),
        }
    return report


class Trainer:
    def __init__(self, config: TrainConfig):
        self.config = config
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.config = config = config.with_data()  # the parts it trains on, recorded with its checkpoints
        cuda = self.device.type == "cuda"
        self.autocast = config.precision == "bf16" or (config.precision == "auto" and cuda)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = CrowdLite0(
            pretrained=config.init_from is None,
            frozen_blocks=config.frozen_blocks,
            train_batchnorm=config.train_batchnorm,
        )
        if config.init_from is not None:
            self._load_weights(Path(config.init_from))
        self.model.to(self.device, memory_format=self.memory_format)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        budget = config.time_budget_minutes * 60 if config.time_budget_minutes else None
        self.schedule = WarmupCosine(config.lr, config.epochs * self._steps_per_epoch(), budget)
        self.step, self.elapsed = 0, 0.0
        self.weights = LossWeights(config.loss_pixel, config.loss_count, config.loss_tv)
        self.point_config = PointLossConfig(config.loss_sigma, config.loss_background)
        self.start_epoch, self.best_score = 0, float("inf")

    @property
    def samples_per_part(self) -> int:
        """Tiles per part per epoch; a `limit`ed smoke run draws at most 4 per image."""
        limit = self.config.limit
        return min(self.config.samples_per_part, 4 * limit) if limit else self.config.samples_per_part

    def _steps_per_epoch(self) -> int:
        parts = len(self.config.data_roots)
        return -(-self.samples_per_part * parts // self.config.batch_size)

    def load_data(self) -> tuple[list[LoadedImage], list[LoadedImage]]:
        return self.load_data_for(self.config)

    @staticmethod
    def load_data_for(config: TrainConfig) -> tuple[list[LoadedImage], list[LoadedImage]]:
        """(training images, held-out validation images) of every part, in memory with density maps."""
        needs_maps = config.loss == "density" or config.loss_warmup > 0
        density = DensityConfig(method=config.density_method) if needs_maps else None
        train, validation = [], []
        for part, root in sorted(config.with_data().data_roots.items()):
            if not Path(root).is_dir():
                raise ConfigError(f"data_roots.{part}: {root} is not a folder")
            train_items, val_items = split_items(root, config.validation_every)
            train += load_images(train_items, part, density, config.limit)
            validation += load_images(val_items, part, density, config.limit)
        return train, validation

    def _load_weights(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"init_from: {path} is not a checkpoint file")
        self.model.load_state_dict(read_checkpoint(path)["model"])

    def resume(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path}: nothing to resume (no last.pt in {self.out})")
        state = read_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.start_epoch, self.best_score = state["epoch"] + 1, state["best_score"]
        self._truncate_log(self.start_epoch)
        log.info("resumed from %s at epoch %d", path, self.start_epoch + 1)

    def fit(self) -> dict:
        train, validation = self.load_data()
        dataset = TileDataset(
            train,
            self.config.tiles,
            self.samples_per_part,
            Augment(
                scale=self.config.scale_jitter,
                aspect=self.config.aspect_jitter,
                colour=self.config.colour_jitter,
                greyscale=self.config.greyscale,
                negatives=self.config.negatives,
                blur=self.config.blur,
            ),
            self.config.seed,
        )
        self.renderer = TileRenderer(dataset.sources, self.device)
        (self.out / "config.json").write_text(self.config.model_dump_json(indent=2))
        report = {}
        for epoch in range(self.start_epoch, self.config.epochs):
            if self.progress >= 1.0:
                log.info("time budget spent after %d epochs", epoch)
                break
            dataset.set_epoch(epoch)
            started = time.perf_counter()
            losses = self._train_epoch(dataset, epoch)
            train_seconds = time.perf_counter() - started
            report = evaluate_parts(self.model, validation, self.config.tiles)
            score = validation_score(report)
            row = {
                "epoch": epoch + 1,
                "seconds": round(time.perf_counter() - started, 1),
                "tiles_per_s": round(losses["tiles"] / train_seconds, 1),
                **losses,
                "lr": self.optimizer.param_groups[0]["lr"],
                "progress": round(self.progress, 4),
                "score": score,
            }
            for part, values in report.items():
                row.update(
                    {
                        f"{part}_mae": values["mae"],
                        f"{part}_rmse": values["rmse"],
                        f"{part}_bias": values["bias"],
                    }
                )
            self._log_row(row)
            self._checkpoint(epoch, score, report)
            if collapsed(report):
                log.warning(
                    "epoch %d: every validation image counts about 0: the density map has collapsed at lr %g "
                    "(stop and rerun with a lower --lr)",
                    epoch + 1,
                    self.config.lr,
                )
            left = self.schedule.seconds_left(self.step, self.elapsed)
            tqdm.write(
                " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                + f" training_left={left / 60:.0f}min"
            )
        plot_curves(self.out / "log.csv", self.out / "curves.png")
        return report

    @property
    def loader_workers(self) -> int:
        if self.config.workers is not None:
            return self.config.workers
        # Plans are cheap, so a few threads keep a GPU fed; the previous loss's density targets are resized
        # on the CPU (OpenCV releases the GIL), so it gets more. On the CPU the model is the bottleneck.
        if self.device.type != "cuda":
            return 0
        wanted = 2 if self.config.loss == "points" else (os.cpu_count() or 2) - 2
        return max(1, min(wanted, (os.cpu_count() or 2) - 1))

    def _loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward (autocast where configured) and the configured loss, computed in fp32."""
        batch = {
            k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
        }
        images = normalise_rgb(self.renderer.render(batch["plans"])).contiguous(
            memory_format=self.memory_format
        )
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            pred = self.model(images)
        pred = pred.float()
        if self.current_loss == "density":
            return density_loss(pred, batch["density"], self.weights)
        return point_loss(pred, batch["points"], batch["valid"], self.point_config)

    def _train_epoch(self, dataset: TileDataset, epoch: int) -> dict[str, float]:
        self.model.train()
        sums: dict[str, float] = {}
        order = epoch_order(len(dataset), self.config.seed, epoch)
        workers = self.loader_workers
        if workers:
            cv2.setNumThreads(1)  # parallelism comes from the tile threads; nested OpenCV pools only contend
        batches = iterate_batches(dataset, order, self.config.batch_size, collate_tiles, workers)
        steps = -(-len(order) // self.config.batch_size)
        bar = tqdm(  # a time budget ends most runs long before their last epoch: say where the schedule is
            batches,
            total=steps,
            desc=f"epoch {epoch + 1}, {self.progress:.0%} of the schedule",
            unit="batch",
            leave=False,
        )
        last, tiles = time.perf_counter(), 0
        for batch in bar:
            if self.progress >= 1.0:
                break  # the budget ends mid-epoch: stop annealed rather than idle at the floor rate
            tiles += len(batch["plans"])
            for group in self.optimizer.param_groups:
                group["lr"] = self.schedule.lr(self.progress)
            terms = self._loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            self.optimizer.step()
            self.step += 1
            now = time.perf_counter()
            self.elapsed += now - last  # waiting for data counts: the budget is wall-clock training time
            last = now
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.set_postfix(loss=f"{float(terms['total'].detach()):.3f}")
        done = max(1, -(-tiles // self.config.batch_size))
        return {
            "tiles": tiles,
            "loss": sums.pop("total", 0.0) / done,
            **{k: v / done for k, v in sums.items()},
        }

    @property
    def current_loss(self) -> str:
        """The loss this step trains with: the point loss after its density-loss warm-up (`loss_warmup`)."""
        if self.config.loss == "points" and self.progress < self.config.loss_warmup:
            return "density"
        return self.config.loss

    @property
    def progress(self) -> float:
        return self.schedule.progress(self.step, self.elapsed)

    def _truncate_log(self, epochs: int) -> None:
        """Drop log rows of epochs after the checkpoint (written just before an interruption)."""
        path = self.out / "log.csv"
        if not path.exists():
            return
        with path.open() as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames, [r for r in reader if int(r["epoch"]) <= epochs]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields or LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def _log_row(self, row: dict) -> None:
        path = self.out / "log.csv"
        if row["epoch"] == 1 and path.exists():
            path.unlink()
        new = not path.exists()
        if new:
            fields = list(row)
        else:
            with path.open() as handle:
                fields = next(csv.reader(handle))
        with path.open("a", newline="") as handle:
            # after a density-loss warm-up the point loss has no pixel or tv terms: those cells stay empty
            writer = csv.DictWriter(handle, fieldnames=fields, restval="", extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _checkpoint(self, epoch: int, score: float, report: dict) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "epoch": epoch,
            "best_score": min(score, self.best_score),
            "config": self.config.model_dump(mode="json"),
            "validation": report,
        }
        if score < self.best_score:  # best before last: a run killed in between resumes with its best saved
            self.best_score = score
            _atomic_save(state, self.out / "best.pt")
            (self.out / "best.json").write_text(
                json.dumps({"epoch": epoch + 1, "score": score, "validation": report}, indent=2)
            )
        _atomic_save(state, self.out / "last.pt")


def _atomic_save(state: dict, path: Path) -> None:
    """Write then rename, so an interrupt never leaves a half-written checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Learning curves (loss and per-part validation MAE) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [float(r["loss"]) for r in rows], label="train loss")
    left.set_xlabel("epoch"), left.set_ylabel("loss"), left.legend()
    for key in rows[0]:
        if key.endswith("_mae"):
            right.plot(epochs, [float(r[key]) for r in rows], marker="o", label=f"part {key[:-4]} MAE")
    right.set_xlabel("epoch"), right.set_ylabel("validation MAE (people)"), right.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
