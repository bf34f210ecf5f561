"""Request metrics label methods from a closed set: a client inventing methods cannot grow
``/metrics``."""

from __future__ import annotations

import random
import string

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from sofiia.lib.request_metrics import method_label

pytestmark = pytest.mark.django_db


def metrics_text(client: Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def method_labels(text: str) -> set[str]:
    return {
        sample.labels["method"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "method" in sample.labels
    }


def test_three_thousand_invented_methods_add_a_bounded_number_of_lines_to_metrics():
    client = Client()
    # Every kind of path once with a known method first, so the lines that any request
    # would add already exist.
    paths = ("/livez", "/api/chats", "/console/", "/no/such/page", "/api/no/such/thing")
    for path in paths:
        client.generic("FOO", path)
    before = metrics_text(client)
    draw = random.Random(20)
    for number in range(3000):
        method = "".join(draw.choices(string.ascii_uppercase, k=draw.randint(3, 12)))
        client.generic(method, paths[number % len(paths)])
    after = metrics_text(client)
    # A few series for new status codes or views at most, never one per method.
    assert len(after.splitlines()) - len(before.splitlines()) <= 40
    assert method_labels(after) <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in method_labels(after)


def test_known_methods_keep_their_label_and_the_rest_are_other():
    assert [method_label(m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")] == [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
    ]
    assert {method_label(m) for m in ("TRACE", "CONNECT", "QUERY", "get", "", None)} == {"other"}
