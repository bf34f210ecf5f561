from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from tests.live import PROJECT, free_port


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command("create_operator", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_operator_prints_the_token_last(db):
    lines = run("carol", "--token")
    token = Token.objects.get(user__username="carol")
    assert lines[-1] == token.key
    user = User.objects.get(username="carol")
    assert not user.has_usable_password()
    event = AuditEvent.objects.get(action="operator.create")
    assert (event.actor, event.target_id) == ("system", str(user.pk))


def test_create_operator_with_a_password_can_log_in(db, client):
    run("dave", "--password", "pw-for-dave-123")
    assert client.login(username="dave", password="pw-for-dave-123")


def test_an_existing_operator_is_refused_unless_exist_ok(db):
    first = run("erin", "--token")[-1]
    with pytest.raises(CommandError, match="already exists"):
        run("erin", "--token")
    assert run("erin", "--token", "--exist-ok")[-1] == first
    assert AuditEvent.objects.filter(action="operator.create").count() == 1


@pytest.mark.parametrize("name", ["has space", "", "x" * 151, "semi;colon"])
def test_a_bad_username_is_refused(db, name):
    with pytest.raises(CommandError):
        run(name)


def test_run_dev_router_speaks_the_node_protocol():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_dev_router", "--port", str(port), "--name", "NODA7"],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"{base}/health", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "dev router did not start"
                time.sleep(0.1)
        assert health.status_code == 200
        reply = requests.post(f"{base}/v1/agents/scout/infer", json={"prompt": "ping"}, timeout=5)
        assert reply.status_code == 200
        assert reply.json() == {"response": "NODA7/scout: ping", "model": "dev-echo", "tokens_used": 1,
                                "backend": "dev-router"}  # fmt: skip
        assert requests.post(f"{base}/v1/agents/scout/infer", data=b"nope", timeout=5).status_code == 400
        assert requests.post(f"{base}/v1/agents/scout/infer", json={"prompt": 1}, timeout=5).status_code == 422
        assert requests.get(f"{base}/elsewhere", timeout=5).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
