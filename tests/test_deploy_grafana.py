"""deploy/grafana provisioning: files parse, data source uids match, and every query in the dashboard,
the Grafana alert rules and the Prometheus rules names metrics and labels that a live worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServiceProcess

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
EXPRESSIONS_UID = "__expr__"  # Grafana's server-side expressions (reduce, threshold), not a data source
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus, not the worker
SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
SELECTOR = re.compile(r"\b(crowd_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dashboards() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((PROVISIONING / "dashboards").glob("*.json"))]


def panels(dashboard: dict) -> list[dict]:
    flat = []
    for panel in dashboard["panels"]:
        flat += [panel, *panel.get("panels", [])]
    return [panel for panel in flat if panel["type"] != "row"]


def grafana_alert_rules() -> list[dict]:
    rules = []
    for path in sorted((PROVISIONING / "alerting").glob("*.yml")):
        rules += [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]
    return rules


def queries() -> dict[str, str]:
    """Every PromQL expression shipped in deploy/, keyed by where it lives."""
    found = {}
    for dashboard in dashboards():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
        for variable in dashboard["templating"]["list"]:
            found[f"variable {variable['name']}"] = variable["query"]["query"]
    for rule in grafana_alert_rules():
        for query in rule["data"]:
            if query["datasourceUid"] != EXPRESSIONS_UID:
                found[f"grafana rule {rule['uid']} {query['refId']}"] = query["model"]["expr"]
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                found[f"prometheus rule {rule['alert']}"] = rule["expr"]
    return found


def test_provisioning_files_parse() -> None:
    files = sorted(PROVISIONING.rglob("*.yml"))
    assert {path.parent.name for path in files} == {"datasources", "dashboards", "alerting"}
    for path in files:
        assert load_yaml(path)["apiVersion"] == 1, path
    assert dashboards(), "no dashboard JSON"
    provider = load_yaml(PROVISIONING / "dashboards" / "crowdstream.yml")["providers"][0]
    assert provider["options"]["path"].endswith("provisioning/dashboards")


def test_every_datasource_reference_uses_the_provisioned_uid() -> None:
    sources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert len(sources) == 1 and sources[0]["type"] == "prometheus"
    uid = sources[0]["uid"]
    for dashboard in dashboards():
        references = [dashboard["templating"]["list"][0]["datasource"], *dashboard["annotations"]["list"]]
        for panel in panels(dashboard):
            references += [panel, *panel["targets"]]
        for item in references:
            source = item.get("datasource", item)
            assert source["uid"] == uid, item.get("title", item)
    for rule in grafana_alert_rules():
        uids = {query["datasourceUid"] for query in rule["data"]}
        assert uids == {uid, EXPRESSIONS_UID}, rule["uid"]


def test_panels_have_unique_ids_and_every_dashboard_part_is_present() -> None:
    (dashboard,) = dashboards()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(panel["title"] for panel in panels(dashboard)).lower()
    topics = (
        "people per camera",
        "people per zone",
        "density",
        "camera up",
        "count reliable",
        "inference",
        "frame age",
    )
    for topic in topics:
        assert topic in titles, topic


def test_grafana_density_alerts_match_the_prometheus_thresholds() -> None:
    thresholds = {}
    for rule in (r for r in grafana_alert_rules() if "fruin_level" in r["labels"]):
        condition = next(q for q in rule["data"] if q["refId"] == rule["condition"])
        thresholds[rule["labels"]["fruin_level"]] = condition["model"]["conditions"][0]["evaluator"][
            "params"
        ][0]
        assert rule["for"] == "1m"
    prometheus = load_yaml(DEPLOY / "prometheus" / "rules" / "crowd.yml")["groups"][0]["rules"]
    expected = {rule["labels"]["fruin_level"]: float(rule["expr"].split(">")[-1]) for rule in prometheus}
    assert thresholds == expected == {"E": 1.08, "F": 2.17}


def test_grafana_unreliable_count_alert_matches_the_prometheus_rule_and_its_panel() -> None:
    """The same metric, duration, severity and summary as CrowdCountUncertain, pointing at the dashboard's
    "Count reliable" panel."""
    (rule,) = [r for r in grafana_alert_rules() if r["uid"] == "crowd-count-uncertain"]
    prometheus = {
        r["alert"]: r
        for group in load_yaml(DEPLOY / "prometheus" / "rules" / "crowd.yml")["groups"]
        for r in group["rules"]
    }["CrowdCountUncertain"]
    query = next(q for q in rule["data"] if q["refId"] == "A")["model"]["expr"]
    assert "crowd_count_uncertain" in query and "crowd_count_uncertain" in prometheus["expr"]
    assert rule["for"] == prometheus["for"] == "10m" and rule["labels"] == prometheus["labels"]
    summary = prometheus["annotations"]["summary"].replace("{{ $labels.camera }}", "X")
    assert rule["annotations"]["summary"].replace("{{ $labels.camera }}", "X") == summary
    (dashboard,) = dashboards()
    panel = next(p for p in panels(dashboard) if str(p["id"]) == rule["annotations"]["__panelId__"])
    assert panel["title"].lower().startswith("count reliable")


def live_series(served: ServiceProcess) -> dict[str, set[str] | None]:
    """Sample names a running worker exports, each with the label names its samples carry. Families
    with no sample yet (no reconnect so far, say) are known from their HELP/TYPE lines, labels None."""
    _status, text = served.get("/metrics")
    exported: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        for suffix in SUFFIXES.get(family.type, [""]):
            exported[family.name + suffix] = labels if family.samples else None
    return exported


def query_problems(where: str, expression: str, exported: dict[str, set[str] | None]) -> list[str]:
    """What is wrong with one PromQL expression against the exported series (empty when nothing)."""
    selectors = SELECTOR.findall(expression)
    problems = []
    if not selectors and not expression.startswith("up{"):
        problems.append(f"{where}: names no crowdstream metric: {expression}")
    for name, matchers in selectors:
        if name not in exported:
            problems.append(f"{where}: {name} is not exported (the worker has {sorted(exported)})")
        elif exported[name] is not None and (
            unknown := set(MATCHER.findall(matchers)) - exported[name] - SCRAPE_LABELS
        ):
            problems.append(f"{where}: {name} has no label {sorted(unknown)}")
    grouping = {label.strip() for group in GROUPING.findall(expression) for label in group.split(",")}
    labels = [exported.get(name) for name, _ in selectors]
    known = set().union(*(found for found in labels if found)) | SCRAPE_LABELS | {"le", ""}
    if None not in labels and grouping - known:
        problems.append(f"{where}: groups by labels no metric has: {sorted(grouping - known)}")
    return problems


def test_every_query_uses_metrics_and_labels_a_live_worker_exports(service_process) -> None:
    camera = {
        "id": "gate",
        "url": "demo",
        "max_fps": 2,
        "zones": [{"name": "plaza", "polygon": [[0, 0], [640, 0], [640, 720], [0, 720]], "area_m2": 30}],
    }
    served = service_process({"cameras": [camera], "redis": {"embedded": False}})
    served.wait_until(
        lambda: (served.metric("crowd_frames_processed_total", camera="gate") or 0) >= 2, what="counts"
    )
    exported = live_series(served)
    all_queries = queries()
    assert len(all_queries) >= 20
    assert [p for where, expr in all_queries.items() for p in query_problems(where, expr, exported)] == []


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("rate(crowd_frames_processed[5m])", "is not exported"),
        ('crowd_people{camera="a", area="x"}', "has no label"),
        ("sum by (region) (crowd_people)", "groups by labels"),
        ("vector(1)", "names no crowdstream metric"),
    ],
)
def test_the_query_check_catches_mistakes(expression: str, complaint: str) -> None:
    exported = {"crowd_people": {"camera", "zone"}, "crowd_frames_processed_total": {"camera"}}
    problems = query_problems("test", expression, exported)
    assert len(problems) == 1 and complaint in problems[0]
