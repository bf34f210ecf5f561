"""The alerting rules: what they select, how they are labelled, that each has a runbook
section and unit tests. ``make alerts`` runs promtool's own check and the unit tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.promql import KNOWN_METRICS, SCRAPE_METRICS, metric_names

PROJECT = Path(__file__).resolve().parents[2]
RULES = PROJECT / "ops/prometheus/alerts.yml"
RULE_TESTS = PROJECT / "ops/prometheus/alerts.test.yml"
INCIDENTS = PROJECT / "docs/runbooks/incidents.md"

REQUIRED_ALERTS = {
    "SofiiaInstanceDown",
    "SofiiaHigh5xxRate",
    "SofiiaSendLatencyHigh",
    "SofiiaNodeDown",
    "SofiiaRateLimitBlocksSurge",
    "SofiiaIdempotencyConflicts",
    "SofiiaAuditWriteFailures",
    "SofiiaRedisBackendErrors",
    "SofiiaLoginFailuresSurge",
}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def markdown_anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings}


def test_every_required_signal_has_an_alert():
    assert {rule["alert"] for rule in alert_rules()} == REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alerts_select_only_metrics_the_console_exposes_and_only_its_job(rule):
    expr = rule["expr"]
    assert metric_names(expr) <= KNOWN_METRICS | SCRAPE_METRICS
    selectors = re.findall(r"\b([a-z_:]+)\{([^}]*)\}", expr)
    assert selectors, "every selector carries label matchers"
    assert all('job="sofiia-console"' in matchers for _, matchers in selectors)
    assert len(selectors) == len(re.findall(r"\b(?:sofiia|django)_\w+|\bup\b", expr))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alerts_carry_a_severity_a_summary_and_a_runbook_section(rule):
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    page, _, anchor = annotations["runbook_url"].partition("#")
    assert PROJECT / page == INCIDENTS
    assert anchor == rule["alert"].lower()
    assert anchor in markdown_anchors(INCIDENTS.read_text())


def test_every_alert_has_unit_tests_where_it_fires_and_where_it_stays_silent():
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fires == REQUIRED_ALERTS
    assert silent == REQUIRED_ALERTS


def test_the_scrape_job_is_the_one_the_alerts_select():
    config = yaml.safe_load((PROJECT / "ops/prometheus/prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["sofiia-console"]
    assert config["rule_files"] == ["alerts.yml"]
