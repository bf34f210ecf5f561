from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from nodes.infer import MAX_RESPONSE_BYTES, NodeTimeout, NodeUnavailable, infer
from nodes.metrics import INFER_REQUESTS
from nodes.transport import http_session
from tests.live import free_port


def counter(node: str, outcome: str) -> float:
    return INFER_REQUESTS.labels(node=node, outcome=outcome)._value.get()


def test_a_healthy_node_answers(nodes):
    result = infer(node="NODA1", agent="echo", body={"prompt": "hi there"})
    assert result.response == "NODA1/echo: hi there"
    assert (result.model, result.tokens_used, result.backend) == ("dev-echo", 2, "dev-router")


def test_agent_names_are_escaped_in_the_path(nodes):
    result = infer(node="NODA2", agent="a.b-c_d", body={"prompt": "x"})
    assert result.response == "NODA2/a.b-c_d: x"


@pytest.mark.parametrize(
    ("agent", "kind"), [("fail500", "http_status"), ("garbage", "bad_response"), ("badjson", "bad_response")]
)
def test_broken_answers_are_node_unavailable(nodes, agent, kind):
    before = counter("NODA1", kind)
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="NODA1", agent=agent, body={"prompt": "x"})
    assert failure.value.kind == kind
    assert failure.value.code == "node_unavailable"
    assert counter("NODA1", kind) == before + 1


def test_a_slow_node_times_out(nodes):
    started = time.monotonic()
    with pytest.raises(NodeTimeout) as failure:
        infer(node="NODA1", agent="slow5", body={"prompt": "x"}, timeout=0.3)
    assert failure.value.code == "node_timeout"
    assert time.monotonic() - started < 3


def test_a_closed_port_is_refused(settings):
    settings.SOFIIA_NODES = {"DOWN": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="DOWN", agent="echo", body={"prompt": "x"})
    assert failure.value.kind == "refused"


def test_an_unknown_node_is_unavailable():
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="NOWHERE", agent="echo", body={"prompt": "x"})
    assert failure.value.kind == "unknown_node"


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


def http_200(body: bytes, content_type: str = "application/json") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode() + b"\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"response": 5}', b'{"response": "x", "model": 5}', b'{"response": "x", "tokens_used": "many"}',
     b'{"response": "x", "tokens_used": true}', b"\xff\xfe"],
)  # fmt: skip
def test_json_that_breaks_the_protocol_is_a_bad_response(raw_node, body):
    raw_node(http_200(body))
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"})
    assert failure.value.kind == "bad_response"


def test_a_connection_closed_mid_answer_is_unavailable(raw_node):
    raw_node(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"resp')
    with pytest.raises(NodeUnavailable):
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=2)


def test_an_answer_that_is_not_http_is_unavailable(raw_node):
    raw_node(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=2)
    assert failure.value.kind == "refused"


def test_a_huge_answer_is_refused(raw_node):
    raw_node(http_200(b'{"response": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}'))
    with pytest.raises(NodeUnavailable) as failure:
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=10)
    assert failure.value.kind == "bad_response"


def test_a_trickling_answer_is_cut_at_the_total_timeout(raw_node):
    body = b'{"response": "' + b"x" * 200 + b'"}'
    raw_node(http_200(body), drip_seconds=0.2, chunk=8)  # about 5.5 s to send it all
    started = time.monotonic()
    with pytest.raises(NodeTimeout):
        infer(node="RAW", agent="echo", body={"prompt": "x"}, timeout=0.5)
    assert time.monotonic() - started < 4
