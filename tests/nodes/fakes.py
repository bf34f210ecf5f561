"""Hostile nodes on 127.0.0.1: servers that answer the console's calls with whatever raw bytes
a test gives them, as slowly as it likes, and count what they were asked and what they sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def http_answer(status: int, body: bytes, *, content_type: str = "application/json", headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"{headers}Connection: close\r\n\r\n"
    ).encode() + body


def http_200(body: bytes, content_type: str = "application/json") -> bytes:
    return http_answer(200, body, content_type=content_type)


def json_200(payload: Any) -> bytes:
    return http_200(json.dumps(payload).encode())


Answer = bytes | Iterable[bytes]


@dataclass
class FakeNode:
    """Answers each request with ``answer(request)``: bytes sent at once, or chunks sent one by
    one with ``drip_seconds`` between them. Every connection has a thread of its own, so a
    trickling ``/health`` does not hold an infer call back."""

    answer: Callable[[Request], Answer]
    drip_seconds: float = 0.0
    requests: list[Request] = field(default_factory=list)
    bytes_sent: int = 0
    # Connections answered (or given up on) so far.
    handled: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def wait_handled(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until ``count`` connections are over on this side."""
        with self._done:
            return self._done.wait_for(lambda: self.handled >= count, timeout=timeout)

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> Request:
        # Read the whole request: closing a socket with unread input resets the connection.
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("client went away")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        while len(body) < int(headers.get("content-length", "0")):
            body += conn.recv(65536)
        method, path, _ = request_line.split(" ", 2)
        return Request(method=method, path=path, headers=headers, body=body)

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._answer(conn)
        finally:
            with self._done:
                self.handled += 1
                self._done.notify_all()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = self._read_request(conn)
                with self._lock:
                    self.requests.append(request)
                answer = self.answer(request)
                chunks = [answer] if isinstance(answer, bytes) else answer
                for chunk in chunks:
                    conn.sendall(chunk)
                    with self._lock:
                        self.bytes_sent += len(chunk)
                    if self.drip_seconds:
                        # Wall time: a node trickling its answer is what these tests are about.
                        time.sleep(self.drip_seconds)
            except OSError:
                return


def streamed_200(total_bytes: int, *, declared: bool = True, piece: bytes = b"x" * 65536) -> Iterable[bytes]:
    """A 200 whose body is ``total_bytes`` long (a JSON string), sent in pieces as it is read;
    with its length in a Content-Length header if ``declared``, else up to the connection's end."""
    length = f"Content-Length: {total_bytes}\r\n" if declared else ""
    yield f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n".encode()
    yield b'"'
    left = total_bytes - 2
    while left > 0:
        yield piece[:left]
        left -= len(piece)
    yield b'"'


def trickle(head: bytes, body: bytes) -> Iterable[bytes]:
    """The head at once, then the body a byte at a time."""
    yield head
    for i in range(len(body)):
        yield body[i : i + 1]
