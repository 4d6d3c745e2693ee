"""Training end to end on a few real images: checkpoints, log, curves, count head, ONNX export, resume."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.data_paths import DATA_ROOT, PART_A, PART_B, needs_data

pytest.importorskip("torch")


@needs_data
def test_train_small_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(train_command(out, epochs=1), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        "last.pt",
        "best.pt",
        "log.csv",
        "curves.png",
        "crowd-lite0.onnx",
        "summary.json",
        "config.json",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 1 and {"A_mae", "B_mae", "loss"} <= set(rows[0])
    assert float(rows[0]["progress"]) == 1.0 and "training_left=0min" in result.stdout  # the schedule is done
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["count_head"]["parts"]) == {"A", "B"}

    (out / "crowd-lite0.onnx").unlink()  # the second stage alone, as after a --no-finalize run on a GPU
    again = subprocess.run(
        [*train_command(out, epochs=1), "--finalize-only"], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "crowd-lite0.onnx").is_file() and "epoch=" not in again.stdout  # no training epoch ran

    from crowdstream.engines.engine import load_engine

    engine = load_engine(out / "crowd-lite0.onnx")
    density, count = engine.infer(np.zeros((2, 3, 224, 224), np.float32))
    assert density.shape == (2, 1, 56, 56) and count.shape == (2,)
    assert np.allclose(density.reshape(2, -1).sum(1), count, rtol=1e-3, atol=1e-3)


@needs_data
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        train_command(out, epochs=3), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (out / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # the harshest interruption: no chance to clean up
    process.wait()
    done = len(list(csv.DictReader((out / "log.csv").open())))
    assert 1 <= done < 3
    result = subprocess.run(
        [*train_command(out, epochs=3), "--resume"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert [round(float(row["progress"]), 3) for row in rows] == [0.333, 0.667, 1.0]  # the schedule went on


def train_command(out, epochs):
    return [
        sys.executable,
        "-m",
        "crowdstream",
        "train",
        "--epochs",
        str(epochs),
        "--limit",
        "6",
        "--samples-per-part",
        "8",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--threads",
        "2",
        "--data-root",
        str(DATA_ROOT),
    ]


def test_finalising_without_a_checkpoint_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "crowdstream", "train", "--finalize-only", "--out", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "best.pt: no checkpoint to finalise" in result.stderr


def test_a_collapsed_map_is_told_apart_from_a_sparse_one():
    from crowdstream.training.trainer import collapsed

    def report(truth, predicted):
        return {"mean_count": truth, "bias": predicted - truth, "mae": abs(predicted - truth)}

    assert collapsed({"A": report(450.0, 0.0), "B": report(110.0, 0.0)})
    assert collapsed({"A": report(450.0, 0.2), "B": report(110.0, 0.05)})  # under 0.1 % of the truth
    assert not collapsed({"A": report(486.7, 2.5), "B": report(184.3, 0.8)})  # ~0.5 %: one tiny epoch
    assert not collapsed({"A": report(450.0, 0.0), "B": report(110.0, 30.0)})  # one part still counts
    assert not collapsed({"A": report(450.0, 20.0), "B": report(110.0, 5.0)})  # a poor model, not a dead one
    assert not collapsed({})  # no validation images: nothing to judge


def test_finalising_a_collapsed_run_refuses_to_export(tmp_path):
    import torch

    out = tmp_path / "run"
    out.mkdir()
    dead = {"mean_count": 110.0, "bias": -110.0, "mae": 110.0, "rmse": 120.0}
    torch.save({"validation": {"A": dead, "B": dead}, "config": {"lr": 0.001}}, out / "best.pt")
    result = subprocess.run(
        [sys.executable, "-m", "crowdstream", "train", "--finalize-only", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the training collapsed" in result.stderr and "lower --lr than 0.001" in result.stderr
    assert not (out / "crowd-lite0.onnx").exists()


def test_bad_training_config_is_one_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: -3\nbogus: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "crowdstream", "train", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.yaml" in result.stderr


@pytest.mark.parametrize(
    "config",
    sorted((Path(__file__).parents[1] / "crowdstream" / "training" / "configs").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_every_documented_training_config_validates(config: Path) -> None:
    """The model card names these files as the commands behind its figures: they must keep loading."""
    from crowdstream.training.config import load_train_config

    settings = load_train_config(config, {})
    assert settings.out.name == config.stem  # each run writes to its own folder


def test_train_finds_a_shipped_recipe_by_name(tmp_path, monkeypatch) -> None:
    """`train -c crowd-lite0` reads the recipe shipped in the package, from any folder; a file wins."""
    from crowdstream.training.cli import RECIPES, recipe_or_file, recipes

    monkeypatch.chdir(tmp_path)
    assert {"crowd-lite0", "crowd-lite0-gpu"} <= set(recipes())
    assert recipe_or_file("crowd-lite0") == Path(str(RECIPES / "crowd-lite0.yaml"))
    (tmp_path / "crowd-lite0").write_text("epochs: 1\n")
    assert recipe_or_file("crowd-lite0") == Path("crowd-lite0")
    assert recipe_or_file("mine.yaml") == Path("mine.yaml")


@needs_data
def test_the_point_loss_takes_over_after_its_density_loss_warm_up(tmp_path):
    """From ImageNet weights with a frozen trunk the point loss alone drove every density to ~0 within ten
    steps (1e-3 people per tile, and softplus leaves no gradient back): `loss_warmup` trains the first share
    of the schedule with the density loss, then the point loss; the log says which epoch had which."""
    from crowdstream.training.config import TrainConfig
    from crowdstream.training.trainer import Trainer

    config = TrainConfig(
        loss="points", loss_warmup=0.5, limit=2, samples_per_part=8, batch_size=8, epochs=2,
        frozen_blocks=13, threads=2, device="cpu", select="last", out=tmp_path / "run",
        data_roots={"A": PART_A, "B": PART_B},
    )  # fmt: skip
    trainer = Trainer(config)
    assert trainer.current_loss == "density"
    trainer.fit()
    assert trainer.current_loss == "points"
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0]["pixel"] and rows[0]["tv"]  # the density loss's terms
    assert rows[1]["pixel"] == rows[1]["tv"] == "" and float(rows[1]["count"]) > 0  # the point loss's only
