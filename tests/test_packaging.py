"""What a service install is: `crowdstream serve` and `count` run without ever importing torch, scipy, tqdm
or the training package; without the `train` extra (or without the training package at all, as in the
service images) the CLI still lists the training commands and says in one line what to install."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crowdstream.cli import (
    TRAIN_EXTRA_MODULES,
    TRAINING_BENCHMARKS,
    TRAINING_COMMANDS,
    TRAINING_MISSING,
    build_parser,
)
from crowdstream.stream.sources import DEMO_CLIP
from tests.conftest import free_port, subcommands

ROOT = Path(__file__).resolve().parents[1]
TRAINING_ONLY = (*TRAIN_EXTRA_MODULES, "crowdstream.training")
RECORD_IMPORTS = (
    "import sys\n"
    "IMPORTED = set()\n"
    "class Recorder:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        IMPORTED.add('.'.join(name.split('.')[:2]) if name.startswith('crowdstream.') else name.split('.')[0])\n"
    "sys.meta_path.insert(0, Recorder())\n"
)
SERVE_UNTIL_COUNTED = (
    RECORD_IMPORTS + "import json, os, signal, threading, time, urllib.request\n"
    "from crowdstream.cli import main\n"
    "port = sys.argv[1]\n"
    "def stop_once_counted():\n"
    "    deadline = time.monotonic() + 150\n"
    "    while time.monotonic() < deadline:\n"
    "        try:\n"
    "            with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/cameras', timeout=2) as r:\n"
    "                if json.load(r)['cameras'][0]['count'] is not None:\n"
    "                    break\n"
    "        except OSError:\n"
    "            pass\n"
    "        time.sleep(0.2)\n"
    "    os.kill(os.getpid(), signal.SIGTERM)\n"
    "threading.Thread(target=stop_once_counted, daemon=True).start()\n"
    "code = main(['serve', '--port', port])\n"
    "print(json.dumps({'code': code, 'imported': sorted(IMPORTED)}))\n"
)


def without(*modules: str) -> str:
    """A `crowdstream` entry point for which importing `modules` fails, as on an install without them."""
    blocked = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return f"import sys\n{blocked}from crowdstream.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def run(code: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.mark.timeout(240)
def test_serve_counts_without_importing_anything_only_training_needs() -> None:
    result = run(SERVE_UNTIL_COUNTED, str(free_port()), timeout=200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert "onnxruntime" in report["imported"]  # the recorder saw the service's own imports
    assert set(report["imported"]) & set(TRAINING_ONLY) == set()


def test_count_runs_on_a_service_install(tmp_path: Path) -> None:
    result = run(without(*TRAINING_ONLY), "count", str(DEMO_CLIP), "--fps", "0.2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] >= 6


def test_without_the_train_extra_training_commands_say_what_to_install(tmp_path: Path) -> None:
    listing = run(without("torch", "scipy", "tqdm"), "--help")
    assert listing.returncode == 0 and "eval" in listing.stdout and "train" in listing.stdout
    result = run(without("torch", "scipy", "tqdm"), "eval", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        "crowdstream: error: this command needs tqdm, part of the train extra: pip install 'crowdstream[train]'\n"
    )


@pytest.mark.parametrize(
    ("args", "command"),
    [(["train", "--epochs", "1"], "train"), (["eval", "x"], "eval"), (["bench", "models"], "bench models")],
)
def test_without_the_training_package_its_commands_are_listed_and_explained(
    args: list[str], command: str
) -> None:
    listing = run(without("crowdstream.training"), "--help")
    assert listing.returncode == 0
    for name in TRAINING_COMMANDS:
        assert f"{name} (not installed: needs the training package)" in listing.stdout
    result = run(without("crowdstream.training"), *args)
    assert result.returncode == 2
    assert result.stderr == f"crowdstream: error: {TRAINING_MISSING.format(command)}\n"


def test_the_stand_in_names_are_the_ones_training_registers() -> None:
    from crowdstream.training import cli as training_cli

    commands = argparse.ArgumentParser().add_subparsers()
    bench = argparse.ArgumentParser().add_subparsers()
    training_cli.register(commands, bench)
    assert set(commands.choices) == set(TRAINING_COMMANDS)
    assert set(bench.choices) == set(TRAINING_BENCHMARKS)
    assert set(TRAINING_COMMANDS) <= set(subcommands(build_parser()))
    assert "train" not in subcommands(build_parser(["serve", "--port", "0"]))  # serve never loads training


def test_without_torch_train_says_how_to_get_the_cpu_build() -> None:
    result = run(without("torch"), "train", "--epochs", "1")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "pip install 'crowdstream[train]'" in result.stderr
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in result.stderr
