"""The service's Prometheus metrics, in a registry of their own (so tests and several services in one
process never collide with the global registry). The whole-frame count uses the zone label ``""``."""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WHOLE_FRAME = ""
"""The `zone` label value of a camera's whole-frame count."""

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StreamMetrics:
    """Every metric the worker and the Redis publisher export."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.people = Gauge(
            "crowd_people", "People counted, per camera and zone", ["camera", "zone"], registry=r
        )
        self.density = Gauge(
            "crowd_density_people_per_square_meter",
            "People per square metre in zones with a known area",
            ["camera", "zone"],
            registry=r,
        )
        self.frames_processed = Counter("crowd_frames_processed", "Frames counted", ["camera"], registry=r)
        self.frames_dropped = Counter(
            "crowd_frames_dropped",
            "Frames that were due for counting but replaced by newer ones before the worker got to them",
            ["camera"],
            registry=r,
        )
        self.stream_up = Gauge(
            "crowd_stream_up", "1 while the camera delivers frames", ["camera"], registry=r
        )
        self.reconnects = Counter(
            "crowd_stream_reconnects", "Reconnections to the camera", ["camera"], registry=r
        )
        self.count_uncertainty = Gauge(
            "crowd_count_uncertainty",
            "How far the camera's latest self-check counts differ (share of the larger, engines.uncertainty)",
            ["camera"],
            registry=r,
        )
        self.count_uncertain = Gauge(
            "crowd_count_uncertain",
            "1 while the camera's count is not reliable: over 40 % of its last 10 self-checks uncertain "
            "(stream.self_checks)",
            ["camera"],
            registry=r,
        )
        self.inference = Histogram(
            "crowd_inference_duration_seconds",
            "Time of one batched inference over all due cameras",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.frame_age = Histogram(
            "crowd_frame_age_seconds",
            "Seconds from frame capture to publishing its count",
            ["camera"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_backlog = Gauge(
            "crowd_redis_backlog", "Count records waiting in memory for Redis", registry=r
        )
        self.redis_up = Gauge("crowd_redis_up", "1 while the last write to Redis succeeded", registry=r)
        self.redis_written = Counter(
            "crowd_redis_records_written", "Count records written to Redis", registry=r
        )
        self.redis_dropped = Counter(
            "crowd_redis_records_dropped",
            "Count records dropped because the backlog was full while Redis was unreachable",
            registry=r,
        )

    def forget_camera(self, camera: str) -> None:
        """Remove a camera's series (when another worker takes it over, or the camera goes), so no
        gauge lingers at its last value."""
        for metric in (
            self.stream_up,
            self.frames_processed,
            self.frames_dropped,
            self.reconnects,
            self.frame_age,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(camera)
        self.forget_self_checks(camera)
        for metric in (self.people, self.density):
            for labels in _label_values(metric):
                if labels[0] == camera:
                    metric.remove(*labels)

    def forget_self_checks(self, camera: str) -> None:
        """Remove a camera's self-check series (its model changed: the old model's verdict is not the new
        one's), so the alert clears until the new model's first check."""
        for metric in (self.count_uncertainty, self.count_uncertain):
            with contextlib.suppress(KeyError):
                metric.remove(camera)

    def retain_zones(self, camera: str, zones: Collection[str]) -> None:
        """Remove the series of a camera's zones that are not among `zones` (deleted or renamed in an
        edit), so an alert on a zone that is gone clears instead of reading its last value forever."""
        keep = {WHOLE_FRAME, *zones}
        for metric in (self.people, self.density):
            for labels in _label_values(metric):
                if labels[0] == camera and labels[1] not in keep:
                    with contextlib.suppress(KeyError):
                        metric.remove(*labels)


def _label_values(metric: Gauge) -> set[tuple[str, ...]]:
    """The label values of a labelled gauge's series, from its public samples."""
    return {
        tuple(sample.labels[name] for name in ("camera", "zone"))
        for family in metric.collect()
        for sample in family.samples
    }
