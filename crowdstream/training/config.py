"""Training configuration: one validated YAML file, overridable by command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crowdstream.engines.data_root import resolve_data_root
from crowdstream.engines.errors import ConfigError
from crowdstream.engines.frames import HOLDOUT_EVERY, shanghaitech_part
from crowdstream.engines.preprocess import parse_tiles


def shanghaitech_parts(data_root: Path) -> dict[str, Path]:
    """`data_roots` for ShanghaiTech parts A and B under a data root."""
    return {part: shanghaitech_part(part, data_root) for part in ("A", "B")}


class TrainConfig(BaseModel):
    """Everything a training run depends on; saved next to its checkpoints."""

    model_config = ConfigDict(extra="forbid")

    data_roots: dict[str, Path] = Field(
        default_factory=dict,
        description="part name → ShanghaiTech- or NWPU-layout folder; every part is sampled equally. Empty: "
        "ShanghaiTech parts A and B under the data root (--data-root or $CROWDSTREAM_DATA)",
    )
    validation_every: int = Field(
        HOLDOUT_EVERY, ge=2, description="every n-th image of each part is held out"
    )
    tiles: str = "auto"
    density_method: str = "adaptive"
    epochs: int = Field(30, ge=1, description="planned epochs (an upper bound when a time budget is set)")
    time_budget_minutes: float | None = Field(
        None, gt=0, description="end the run annealed once this much training time is spent"
    )
    samples_per_part: int = Field(800, ge=1, description="random tiles drawn from each part per epoch")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(
        3e-4,
        gt=0,
        description="peak learning rate. 1e-3 suits the GPU recipe (every layer and BatchNorm trained); with "
        "BatchNorm frozen it killed the CPU recipe's density map within three epochs",
    )
    weight_decay: float = Field(1e-4, ge=0)
    frozen_blocks: int = Field(3, ge=0, le=16)
    train_batchnorm: bool = Field(
        False, description="update BatchNorm statistics (worth it at GPU batch sizes)"
    )
    loss: Literal["points", "density"] = Field(
        "points",
        description="points: Bayesian loss on the head points; density: the previous Gaussian-map loss",
    )
    loss_warmup: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="points loss: share of the schedule trained with the density loss first. From ImageNet "
        "weights with a frozen trunk the point loss alone drives the whole map to zero within ten steps (its "
        "background term outweighs the heads until the decoder can tell them apart) and softplus leaves no "
        "gradient to come back; a short density-loss start teaches where heads are first",
    )
    loss_sigma: float = Field(2.0, gt=0, description="points loss: head likelihood spread, output pixels")
    loss_background: float = Field(3.0, gt=0, description="points loss: background radius, output pixels")
    loss_pixel: float = 0.01
    loss_count: float = 1.0
    loss_tv: float = 0.1
    scale_jitter: tuple[float, float] = (0.75, 1.33)
    aspect_jitter: tuple[float, float] = (1.0, 1.0)
    negatives: float = Field(0.0, ge=0, le=0.5, description="share of people-free tiles")
    blur: float = Field(0.0, ge=0, le=1, description="chance of a defocus blur per tile")
    colour_jitter: float = Field(0.2, ge=0, le=1)
    greyscale: float = Field(0.1, ge=0, le=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast on CUDA, fp32 on the CPU (bf16 was not faster there: bench train)",
    )
    channels_last: bool = Field(
        True,
        description="channels-last tensors: 2x the fp32 tiles/s of contiguous on the 2-core CPU (bench train)",
    )
    workers: int | None = Field(
        None,
        ge=0,
        description="tile-planning threads; None: 0 on the CPU, 2 on CUDA (cores-2 for the density loss)",
    )
    select: Literal["best", "last"] = Field(
        "best", description="checkpoint to finalise: best validation score, or the last (annealed) epoch"
    )
    threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")
    limit: int | None = Field(None, ge=1, description="use at most this many images per part (smoke runs)")
    init_from: Path | None = Field(
        None, description="start from this checkpoint's weights (fine-tuning; fresh optimiser and schedule)"
    )
    out: Path = Path("runs/latest")

    def with_data(self) -> TrainConfig:
        """This config with its parts named: `data_roots` as set, else ShanghaiTech parts A and B under
        the data root ($CROWDSTREAM_DATA; a one-line error naming the ways to give one when none is)."""
        if self.data_roots:
            return self
        return self.model_copy(update={"data_roots": shanghaitech_parts(resolve_data_root())})

    @field_validator("scale_jitter", "aspect_jitter")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError(f"must be (low, high) with 0 < low <= high, got {value}")
        return value

    @field_validator("tiles")
    @classmethod
    def _tiles(cls, value: str) -> str:
        parse_tiles(value)
        return value


def load_train_config(path: Path | None, overrides: dict) -> TrainConfig:
    """Read the YAML file (if any), apply non-None overrides, validate; raise ConfigError on mistakes."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path or 'flags'}: {key}: {first['msg']}") from exc
