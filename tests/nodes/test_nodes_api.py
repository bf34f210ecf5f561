from __future__ import annotations

from tests.live import free_port


def test_nodes_report_up_with_a_latency(alice):
    nodes = alice.api.get("/api/nodes").json()
    assert [n["name"] for n in nodes] == ["NODA1", "NODA2"]
    for node in nodes:
        assert node["status"] == "up"
        assert isinstance(node["latency_ms"], int)
        assert node["latency_ms"] >= 0


def test_a_node_that_does_not_answer_is_down(alice, settings):
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA3": f"http://127.0.0.1:{free_port()}"}
    nodes = {n["name"]: n for n in alice.api.get("/api/nodes").json()}
    assert nodes["NODA3"] == {
        "name": "NODA3",
        "status": "down",
        "latency_ms": None,
        "in_flight": 0,
        "max_in_flight": 500,
    }
    assert nodes["NODA1"]["status"] == "up"


def test_node_statuses_are_cached_for_a_few_seconds(alice, dev_routers, settings):
    assert {n["status"] for n in alice.api.get("/api/nodes").json()} == {"up"}
    settings.SOFIIA_NODES = {"NODA1": f"http://127.0.0.1:{free_port()}", "NODA2": dev_routers["NODA2"].url}
    assert {n["status"] for n in alice.api.get("/api/nodes").json()} == {"up"}
    from django.core.cache import cache

    cache.clear()
    statuses = {n["name"]: n["status"] for n in alice.api.get("/api/nodes").json()}
    assert statuses == {"NODA1": "down", "NODA2": "up"}


def test_a_node_answering_an_error_is_down(alice, settings, dev_routers):
    settings.SOFIIA_NODES = {"NODA1": f"{dev_routers['NODA1'].url}/nothing-here"}
    assert alice.api.get("/api/nodes").json()[0]["status"] == "down"
