"""A small router that speaks the node protocol, for the default local run and the tests.

Not for production. The reply is deterministic: ``"<node>/<agent>: <text>"``, where the text is
the new message (the last ``user`` turn of ``messages``, else the ``prompt``), so an echo reads
the same whatever context came with it. A few agent
names make it misbehave on purpose, so every kind of node failure can be exercised over
real HTTP: ``slow<seconds>`` answers late, ``fail500`` answers 500, ``garbage`` answers a
body that is not JSON, ``badjson`` answers JSON without ``response``. ``/health`` lists the
agents it advertises (``ADVERTISED_AGENTS``), which the console suggests; ``/v1/models`` lists
``MODELS``. An answer names the model the body asked for (``DEFAULT_MODEL`` when it asked for
none) and counts ``tokens_used`` as a backend would, roughly: the words the node read (the
system prompt and the messages, or the prompt) plus the words of its reply. Every infer call is
recorded with its whole body (``InferCall``), so tests can assert what a node was asked.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

INFER_PATH = re.compile(r"^/v1/agents/([^/]+)/infer$")
MAX_BODY_BYTES = 1024 * 1024
# What /health lists (the console suggests them); any other agent name is answered too.
ADVERTISED_AGENTS = ("echo", "slow5")
MODELS = ({"id": "sofiia-small", "backend": "dev-cpu"}, {"id": "sofiia-large", "backend": "dev-gpu"})
DEFAULT_MODEL = "sofiia-small"


class _QuietServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    # Hundreds of sends may connect at once; the default backlog of 5 would make most of
    # them wait for SYN retransmits.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (an infer timeout) breaks the pipe of a slow answer; that is expected.
        logger.debug("dev_router.client_gone", extra={"client": client_address})


@dataclass
class InferCall:
    agent: str
    # The whole JSON body of the call, parsed, and its bytes as they came.
    body: dict[str, Any]
    at: float
    # The console's X-Request-ID for the send that made the call.
    request_id: str | None = None
    raw: bytes = b""

    @property
    def text(self) -> str:
        """The new message the call asked about (what the echo answers)."""
        return new_text(self.body)


def new_text(body: dict[str, Any]) -> str:
    """The operator's new text in an infer body: the last turn of ``messages`` when it is the
    user's, else the ``prompt`` (a router that reads only ``prompt`` gets the turns flattened)."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "user" and isinstance(last.get("content"), str):
            return str(last["content"])
    return str(body.get("prompt", ""))


def reply_text(node: str, agent: str, prompt: str) -> str:
    return f"{node}/{agent}: {prompt}"


def _words(value: object) -> int:
    return len(value.split()) if isinstance(value, str) else 0


def tokens_used(body: dict[str, Any], reply: str) -> int:
    """What the node read and wrote, in words: a stand-in for a backend's token count."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        read = sum(_words(m.get("content")) for m in messages if isinstance(m, dict))
    else:
        read = _words(body.get("prompt"))
    return _words(body.get("system_prompt")) + read + _words(reply)


def answer_model(body: dict[str, Any]) -> tuple[str, str]:
    """The model that answers ``body`` and its backend."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        model = DEFAULT_MODEL
    backend = next((m["backend"] for m in MODELS if m["id"] == model), "dev-router")
    return model, backend


@dataclass
class DevRouter:
    name: str
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[InferCall] = field(default_factory=list)
    # The X-Request-ID of each health probe, in order.
    probe_request_ids: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def record(self, call: InferCall) -> None:
        with self._lock:
            self.calls.append(call)

    def calls_with(self, text: str) -> list[InferCall]:
        """The calls that asked about the new message ``text``."""
        with self._lock:
            return [call for call in self.calls if call.text == text]

    def bind(self) -> ThreadingHTTPServer:
        router = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "sofiia-dev-router"
            # Headers and body go out in two writes; with Nagle's algorithm on, a keep-alive
            # client's delayed ACK would hold the body back for ~40 ms on every call.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                logger.debug("dev_router.request", extra={"node": router.name, "line": format % args})

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, payload: Any) -> None:
                self._send(status, json.dumps(payload).encode())

            def do_GET(self) -> None:
                if self.path == "/health":
                    with router._lock:
                        router.probe_request_ids.append(self.headers.get("X-Request-ID"))
                    self._json(200, {"status": "ok", "node": router.name, "agents": list(ADVERTISED_AGENTS)})
                elif self.path == "/v1/models":
                    self._json(200, {"models": list(MODELS), "total": len(MODELS)})
                else:
                    self._json(404, {"detail": "not found"})

            def do_POST(self) -> None:
                match = INFER_PATH.match(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if not match or length > MAX_BODY_BYTES:
                    self._json(404 if not match else 413, {"detail": "not found" if not match else "too large"})
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._json(400, {"detail": "body is not JSON"})
                    return
                if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
                    self._json(422, {"detail": "prompt must be a string"})
                    return
                agent = match.group(1)
                call = InferCall(
                    agent=agent, body=body, at=time.time(), request_id=self.headers.get("X-Request-ID"), raw=raw
                )
                router.record(call)
                self._answer(agent, body)

            def _answer(self, agent: str, body: dict[str, Any]) -> None:
                if agent.startswith("slow"):
                    try:
                        time.sleep(min(float(agent[4:] or "1"), 120.0))
                    except ValueError:
                        time.sleep(1)
                if agent == "fail500":
                    self._json(500, {"detail": "backend exploded"})
                elif agent == "garbage":
                    self._send(200, b"<html>not json at all", "text/html")
                elif agent == "badjson":
                    self._json(200, {"unexpected": True})
                else:
                    reply = reply_text(router.name, agent, new_text(body))
                    model, backend = answer_model(body)
                    self._json(
                        200,
                        {
                            "response": reply,
                            "model": model,
                            "tokens_used": tokens_used(body, reply),
                            "backend": backend,
                        },
                    )

        server = _QuietServer((self.host, self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        return server

    def start(self) -> DevRouter:
        """Serve in a background thread (for tests)."""
        server = self.bind()
        threading.Thread(target=server.serve_forever, name=f"dev-router-{self.name}", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.bind().serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
