"""deploy/prometheus checked by Debian's `promtool`, and a real Prometheus server scraping a running
`crowdstream serve` on loopback with the shipped scrape config and alert rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from crowdstream.stream.soak.processes import stop_process_group
from tests.conftest import ServiceProcess, free_port, wait_for_port

PROMETHEUS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install -y prometheus)")
    return path


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("config", ["prometheus.yml", "kubernetes.yml"])
def test_scrape_configs_pass_promtool(config: str) -> None:
    result = promtool("check", "config", "--syntax-only", str(PROMETHEUS / config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_promtool() -> None:
    result = promtool("check", "rules", str(PROMETHEUS / "rules" / "crowd.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 rules found" in result.stdout


def test_alert_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(PROMETHEUS / "tests" / "crowd_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_loosened_rule_fails_its_unit_tests(tmp_path: Path) -> None:
    """The unit tests really pin the thresholds: moving LOS E from 1.08 to 1.5 p/m² must break them."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    rules = (PROMETHEUS / "rules" / "crowd.yml").read_text()
    assert "> 1.08" in rules
    (tmp_path / "rules" / "crowd.yml").write_text(rules.replace("> 1.08", "> 1.5"))
    shutil.copy(PROMETHEUS / "tests" / "crowd_test.yml", tmp_path / "tests")
    result = promtool("test", "rules", str(tmp_path / "tests" / "crowd_test.yml"))
    assert result.returncode != 0 and "CrowdDensityHigh" in result.stdout + result.stderr


class Prometheus:
    """A real Prometheus server on loopback with its own storage folder."""

    def __init__(self, config: dict, workdir: Path) -> None:
        self.port = free_port()
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        command = [
            tool("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.port, timeout=30)
        self._wait_ready(timeout=60)

    def _wait_ready(self, timeout: float) -> None:
        """The port opens before the storage is up; /-/ready answers 503 until queries can run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5):
                    return
            except OSError:  # HTTPError (503) is an OSError too
                time.sleep(0.2)
        pytest.fail(f"prometheus not ready within {timeout} s:\n{self.log.read_text()[-2000:]}")

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> list[dict]:
        return self.api("query", query=expression)["result"]

    def wait_for(self, expression: str, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := self.query(expression):
                return result
            time.sleep(0.5)
        pytest.fail(f"{expression} returned nothing within {timeout} s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process_group(self.process)


def scrape_config_for(port: int) -> dict:
    """deploy/prometheus/prometheus.yml as shipped, pointed at one local worker and scraping every second."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS / "rules" / "*.yml")]
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "crowdstream")
    del job["dns_sd_configs"], job["file_sd_configs"]  # compose's service discovery
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict], Prometheus]]:
    servers: list[Prometheus] = []

    def start(config: dict) -> Prometheus:
        servers.append(Prometheus(config, tmp_path))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_prometheus_scrapes_crowd_people_from_a_running_worker(service_process, prometheus) -> None:
    camera = {
        "id": "plaza",
        "url": "demo",
        "max_fps": 2,
        "zones": [{"name": "left", "polygon": [[0, 0], [640, 0], [640, 720], [0, 720]], "area_m2": 40}],
    }
    served: ServiceProcess = service_process({"cameras": [camera], "redis": {"embedded": False}})
    server = prometheus(scrape_config_for(served.port))
    people = server.wait_for('crowd_people{job="crowdstream",camera="plaza",zone=""}')
    assert len(people) == 1 and float(people[0]["value"][1]) > 0
    zone = server.wait_for('crowd_density_people_per_square_meter{camera="plaza",zone="left"}')
    assert float(zone[0]["value"][1]) >= 0
    assert server.query('up{job="crowdstream"} == 1')
    # The same rules Prometheus would alert with are loaded and evaluate cleanly against live series.
    groups = server.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {group["name"] for group in groups} == {"crowd-density", "crowd-streams", "crowd-redis"}
    server.wait_for("count(ALERTS) or vector(0)")  # at least one rule evaluation has happened
    deadline = time.monotonic() + 10
    while any(rule.get("health") != "ok" for rule in rules) and time.monotonic() < deadline:
        time.sleep(0.5)
        rules = [rule for group in server.api("rules")["groups"] for rule in group["rules"]]
    assert [rule["name"] for rule in rules if rule.get("health") != "ok"] == []
