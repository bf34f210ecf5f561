"""The PromQL reader that the alert and dashboard checks rely on."""

from __future__ import annotations

from tests.ops.promql import metric_names


def test_it_finds_metric_names_inside_functions_and_aggregations():
    expr = 'histogram_quantile(0.95, sum by (le) (rate(foo_bucket{outcome!="replayed"}[5m]))) > 20'
    assert metric_names(expr) == {"foo_bucket"}


def test_it_ignores_labels_keywords_durations_and_grafana_variables():
    expr = (
        'sum by (node) (rate(a_total{job="$job",node=~"x|y"}[$__rate_interval])) '
        "/ ignoring(result) group_left sum without (instance) (b_total offset 5m) "
        'and on() label_replace(c, "dst", "$1", "src", "(.*)") or bool 1e3'
    )
    assert metric_names(expr) == {"a_total", "b_total", "c"}


def test_it_finds_a_bare_metric_name():
    assert metric_names("up == 0") == {"up"}
