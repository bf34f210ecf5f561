"""The registry of router nodes (``SOFIIA_NODES``) and what is last known of each.

Nothing slow or foreign is on a page's path: console pages and ``GET /api/nodes`` read only
each node's last known status (:func:`node_statuses`), which each process keeps in memory
and refreshes in the background. A status older than ``SOFIIA_NODE_STATUS_CACHE_SECONDS``
sets off a refresh of that node (one at a time per node and process: a thread, a greenlet
under gunicorn's gevent workers) and the request goes on with what is known. Only while
nothing at all is known of a node — a process's first look at it — does a request wait for
the first probe, and then at most ``FIRST_STATUS_WAIT_SECONDS`` for all nodes together: a
fresh worker would otherwise show every node down on its first pages, and the wait is
bounded and paid once. A dead, hanging or hostile node only ever holds its own refresh.

A refresh (:func:`node_probe`) asks ``GET {node}/health`` and then ``GET {node}/v1/models``
through the bounded client (:mod:`nodes.client`) with the probe timeout as total deadline
and small size caps; the node is up when ``/health`` answers 200 in full within them. A
status is ``unknown`` until the first probe ends.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from nodes.client import node_call, node_fetch, parse_json
from nodes.errors import NodeError
from sofiia.lib.clock import clock_now
from sofiia.lib.request_id import current_request_id
from sofiia.lib.text import is_storable

logger = logging.getLogger(__name__)

# What a chat accepts as an agent (chats.validators): no dot segments.
_AGENT_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$")
MAX_ADVERTISED_AGENTS = 100
MAX_NODE_MODELS = 200
MAX_MODEL_ID_LENGTH = 200
HEALTH_MAX_BYTES = 64 * 1024
MODELS_MAX_BYTES = 256 * 1024
FIRST_STATUS_WAIT_SECONDS = 0.5
# The metrics label of a call to a node that is not configured (a chat of a removed node).
UNKNOWN_NODE_LABEL = "(unknown)"
OTHER_MODEL_LABEL = "other"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    status: str  # "up" | "down" | "unknown"
    latency_ms: int | None
    # The agents the node's /health says it offers (``"agents": [name, ...]``), if it says so.
    agents: tuple[str, ...] = ()
    # The model ids the node lists at /v1/models.
    models: tuple[str, ...] = ()
    checked_at: datetime | None = None
    # Why it is down: a failure code of nodes.errors ("" when up or unknown).
    failure: str = ""


def advertised_agents(body: object) -> tuple[str, ...]:
    """Agent names from a /health body: ``{"agents": ["name", ...]}`` or
    ``{"agents": [{"name": ...}, ...]}``; anything else advertises nothing."""
    listed = body.get("agents") if isinstance(body, dict) else None
    if not isinstance(listed, list):
        return ()
    names = (item.get("name") if isinstance(item, dict) else item for item in listed[:MAX_ADVERTISED_AGENTS])
    return tuple(sorted({name for name in names if isinstance(name, str) and _AGENT_NAME.match(name)}))


def listed_models(body: object) -> tuple[str, ...]:
    """Model ids from a /v1/models body, ``{"models": [{"id": ..., "backend": ...}, ...]}``, in
    the node's order: at most ``MAX_NODE_MODELS``, each a storable string of at most
    ``MAX_MODEL_ID_LENGTH`` characters (others are left out)."""
    listed = body.get("models") if isinstance(body, dict) else None
    if not isinstance(listed, list):
        return ()
    ids = (item.get("id") if isinstance(item, dict) else None for item in listed[:MAX_NODE_MODELS])
    valid = (i for i in ids if isinstance(i, str) and 0 < len(i) <= MAX_MODEL_ID_LENGTH and is_storable(i))
    return tuple(dict.fromkeys(valid))


def node_names() -> list[str]:
    return list(settings.SOFIIA_NODES)


def node_url(name: str) -> str:
    return settings.SOFIIA_NODES[name]


def node_exists(name: str) -> bool:
    return name in settings.SOFIIA_NODES


def default_node() -> str:
    return settings.SOFIIA_DEFAULT_NODE


def node_label(name: str) -> str:
    """``name`` as a metrics label: a configured node's name, else ``UNKNOWN_NODE_LABEL``."""
    return name if node_exists(name) else UNKNOWN_NODE_LABEL


def node_models(name: str, *, timeout: float | None = None, request_id: str | None = None) -> tuple[str, ...]:
    """The model ids ``GET {node}/v1/models`` lists; ``()`` when it lists none or fails."""
    timeout = settings.SOFIIA_NODE_PROBE_TIMEOUT if timeout is None else timeout
    try:
        body = node_call(
            node=name,
            url=f"{node_url(name)}/v1/models",
            timeout=timeout,
            max_bytes=min(MODELS_MAX_BYTES, settings.SOFIIA_NODE_MAX_RESPONSE_BYTES),
            request_id=request_id,
        )
    except NodeError as exc:
        logger.info("node.models_failed", extra={"node": name, "reason": exc.kind})
        return ()
    return listed_models(body)


def node_probe(name: str, *, timeout: float | None = None, request_id: str | None = None) -> NodeStatus:
    """Ask the node now: up when ``GET {node}/health`` answers 200, in full within the probe
    timeout and the health cap; then the agents its body lists, if it is JSON that says so,
    and the models it lists at ``/v1/models``."""
    timeout = settings.SOFIIA_NODE_PROBE_TIMEOUT if timeout is None else timeout
    started = time.monotonic()
    try:
        raw = node_fetch(
            node=name,
            url=f"{node_url(name)}/health",
            timeout=timeout,
            max_bytes=min(HEALTH_MAX_BYTES, settings.SOFIIA_NODE_MAX_RESPONSE_BYTES),
            request_id=request_id,
        )
    except NodeError as exc:
        logger.info("node.down", extra={"node": name, "reason": exc.kind})
        return NodeStatus(name=name, status="down", latency_ms=None, checked_at=clock_now(), failure=exc.failure)
    latency_ms = round((time.monotonic() - started) * 1000)
    try:
        body = parse_json(raw, node=name)
    except NodeError:
        body = None  # up (the protocol asks only for a 200), and says nothing more
    return NodeStatus(
        name=name,
        status="up",
        latency_ms=latency_ms,
        agents=advertised_agents(body),
        models=node_models(name, timeout=timeout, request_id=request_id),
        checked_at=clock_now(),
    )


class _Entry:
    """What one process knows of one node at one URL."""

    def __init__(self, name: str) -> None:
        self.status = NodeStatus(name=name, status="unknown", latency_ms=None)
        self.known = threading.Event()
        self.refreshing = False


class NodeStatusBoard:
    """The last known status of each node, in this process."""

    def __init__(self) -> None:
        # Under gevent these are greenlet primitives (threading is patched before import).
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._labelled_models: dict[str, set[str]] = {}
        self._running = 0

    def _entry(self, name: str) -> _Entry:
        # Keyed by URL too: a node moved to another address is not known there yet.
        key = (name, node_url(name))
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(name)
        return entry

    def statuses(self) -> list[NodeStatus]:
        names = node_names()
        request_id = current_request_id()
        with self._lock:
            entries = [self._entry(name) for name in names]
            live = {(name, node_url(name)) for name in names}
            for key in [key for key in self._entries if key not in live]:
                del self._entries[key]
            for entry in entries:
                if _stale(entry.status):
                    self._refresh_later(entry, request_id)
        waiting_until = time.monotonic() + FIRST_STATUS_WAIT_SECONDS
        for entry in entries:
            if not entry.known.is_set():
                entry.known.wait(max(0.0, waiting_until - time.monotonic()))
        return [entry.status for entry in entries]

    def last_known(self, name: str) -> NodeStatus:
        """``name``'s last known status (``unknown`` if none), refreshed later if stale."""
        with self._lock:
            entry = self._entry(name)
            if _stale(entry.status):
                self._refresh_later(entry, current_request_id())
            return entry.status

    def _refresh_later(self, entry: _Entry, request_id: str | None) -> None:
        # Called with the lock held: the refresh cannot store (and count itself done) before
        # it is counted as running below.
        if entry.refreshing:
            return
        name = entry.status.name
        refresher = threading.Thread(
            target=self._refresh, args=(entry, request_id), name=f"node-status-{name}", daemon=True
        )
        try:
            refresher.start()
        except RuntimeError:
            # No thread to be had (a process at its limit): the page shows what is known.
            logger.warning("node.refresh_not_started", extra={"node": name})
            return
        entry.refreshing = True
        self._running += 1

    def _refresh(self, entry: _Entry, request_id: str | None) -> None:
        name = entry.status.name
        try:
            status = node_probe(name, request_id=request_id)
        except Exception:
            # The refresh must end whatever happens (a node removed meanwhile, a bug): an entry
            # stuck "refreshing" would never be probed again in this process.
            logger.exception("node.probe_crashed", extra={"node": name})
            status = NodeStatus(name=name, status="down", latency_ms=None, checked_at=clock_now())
        self._store(entry, status, background=True)

    def _store(self, entry: _Entry, status: NodeStatus, *, background: bool = False) -> None:
        with self._lock:
            entry.status = status
            entry.known.set()
            if background:
                entry.refreshing = False
                self._running -= 1
                self._idle.notify_all()

    def refresh(self) -> list[NodeStatus]:
        """Probe every node now, store and return their statuses."""
        names = node_names()
        request_id = current_request_id()
        with self._lock:
            entries = [self._entry(name) for name in names]
        if not names:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            statuses = list(pool.map(lambda name: node_probe(name, request_id=request_id), names))
        for entry, status in zip(entries, statuses, strict=True):
            self._store(entry, status)
        return statuses

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no refresh is running; False if one still is after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout=timeout)

    def model_label(self, name: str, model: str | None) -> str:
        """``model`` as a metrics label for ``name``: itself when the node lists it (last
        known) and it is one of the first ``MAX_NODE_MODELS`` so labelled, else ``other``."""
        if model is None or not node_exists(name):
            return OTHER_MODEL_LABEL
        if model not in self.last_known(name).models:
            return OTHER_MODEL_LABEL
        with self._lock:
            # A node may list other models over time: the labels it gets stay bounded.
            labelled = self._labelled_models.setdefault(name, set())
            if model in labelled or len(labelled) < MAX_NODE_MODELS:
                labelled.add(model)
                return model
        return OTHER_MODEL_LABEL


def _stale(status: NodeStatus) -> bool:
    if status.checked_at is None:
        return True
    age = clock_now() - status.checked_at
    # A negative age: the clock was moved back (tests) after the probe.
    return not timedelta(0) <= age <= timedelta(seconds=settings.SOFIIA_NODE_STATUS_CACHE_SECONDS)


_board = NodeStatusBoard()


def node_statuses() -> list[NodeStatus]:
    """Every configured node's last known status, in ``SOFIIA_NODES`` order, without asking any
    node (but for a process's first look: see the module's docstring)."""
    return _board.statuses()


def node_statuses_refresh() -> list[NodeStatus]:
    """Probe every node now (in parallel) and keep the answers as the last known statuses."""
    return _board.refresh()


def node_statuses_settle(timeout: float = 10.0) -> bool:
    """Wait until the background refreshes are over (tests)."""
    return _board.wait_idle(timeout)


def node_statuses_forget(*, settle_seconds: float = 10.0) -> None:
    """Forget every status: the next look at each node is a first look (tests). The refreshes
    under way are waited for first (up to ``settle_seconds``), so none lands afterwards."""
    global _board
    _board.wait_idle(settle_seconds)
    _board = NodeStatusBoard()


def node_model_label(name: str, model: str | None) -> str:
    return _board.model_label(name, model)


def _after_fork_in_child() -> None:
    global _board
    # The refreshing threads of the parent do not exist in the child: nothing to wait for.
    _board = NodeStatusBoard()


os.register_at_fork(after_in_child=_after_fork_in_child)
