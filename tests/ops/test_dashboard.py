"""The Grafana dashboard: a loadable dashboard whose panels query only metrics the console
exposes, in valid PromQL, covering every signal the alerts watch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.promql import KNOWN_METRICS, SCRAPE_METRICS, metric_names
from tests.tools import tool

PROJECT = Path(__file__).resolve().parents[2]
DASHBOARD = PROJECT / "ops/grafana/sofiia-console.json"
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "heatmap"}
# What Grafana puts in place of its variables, to hand the queries to promtool.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "6h",
    "$job": "sofiia-console",
    "$instance": ".*",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_the_dashboard_is_a_grafana_dashboard_with_its_variables():
    board = dashboard()
    assert board["uid"] == "sofiia-console"
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["query"] == "sofiia-console"
    assert variables["instance"]["definition"] == 'label_values(up{job="$job"}, instance)'


def test_panels_are_known_types_with_unique_ids_on_the_prometheus_variable():
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["type"] in PANEL_TYPES
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids
        assert len(ref_ids) == len(set(ref_ids))


def test_panels_fit_the_grid_without_overlapping():
    boxes = [panel["gridPos"] for panel in dashboard()["panels"]]
    for box in boxes:
        assert box["x"] >= 0
        assert box["w"] > 0
        assert box["x"] + box["w"] <= 24
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a, b)


@pytest.mark.parametrize("expr", queries())
def test_every_query_uses_only_metrics_the_console_exposes(expr):
    names = metric_names(expr)
    assert names
    assert names <= KNOWN_METRICS | SCRAPE_METRICS


def test_every_metric_of_the_console_has_a_panel():
    used = set().union(*(metric_names(expr) for expr in queries()))
    assert used >= KNOWN_METRICS


def test_every_query_is_valid_promql(tmp_path):
    promtool = tool("promtool")
    rules = []
    for number, expr in enumerate(queries()):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
            expr = expr.replace(variable, value)
        assert "$" not in expr
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
