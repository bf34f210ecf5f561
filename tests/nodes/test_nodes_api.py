from __future__ import annotations

from nodes.devrouter import MODELS
from nodes.registry import node_statuses_refresh
from tests.live import free_port
from tests.nodes.fakes import json_200

DEV_MODELS = [model["id"] for model in MODELS]


def test_nodes_report_up_with_a_latency_and_their_models(alice):
    nodes = alice.api.get("/api/nodes").json()
    assert [n["name"] for n in nodes] == ["NODA1", "NODA2"]
    for node in nodes:
        assert node["status"] == "up"
        assert isinstance(node["latency_ms"], int)
        assert node["latency_ms"] >= 0
        assert node["models"] == DEV_MODELS


def test_a_node_that_does_not_answer_is_down(alice, settings):
    settings.SOFIIA_NODES = {**settings.SOFIIA_NODES, "NODA3": f"http://127.0.0.1:{free_port()}"}
    node_statuses_refresh()
    nodes = {n["name"]: n for n in alice.api.get("/api/nodes").json()}
    assert nodes["NODA3"] == {
        "name": "NODA3",
        "status": "down",
        "latency_ms": None,
        "models": [],
        "in_flight": 0,
        "max_in_flight": 500,
    }
    assert nodes["NODA1"]["status"] == "up"


def test_a_node_answering_an_error_is_down(alice, settings, dev_routers):
    settings.SOFIIA_NODES = {"NODA1": f"{dev_routers['NODA1'].url}/nothing-here"}
    node_statuses_refresh()
    assert alice.api.get("/api/nodes").json()[0]["status"] == "down"


def test_a_node_up_whose_models_fail_lists_none(alice, fake_node):
    fake_node(lambda request: json_200({"status": "ok"}) if request.path == "/health" else b"HTTP/1.1 500 X\r\n\r\n")
    node_statuses_refresh()
    nodes = {n["name"]: n for n in alice.api.get("/api/nodes").json()}
    assert (nodes["EVIL"]["status"], nodes["EVIL"]["models"]) == ("up", [])
