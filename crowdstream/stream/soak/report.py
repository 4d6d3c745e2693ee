"""The soak's verdict and its two outputs: a table for people, JSON for programs."""

from __future__ import annotations

import json

RECORD_FAULTS = ("missing", "duplicated", "out_of_order", "unexpected", "unparsable", "counted_not_published")


def failures(report: dict) -> list[str]:
    """Why the soak failed (empty when it passed): any record lost, repeated, reordered or unreadable,
    a backlog not written at the end, or an exception or error anywhere."""
    records = report["records"]
    found = [f"{records[key]} {key.replace('_', ' ')}" for key in RECORD_FAULTS if records[key]]
    if report["redis_backlog_dropped"]:
        found.append(f"{report['redis_backlog_dropped']} dropped from a full backlog")
    if not report["redis_flushed"]:
        found.append("the backlog was not written at the end")
    if not report["clean_exceptions"]:
        found.append(f"errors or exceptions: {report['exceptions']}")
    return found


def _rows(report: dict) -> list[tuple[str, object]]:
    records = report["records"]
    faults = ", ".join(f"{f['target']}@{f['at_s']:.0f}s" for f in report["faults"]) or "none"
    return [
        ("cameras", f"{report['cameras']} (backend {report['backend']})"),
        ("measured", f"{report['seconds'] / 60:.1f} min, faults: {faults}"),
        ("records published", records["expected"]),
        ("records read back", records["records"]),
        *[(key.replace("_", " "), records[key]) for key in RECORD_FAULTS],
        ("redis backlog dropped", report["redis_backlog_dropped"]),
        ("redis replays refused", report["redis_replays_refused"]),
        ("reconnects", f"rtsp {report['rtsp_reconnects']}, redis {report['redis_reconnects']}"),
        (
            "counted fps per camera",
            f"mean {report['fps_per_camera_mean']}, min {report['fps_per_camera_min']}",
        ),
        ("frame age p50 / p95 s", f"{report['frame_age_p50_s']} / {report['frame_age_p95_s']}"),
        ("frames dropped", report["frames_dropped"]),
        ("cpu cores used", report["cpu_cores_used"]),
        (
            "rss MB at 1 / 5 min / end",
            f"{report['rss_mb_at_1min']} / {report['rss_mb_at_5min']} / {report['rss_mb_at_end']}",
        ),
        (
            "rss growth after 1 / 5 min %",
            f"{report['rss_growth_after_1min_pct']} / {report['rss_growth_after_5min_pct']}",
        ),
        *[(key.replace("_", " "), value) for key, value in report["exceptions"].items()],
    ]


def print_soak(report: dict, as_json: bool = False) -> None:
    verdict = failures(report)
    if as_json:
        print(json.dumps({**report, "passed": not verdict, "failures": verdict}, indent=2))
        return
    for name, value in _rows(report):
        print(f"{name:30} {value}")
    print(f"{'camera':10} {'published':>9} {'read':>7} {'missing':>7} {'dup':>5} {'order':>5} {'bad':>5}")
    for camera, check in report["records"]["per_camera"].items():
        print(
            f"{camera:10} {check['expected']:9} {check['records']:7} {check['missing']:7}"
            f" {check['duplicated']:5} {check['out_of_order']:5} {check['unparsable']:5}"
        )
    print("PASSED" if not verdict else "FAILED: " + "; ".join(verdict))
