"""What an attacker or a broken client can send a live console under gunicorn: over-long
request lines and cursors, malformed requests, oversized bodies, slow headers and slow
bodies. Every answer is the contract's JSON, none is a 500, and the instance keeps
answering its health checks throughout."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
import requests

from tests.personas import make_persona

pytestmark = pytest.mark.live


def raw_exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["content-type"].startswith("application/json"), headers
    payload = json.loads(body)
    assert payload["error"] == code
    assert payload["detail"]


def test_requests_gunicorn_refuses_itself_are_answered_in_json(live_console):
    console = live_console(workers=1)
    cases = [
        (b"GET /api/chats?cursor=" + b"x" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "bad_request"),
        (b"GET /api/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
        (b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n", 431,
         "request_header_fields_too_large"),
    ]  # fmt: skip
    for request, status, code in cases:
        assert_json_error(*parse(raw_exchange(console.port, request)), status, code)


def test_a_long_cursor_reaches_the_application_and_is_a_400(live_console):
    alice = make_persona("alice")
    console = live_console(workers=1)
    http = console.session(alice.token)
    for cursor in ("x", "x" * 5000, "%" * 2000):
        response = http.get(f"{console.base}/api/chats", params={"cursor": cursor}, timeout=10)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_cursor"
    for path in ("//api/chats", "/API/chats", "/api"):
        response = http.get(f"{console.base}{path}", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_a_body_over_the_limit_is_always_a_413_answer_never_a_reset(live_console):
    alice = make_persona("alice")
    console = live_console(workers=2)
    chat = requests.post(
        f"{console.base}/api/chats",
        json={"title": "big", "agent": "echo"},
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=10,
    ).json()
    body = json.dumps({"text": "x" * (3 * 1024 * 1024)}).encode()
    for attempt in range(12):
        response = requests.post(
            f"{console.base}/api/chats/{chat['id']}/send",
            data=body,
            headers={
                "Authorization": f"Bearer {alice.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"big-{attempt}",
                # The client closes after this request: the server must not close first.
                "Connection": "close",
            },
            timeout=30,
        )
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"


def _slow_body(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /api/chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    return sock


def _slow_headers(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
    return sock


def test_slow_headers_and_bodies_are_cut_off_and_never_starve_the_instance(live_console):
    console = live_console(workers=1, SOFIIA_REQUEST_BODY_TIMEOUT="2", GUNICORN_KEEPALIVE="2")
    slow_bodies = [_slow_body(console.port) for _ in range(40)]
    slow_headers = [_slow_headers(console.port) for _ in range(40)]
    started = time.monotonic()
    probes = []
    while time.monotonic() - started < 1.5:
        for sock in slow_bodies + slow_headers:
            sock.send(b" ")  # one byte now and then: never idle, never done
        t0 = time.monotonic()
        response = requests.get(f"{console.base}/api/health", timeout=5)
        probes.append(time.monotonic() - t0)
        assert response.status_code == 200
        time.sleep(0.2)  # wall time: a slow client trickling in real time while the server's timeouts run
    assert max(probes) < 1.0, probes
    # The body timeout answers each slow body with a 408; the header timeout closes each
    # slow header. Both well before the client would give up.
    deadline = time.monotonic() + 15
    for sock in slow_bodies:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        assert_json_error(*parse(raw), 408, "request_timeout")
        sock.close()
    for sock in slow_headers:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        assert sock.recv(65536) == b""
        sock.close()
    assert time.monotonic() - started < 10


def access_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_each_request_writes_exactly_one_access_line_and_nothing_from_django_request(live_console):
    alice = make_persona("alice")
    console = live_console(workers=1)
    http = console.session(alice.token)
    failing = http.post(f"{console.base}/api/chats", json={"title": "f", "agent": "fail500"}, timeout=10).json()
    ids = {}
    for name, method, path, extra in [
        ("send_502", "post", f"/api/chats/{failing['id']}/send",
         {"json": {"text": "x"}, "headers": {"Idempotency-Key": "k"}}),
        ("missing_404", "get", "/api/no/such", {}),
        ("bad_400", "get", "/api/chats?limit=0", {}),
        ("ok_200", "get", "/api/chats", {}),
    ]:  # fmt: skip
        request_id = f"{name}-{uuid.uuid4().hex[:8]}"
        headers = {"X-Request-ID": request_id, **extra.pop("headers", {})}
        response = getattr(http, method)(f"{console.base}{path}", headers=headers, timeout=30, **extra)
        # Not from a trusted proxy: the client's id is logged apart, the request gets its own.
        request_id = response.headers["X-Request-ID"]
        ids[name] = (request_id, response.status_code)
    console.stop()
    lines = access_lines(console.log())
    assert not [line for line in lines if line["logger"] == "django.request"]
    for request_id, status in ids.values():
        access = [line for line in lines if line["logger"] == "sofiia.access" and line["request_id"] == request_id]
        assert len(access) == 1, (request_id, access)
        assert access[0]["status"] == status
    assert [status for _, status in ids.values()] == [502, 404, 400, 200]


def test_sofiia_log_level_governs_the_application_and_gunicorn_alike(live_console):
    console = live_console(workers=1, SOFIIA_LOG_LEVEL="warning")
    assert requests.get(f"{console.base}/api/health", timeout=10).status_code == 200
    assert requests.get(f"{console.base}/api/no/such", timeout=10).status_code == 404
    console.stop()
    lines = access_lines(console.log())
    assert lines == [line for line in lines if line["level"] in ("warning", "error", "critical")]
    assert not [line for line in lines if line["logger"] in ("sofiia.access", "gunicorn.access")]
