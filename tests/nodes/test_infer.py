from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from nodes.infer import NodeTimeout, NodeUnavailable, infer, infer_body_bytes
from nodes.metrics import INFER_REQUESTS
from nodes.transport import http_session
from tests.live import free_port
from tests.nodes.fakes import http_200


def counter(node: str, outcome: str) -> float:
    return INFER_REQUESTS.labels(node=node, outcome=outcome)._value.get()


def test_a_healthy_node_answers(nodes):
    result = infer(node="NODA1", agent="echo", body={"prompt": "hi there"})
    assert result.response == "NODA1/echo: hi there"
    # The words read (2) and written (3); the dev router's default model.
    assert (result.model, result.tokens_used, result.backend) == ("sofiia-small", 5, "dev-cpu")
    assert result.latency_ms >= 0


def test_the_node_is_sent_the_whole_body_and_answers_with_the_model_asked_for(nodes):
    body = {"prompt": "hi", "messages": [{"role": "user", "content": "hi"}], "system_prompt": "be brief",
            "model": "sofiia-large", "temperature": 0.2, "max_tokens": 64}  # fmt: skip
    result = infer(node="NODA1", agent="echo", body=body)
    (call,) = nodes["NODA1"].calls
    assert call.body == body
    assert call.raw == infer_body_bytes(body)
    assert (result.model, result.backend, result.tokens_used) == ("sofiia-large", "dev-gpu", 2 + 1 + 2)


def test_agent_names_are_escaped_in_the_path(nodes):
    result = infer(node="NODA2", agent="a.b-c_d", body={"prompt": "x"})
    assert result.response == "NODA2/a.b-c_d: x"


@pytest.mark.parametrize(
    ("agent", "kind", "code"),
    [("fail500", "http_status", "node_http_error"), ("garbage", "not_json", "node_bad_response"),
     ("badjson", "bad_response", "node_bad_response")],
)  # fmt: skip
def test_broken_answers_are_node_unavailable(nodes, agent, kind, code):
    before = counter("NODA1", kind)
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="NODA1", agent=agent, body={"prompt": "x"})
    assert (failure.value.kind, failure.value.failure) == (kind, code)
    assert failure.value.code == "node_unavailable"
    assert counter("NODA1", kind) == before + 1


def test_a_slow_node_times_out(nodes):
    started = time.monotonic()
    with pytest.raises(NodeTimeout) as failure:
        infer(node="NODA1", agent="slow5", body={"prompt": "x"}, timeout=0.3)
    assert (failure.value.code, failure.value.failure) == ("node_timeout", "node_timeout")
    assert time.monotonic() - started < 3


def test_a_closed_port_is_refused(settings):
    settings.SOFIIA_NODES = {"DOWN": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="DOWN", agent="echo", body={"prompt": "x"})
    assert (failure.value.kind, failure.value.failure) == ("refused", "node_refused")


def test_an_unknown_node_is_unavailable_and_counted_under_a_label_of_its_own():
    before = counter("(unknown)", "unknown_node")
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="NOWHERE", agent="echo", body={"prompt": "x"})
    assert (failure.value.kind, failure.value.failure) == ("unknown_node", "node_unknown")
    assert counter("(unknown)", "unknown_node") == before + 1
    assert counter("NOWHERE", "unknown_node") == 0


class RawNode:
    """A TCP server that answers every request with the same raw bytes, slowly if asked."""

    def __init__(self, payload: bytes, *, drip_seconds: float = 0.0, chunk: int = 0) -> None:
        self.payload, self.drip_seconds, self.chunk = payload, drip_seconds, chunk
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        # Read the whole request: closing a socket with unread input resets the connection.
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))  # fmt: skip
        while len(body) < length:
            body += conn.recv(65536)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._read_request(conn)
                    if not self.chunk:
                        conn.sendall(self.payload)
                        continue
                    for start in range(0, len(self.payload), self.chunk):
                        conn.sendall(self.payload[start : start + self.chunk])
                        # Wall time: a node trickling its answer is what these tests are about.
                        time.sleep(self.drip_seconds)
                except OSError:
                    continue


@pytest.fixture
def raw_node(settings) -> Iterator:
    # A new server may get the port of an earlier one; no pooled connection may carry over.
    http_session().close()
    servers = []

    def start(payload: bytes, **kwargs) -> RawNode:
        server = RawNode(payload, **kwargs)
        servers.append(server)
        settings.SOFIIA_NODES = {"RAW": server.url}
        return server

    yield start
    for server in servers:
        server.sock.close()


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"response": 5}', b'{"response": "x", "model": 5}', b'{"response": "x", "tokens_used": "many"}',
     b'{"response": "x", "tokens_used": true}'],
)  # fmt: skip
def test_json_that_breaks_the_protocol_is_a_bad_response(raw_node, body):
    raw_node(http_200(body))
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"})
    assert (failure.value.kind, failure.value.failure) == ("bad_response", "node_bad_response")


def test_bytes_that_are_not_utf8_are_a_bad_response(raw_node):
    raw_node(http_200(b"\xff\xfe"))
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"})
    assert (failure.value.kind, failure.value.failure) == ("not_utf8", "node_bad_response")


def test_a_connection_closed_mid_answer_is_unavailable(raw_node):
    raw_node(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"resp')
    with pytest.raises(NodeUnavailable):
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=2)


def test_an_answer_that_is_not_http_is_unavailable(raw_node):
    raw_node(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=2)
    assert failure.value.kind == "refused"


def test_a_huge_answer_is_refused(raw_node, settings):
    raw_node(http_200(b'{"response": "' + b"x" * (settings.SOFIIA_NODE_MAX_RESPONSE_BYTES + 10) + b'"}'))
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=10)
    assert (failure.value.kind, failure.value.failure) == ("too_large", "node_too_large")


def test_an_answer_just_under_the_cap_is_taken(raw_node, settings):
    settings.SOFIIA_NODE_MAX_RESPONSE_BYTES = 4096
    text = "x" * (4096 - len('{"response": ""}'))
    raw_node(http_200(('{"response": "' + text + '"}').encode()))
    assert infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=10).response == text


def test_a_status_line_sent_a_byte_at_a_time_is_cut_at_the_total_timeout(raw_node):
    raw_node(http_200(b'{"response": "x"}'), drip_seconds=0.2, chunk=1)  # about 20 s to send it all
    started = time.monotonic()
    with pytest.raises(NodeTimeout) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=0.5)
    assert failure.value.kind == "timeout"
    assert time.monotonic() - started < 4


def test_a_trickling_answer_is_cut_at_the_total_timeout(raw_node):
    body = b'{"response": "' + b"x" * 200 + b'"}'
    raw_node(http_200(body), drip_seconds=0.2, chunk=8)  # about 5.5 s to send it all
    started = time.monotonic()
    with pytest.raises(NodeTimeout):
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=0.5)
    assert time.monotonic() - started < 4
