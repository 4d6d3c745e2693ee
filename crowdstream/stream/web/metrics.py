"""Prometheus gauges of the web side, read at scrape time: who is watching, and how many peers and
event streams are open (so a dashboard shows when the viewer limits are close)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from crowdstream.stream.web.events import Events
from crowdstream.stream.web.limits import ViewerSlots
from crowdstream.stream.web.webrtc import LiveView


class WebCollector(Collector):
    """`crowd_web_viewers{camera}`, `crowd_web_peers`, `crowd_web_event_streams`."""

    def __init__(self, slots: ViewerSlots, live: LiveView, events: Events) -> None:
        self.slots, self.live, self.events = slots, live, events

    def collect(self) -> Iterator[GaugeMetricFamily]:
        viewers = GaugeMetricFamily(
            "crowd_web_viewers", "Open live views (WebRTC and MJPEG) per camera", labels=["camera"]
        )
        for camera, count in sorted(self.slots.open.items()):
            viewers.add_metric([camera], count)
        yield viewers
        yield GaugeMetricFamily(
            "crowd_web_peers",
            "WebRTC peer connections, including those still negotiating",
            value=len(self.live.viewers),
        )
        yield GaugeMetricFamily(
            "crowd_web_event_streams", "Open /api/events streams", value=self.events.clients
        )
