"""The service's Prometheus series follow its configuration: a zone that is deleted or renamed, or a
camera this worker no longer counts, leaves /metrics instead of reading its last value forever."""

from __future__ import annotations

from prometheus_client import generate_latest

from crowdstream.stream.metrics import WHOLE_FRAME, StreamMetrics


def series(metrics: StreamMetrics) -> set[tuple[str, str, str]]:
    """(metric, camera, zone) of every zone-labelled sample in the exposition text."""
    found = set()
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(("crowd_people{", "crowd_density_people_per_square_meter{")):
            name, labels = line.split("{", 1)
            values = dict(part.split("=", 1) for part in labels.split("}", 1)[0].split(","))
            found.add((name, values["camera"].strip('"'), values["zone"].strip('"')))
    return found


def filled() -> StreamMetrics:
    metrics = StreamMetrics()
    for camera in ("gate", "hall"):
        metrics.people.labels(camera, WHOLE_FRAME).set(10)
        metrics.stream_up.labels(camera).set(1)
        for zone in ("queue", "exit"):
            metrics.people.labels(camera, zone).set(3)
            metrics.density.labels(camera, zone).set(0.5)
    return metrics


def test_a_zone_no_longer_configured_leaves_only_its_own_series() -> None:
    metrics = filled()
    metrics.retain_zones("gate", ["queue"])
    assert series(metrics) == {
        ("crowd_people", "gate", ""),
        ("crowd_people", "gate", "queue"),
        ("crowd_density_people_per_square_meter", "gate", "queue"),
        ("crowd_people", "hall", ""),
        ("crowd_people", "hall", "queue"),
        ("crowd_people", "hall", "exit"),
        ("crowd_density_people_per_square_meter", "hall", "queue"),
        ("crowd_density_people_per_square_meter", "hall", "exit"),
    }
    metrics.retain_zones("gate", [])
    assert {s for s in series(metrics) if s[1] == "gate"} == {("crowd_people", "gate", "")}


def test_a_camera_forgotten_leaves_every_series() -> None:
    metrics = filled()
    metrics.forget_camera("gate")
    text = generate_latest(metrics.registry).decode()
    assert 'camera="gate"' not in text and 'crowd_stream_up{camera="hall"} 1.0' in text
    assert {s[1] for s in series(metrics)} == {"hall"}
