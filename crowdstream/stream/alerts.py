"""Alerts: when a zone went over its limit, for how long, and how bad it got.

`AlertTracker.update(reading)` is pure bookkeeping over a camera's readings: an alert starts on the
first reading whose zone is over its threshold, follows the peak people and density while it lasts,
and ends once the zone has stayed at or under its limit for `end_after_s` seconds (a crowd hovering
at the limit is one alert, not one per counted frame). Times are the readings' capture times, so the
same readings always give the same alerts.

The density's severity is Fruin's level of service for walkways, the bands the Prometheus and
Grafana rules use (deploy/README.md): A below 0.31 people per m², then B, C, D, E above 1.08 and F
above 2.17.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from crowdstream.stream.readings import CameraReading
from crowdstream.stream.zones import ZoneReading

FRUIN_WALKWAY = ((0.31, "A"), (0.43, "B"), (0.72, "C"), (1.08, "D"), (2.17, "E"))
"""Upper bounds (people per m², inclusive) of Fruin's walkway levels A-E; above the last one is F."""
END_AFTER_S = 10.0


def fruin_level(density: float) -> str:
    """Fruin's walkway level of service (A-F) of a density in people per m²."""
    return next((level for bound, level in FRUIN_WALKWAY if density <= bound), "F")


@dataclass(frozen=True)
class Alert:
    """One stretch of a zone over its limit. `ended` is None while it lasts; `last_over` is the
    capture time of the newest reading over the limit. Densities are people per m² (None for a zone
    without an area, whose threshold is a number of people)."""

    EVENT: ClassVar[str] = "alert"

    camera: str
    zone: str
    started: float
    last_over: float
    threshold: float
    peak_people: float
    peak_density: float | None
    ended: float | None = None

    @property
    def id(self) -> str:
        return f"{self.camera}/{self.zone}/{round(self.started * 1000)}"

    @property
    def unit(self) -> str:
        return "people" if self.peak_density is None else "people/m²"

    @property
    def fruin_level(self) -> str | None:
        return None if self.peak_density is None else fruin_level(self.peak_density)

    def as_dict(self) -> dict:
        end = self.ended if self.ended is not None else self.last_over
        return {
            "id": self.id,
            "camera": self.camera,
            "zone": self.zone,
            "started": round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
            "ongoing": self.ended is None,
            "duration_s": round(end - self.started, 3),
            "threshold": self.threshold,
            "unit": self.unit,
            "peak_people": round(self.peak_people, 2),
            "peak_density": None if self.peak_density is None else round(self.peak_density, 4),
            "fruin_level": self.fruin_level,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Alert:
        """The inverse of `as_dict` (alerts come back from Redis this way)."""
        last_over = data["started"] + data["duration_s"] if data["ended"] is None else data["ended"]
        return cls(
            data["camera"],
            data["zone"],
            data["started"],
            last_over,
            data["threshold"],
            data["peak_people"],
            data["peak_density"],
            data["ended"],
        )


def _start(camera: str, zone: ZoneReading, at: float) -> Alert:
    return Alert(camera, zone.name, at, at, zone.threshold, zone.count, zone.density)


def _extend(alert: Alert, zone: ZoneReading, at: float) -> Alert:
    density = alert.peak_density
    if zone.density is not None:
        density = zone.density if density is None else max(density, zone.density)
    return dataclasses.replace(
        alert, last_over=at, peak_people=max(alert.peak_people, zone.count), peak_density=density
    )


def _peak(alert: Alert) -> tuple[float, float | None]:
    return alert.peak_people, alert.peak_density


class AlertTracker:
    """The open alert of each (camera, zone); `update` returns the alerts a reading started, changed
    (a new peak) or ended."""

    def __init__(self, end_after_s: float = END_AFTER_S) -> None:
        self.end_after_s = end_after_s
        self.open: dict[tuple[str, str], Alert] = {}

    def update(self, reading: CameraReading) -> list[Alert]:
        at = reading.timestamp
        names = {zone.name for zone in reading.zones}
        gone = [key for key in self.open if key[0] == reading.camera and key[1] not in names]
        changes = [self._end(key, self.open[key].last_over) for key in gone]  # zones deleted
        for zone in reading.zones:
            key = (reading.camera, zone.name)
            alert = self.open.get(key)
            if zone.over_threshold:
                new = _start(reading.camera, zone, at) if alert is None else _extend(alert, zone, at)
                self.open[key] = new
                if alert is None or _peak(new) != _peak(alert):
                    changes.append(new)
            elif alert is not None and at - alert.last_over >= self.end_after_s:
                changes.append(self._end(key, alert.last_over))
        return changes

    def end_all(self, camera: str | None = None) -> list[Alert]:
        """End the open alerts (of one camera, or all) at their last reading over the limit: the
        service stops, or a camera's zones change."""
        keys = [key for key in self.open if camera in (None, key[0])]
        return [self._end(key, self.open[key].last_over) for key in keys]

    def _end(self, key: tuple[str, str], at: float) -> Alert:
        return dataclasses.replace(self.open.pop(key), ended=at)
