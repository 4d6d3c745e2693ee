"""The wheel as a new user meets it: built from this checkout, installed in a fresh venv outside it and run
from another folder. Nothing is downloaded: the wheel is built without build isolation, installed with
--no-deps --no-index, and the venv reaches the dependencies through a path file naming this venv's
site-packages (a path file's folder is only put on sys.path, so the checkout's editable install stays out).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from crowdstream.engines.data_root import DATA_ROOT_ENV

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel . --no-deps` of the working tree, built from a copy so no build/ lands in the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=CHECKOUT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    source = work / "source"
    for name in filter(None, listed.decode().split("\0")):
        if (CHECKOUT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((CHECKOUT / name).read_bytes())
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-q", "-w", str(work / "dist")], check=True, timeout=300)
    (built,) = (work / "dist").glob("crowdstream-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed; its dependencies are this venv's."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    install = ["install", "--no-deps", "--no-index", "-q", str(wheel)]
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *install], check=True, timeout=300)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "checkout-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return root


def run(venv: Path, folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`crowdstream ARGS` of the venv, run in `folder` with no data root named."""
    return subprocess.run(
        [str(venv / "bin" / "crowdstream"), *args],
        cwd=folder, env=clean_environment(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def clean_environment() -> dict[str, str]:
    drop = ("PYTHONPATH", DATA_ROOT_ENV)
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("CROWDSTREAM_")}


def test_the_wheel_holds_one_import_package_and_every_packaged_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
    assert {n.split("/")[0] for n in names} == {"crowdstream", info}
    assert zipfile.ZipFile(wheel).read(f"{info}/top_level.txt").decode().split() == ["crowdstream"]
    tracked = subprocess.run(
        ["git", "ls-files", "crowdstream"], cwd=CHECKOUT, capture_output=True, text=True, check=True
    ).stdout.split()
    data = {n for n in tracked if not n.endswith(".py") and (CHECKOUT / n).is_file()}
    assert data - set(names) == set()  # models, demo clip, page, openapi.json, recipes, example config
    for needed in (
        "crowdstream/engines/models/crowd-lite0.onnx",
        "crowdstream/stream/demo/crowd-demo.mp4",
        "crowdstream/stream/web/static/index.html",
        "crowdstream/stream/web/openapi.json",
        "crowdstream/training/configs/crowd-lite0.yaml",
        "crowdstream/stream/examples/cameras.yaml",
    ):
        assert needed in names


def test_the_venv_imports_crowdstream_from_the_wheel_and_nothing_else(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, crowdstream; "
        "print(json.dumps([crowdstream.__file__] + "
        "[importlib.util.find_spec(n) is not None for n in ('stream', 'engines', 'training')]))"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    where, *others = json.loads(result.stdout)
    assert Path(where).is_relative_to(venv) and others == [False, False, False]


def test_count_demo_counts_the_bundled_clip(venv: Path, tmp_path: Path) -> None:
    result = run(venv, tmp_path, "count", "demo", "--fps", "0.25", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["path"]).is_relative_to(venv) and report["path"].endswith("crowd-demo.mp4")
    assert report["frames"] == 8 and report["mean"] > 0  # 28.5 s at one frame every 4 s


def test_serve_runs_the_example_config_and_counts(venv: Path, tmp_path: Path) -> None:
    example = run(venv, tmp_path, "config", "example", timeout=60)
    assert example.returncode == 0, example.stderr
    (tmp_path / "c.yaml").write_text(example.stdout)
    port = free_port()
    command = [str(venv / "bin" / "crowdstream"), "serve", "-c", "c.yaml", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        camera = first_count(f"http://127.0.0.1:{port}/api/cameras", server, timeout=240)
        assert camera["id"] == "demo" and camera["count"] > 0 and camera["url"] == "demo"
    finally:
        server.send_signal(signal.SIGINT)
        _out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err[-3000:]


def test_check_negatives_without_a_data_root_says_what_it_left_out(venv: Path, tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    result = run(venv, tmp_path, "check", "negatives", "--tiles", "1x1")
    assert result.returncode == 0, result.stderr
    assert "left out: holdout-crop: no data root" in result.stdout
    assert "over package, synthetic:" in result.stdout


def test_a_shipped_recipe_without_a_data_root_is_a_one_line_error(venv: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    result = run(venv, tmp_path, "train", "-c", "crowd-lite0", "--limit", "1", "--out", "run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no data root" in lines[0] and DATA_ROOT_ENV in lines[0], result.stderr


def test_finetune_on_three_snapshots_is_guarded_by_the_shipped_replay_set(venv: Path, tmp_path: Path) -> None:
    """Issue 28: no data root anywhere, yet replay runs (from the crops the wheel ships) and the report
    names what guarded the model and what judged it."""
    pytest.importorskip("torch")
    camera = tmp_path / "camera"
    camera.mkdir()
    for annotation in sorted((CHECKOUT / "crowdstream" / "training" / "replay" / "check").glob("B-*.json"))[
        -3:
    ]:
        for path in (annotation, annotation.with_suffix(".jpg")):
            (camera / path.name).write_bytes(path.read_bytes())
    result = run(
        venv, tmp_path, "finetune", "camera", "-o", "gate.onnx", "--minutes", "0.05", "--standard-limit", "2",
        "--threads", "1", "--nice", "0", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gate.report.json").read_text())
    assert report["replay_images"] > 0 and report["anchor_tiles"] > 0, report
    assert "shipped" in report["replay_source"] and "shipped" in report["standard_set"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_count(url: str, server: subprocess.Popen, timeout: float) -> dict:
    """The first camera of /api/cameras once it has a count (the service stays up meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1][-3000:]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                camera = json.load(response)["cameras"][0]
            if camera["count"] is not None:
                return camera
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"no count from {url} within {timeout} s")
