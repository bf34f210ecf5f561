"""``run_dev_router``: the dev node speaks the router protocol over HTTP."""

from __future__ import annotations

import subprocess
import sys

import requests

from tests.live import PROJECT, free_port
from tests.waiting import wait_until


def test_run_dev_router_speaks_the_node_protocol():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_dev_router", "--port", str(port), "--name", "NODA7"],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base}/health"), 30, what="the dev router to start")
        health = requests.get(f"{base}/health", timeout=1)
        assert health.status_code == 200
        reply = requests.post(f"{base}/v1/agents/scout/infer", json={"prompt": "ping"}, timeout=5)
        assert reply.status_code == 200
        assert reply.json() == {"response": "NODA7/scout: ping", "model": "sofiia-small", "tokens_used": 1 + 2,
                                "backend": "dev-cpu"}  # fmt: skip
        asked = requests.post(
            f"{base}/v1/agents/scout/infer", json={"prompt": "ping", "model": "sofiia-large"}, timeout=5
        )
        assert (asked.json()["model"], asked.json()["backend"]) == ("sofiia-large", "dev-gpu")
        models = requests.get(f"{base}/v1/models", timeout=5).json()
        assert models == {"models": [{"id": "sofiia-small", "backend": "dev-cpu"},
                                     {"id": "sofiia-large", "backend": "dev-gpu"}], "total": 2}  # fmt: skip
        assert requests.post(f"{base}/v1/agents/scout/infer", data=b"nope", timeout=5).status_code == 400
        assert requests.post(f"{base}/v1/agents/scout/infer", json={"prompt": 1}, timeout=5).status_code == 422
        assert requests.get(f"{base}/elsewhere", timeout=5).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True
