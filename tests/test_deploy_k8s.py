"""deploy/k8s rendered with the real Kustomize (built into kubectl) and every resource validated against
the Kubernetes OpenAPI schemas in strict mode (kubernetes-validate, which bundles them: kubeconform is
not installable offline), then the wiring: probes, scrape annotations, GPU requests, the camera config
the workers load, and the service names Prometheus discovers."""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from crowdstream.stream.config import build_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"
TARGETS = ["base", "overlays/cpu", "overlays/gpu"]
# The oldest Kubernetes still widely run, and the newest the validator knows.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


@cache
def render(target: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(target: str, kind: str, name: str) -> dict:
    return next(r for r in render(target) if r["kind"] == kind and r["metadata"]["name"].startswith(name))


def worker_container(target: str) -> dict:
    return find(target, "Deployment", "crowdstream-worker")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_resource_passes_strict_schema_validation(target: str, version: str) -> None:
    resources = render(target)
    assert {r["kind"] for r in resources} == {"ConfigMap", "Deployment", "Service", "StatefulSet"}
    for resource in resources:
        kubernetes_validate.validate(resource, version, strict=True)
        assert resource["metadata"]["namespace"] == "crowdstream"


def test_strict_validation_rejects_a_misplaced_field() -> None:
    deployment = copy.deepcopy(find("overlays/cpu", "Deployment", "crowdstream-worker"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {"periodSeconds": 5}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_workers_have_probes_scrape_annotations_and_a_pod_worker_id(target: str) -> None:
    pod = find(target, "Deployment", "crowdstream-worker")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    env = {item["name"]: item for item in container["env"]}
    assert env["CROWDSTREAM_CLUSTER__WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the images' USER


def test_gpu_overlay_requests_a_gpu_and_keeps_the_cpu_overlay_off_it() -> None:
    gpu, cpu = worker_container("overlays/gpu"), worker_container("overlays/cpu")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    env = {item["name"]: item.get("value") for item in gpu["env"]}
    assert env["CROWDSTREAM_ENGINE__BACKEND"] == "tensorrt"
    mounts = {mount["mountPath"] for mount in gpu["volumeMounts"]}
    assert env["CROWDSTREAM_ENGINE_CACHE"] in mounts
    assert gpu["image"].endswith("-gpu") and cpu["image"].endswith("-cpu")
    assert "CROWDSTREAM_HTTP__TOKEN" in env, "the base environment survives the patch"


@pytest.mark.parametrize("target", ["overlays/cpu", "overlays/gpu"])
def test_the_camera_configmap_is_a_valid_cluster_config_for_the_pod_environment(target: str) -> None:
    cameras = find(target, "ConfigMap", "crowdstream-cameras")["data"]["cameras.yaml"]
    container = worker_container(target)
    environment = {item["name"]: item.get("value", "from-a-secret-or-field-000") for item in container["env"]}
    config = build_config(yaml.safe_load(cameras), "cameras.yaml", environ=environment)
    assert config.cluster.enabled
    assert config.redis.url == "redis://redis:6379/0"
    probes = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes <= set(config.http.open_paths), "kubelet probes carry no token"
    assert config.http.port == container["ports"][0]["containerPort"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "cameras")["mountPath"]
    assert container["args"][-1] == f"{mount}/cameras.yaml"


def test_services_select_the_worker_pods_and_prometheus_finds_them() -> None:
    labels = find("overlays/cpu", "Deployment", "crowdstream-worker")["spec"]["template"]["metadata"][
        "labels"
    ]
    for name in ("crowdstream", "crowdstream-workers"):
        selector = find("overlays/cpu", "Service", name)["spec"]["selector"]
        assert selector.items() <= labels.items(), name
    headless = find("overlays/cpu", "Service", "crowdstream-workers")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "kubernetes.yml").read_text())
    (names,) = [job["dns_sd_configs"][0]["names"] for job in scrape["scrape_configs"]]
    assert names == [f"crowdstream-workers.{headless['metadata']['namespace']}.svc.cluster.local"]
    redis_service = find("overlays/cpu", "Service", "redis")
    env = {item["name"]: item.get("value") for item in worker_container("overlays/cpu")["env"]}
    assert env["CROWDSTREAM_REDIS__URL"].startswith(f"redis://{redis_service['metadata']['name']}:6379/")
