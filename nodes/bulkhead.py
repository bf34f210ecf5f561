"""A limit of sends in flight per node, shared by the worker processes of one instance.

A node that hangs must not take every request slot of the instance with it: past
``SOFIIA_NODE_MAX_INFLIGHT`` sends waiting on one node, the next send to it is refused at
once (``node_busy``) and sends to the other nodes go on as usual.

Each node has that many slots: the bytes of a file in the instance directory, which the
gunicorn master makes and its workers share (``SOFIIA_INSTANCE_DIR``). A send holds one slot,
an exclusive POSIX record lock on one byte, for the length of its node call. The kernel
arbitrates between processes and drops the locks of a process that dies, so a worker killed
mid-send cannot leak capacity. POSIX locks belong to a process, which never conflicts with
itself, so each process also keeps the set of slots its own greenlets (or threads) hold.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import fcntl
import os
import random
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from nodes.errors import NodeBusy
from nodes.metrics import NODE_BUSY, NODE_IN_FLIGHT
from nodes.registry import node_label


class _Flock(ctypes.Structure):
    """``struct flock`` as the C library lays it out (``off_t`` is 64-bit on Linux)."""

    _fields_ = [
        ("l_type", ctypes.c_short),
        ("l_whence", ctypes.c_short),
        ("l_start", ctypes.c_int64),
        ("l_len", ctypes.c_int64),
        ("l_pid", ctypes.c_int),
    ]


class NodeBulkhead:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        # Under gevent this is a greenlet lock (the module is patched before it is imported);
        # the sections it guards make system calls that never yield.
        self._lock = threading.Lock()
        self._files: dict[str, int] = {}
        self._held: dict[str, set[int]] = {}

    @property
    def directory(self) -> Path:
        return self._directory

    def _file(self, node: str) -> int:
        fd = self._files.get(node)
        if fd is None:
            # Node names are [A-Za-z0-9_.-]: never a path separator.
            path = self._directory / f"node-{node}.slots"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._files[node] = fd
        return fd

    @contextmanager
    def slot(self, node: str) -> Iterator[None]:
        """Hold one of ``node``'s slots for the length of the block, or raise :class:`NodeBusy`."""
        limit = max_in_flight()
        index = self._acquire(node, limit)
        gauge = NODE_IN_FLIGHT.labels(node=node_label(node))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()
            self._release(node, index)

    def _acquire(self, node: str, limit: int) -> int:
        with self._lock:
            fd = self._file(node)
            held = self._held.setdefault(node, set())
            # Start anywhere: with many slots taken, a scan from 0 would probe all of them.
            start = random.randrange(limit)  # noqa: S311 - spreading probes, not security
            for offset in range(limit):
                index = (start + offset) % limit
                if index in held:
                    continue
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, index, os.SEEK_SET)
                except OSError as exc:
                    if exc.errno in (errno.EACCES, errno.EAGAIN):
                        continue
                    raise
                held.add(index)
                return index
        NODE_BUSY.labels(node=node_label(node)).inc()
        raise NodeBusy(node, "busy", f"{limit} sends to this node are already in flight")

    def _release(self, node: str, index: int) -> None:
        with self._lock:
            fcntl.lockf(self._files[node], fcntl.LOCK_UN, 1, index, os.SEEK_SET)
            self._held[node].discard(index)

    def in_flight(self, node: str) -> int:
        """Sends to ``node`` in flight in this instance, all workers together."""
        limit = max_in_flight()
        with self._lock:
            fd = self._file(node)
            held = self._held.get(node, set())
            others = sum(1 for index in range(limit) if index not in held and _locked_elsewhere(fd, index))
            return len(held) + others

    def forget(self) -> None:
        """After a fork: the child holds no locks, and must not share the parent's descriptors."""
        for fd in self._files.values():
            os.close(fd)
        self._lock = threading.Lock()
        self._files = {}
        self._held = {}


def _locked_elsewhere(fd: int, index: int) -> bool:
    probe = _Flock(l_type=fcntl.F_WRLCK, l_whence=os.SEEK_SET, l_start=index, l_len=1, l_pid=0)
    answer = _Flock.from_buffer_copy(fcntl.fcntl(fd, fcntl.F_GETLK, bytes(probe)))
    return bool(answer.l_type != fcntl.F_UNLCK)


def max_in_flight() -> int:
    return int(settings.SOFIIA_NODE_MAX_INFLIGHT)


_bulkhead: NodeBulkhead | None = None
_bulkhead_lock = threading.Lock()


def node_bulkhead() -> NodeBulkhead:
    """This process's view of the instance's slots.

    Under gunicorn the directory is the master's instance directory; a process of its own
    (``runserver``, a management command, the tests) is an instance by itself.
    """
    global _bulkhead
    if _bulkhead is None:
        with _bulkhead_lock:
            if _bulkhead is None:
                directory = settings.SOFIIA_INSTANCE_DIR
                if not directory:
                    directory = tempfile.mkdtemp(prefix="sofiia-instance-")
                    atexit.register(shutil.rmtree, directory, ignore_errors=True)
                _bulkhead = NodeBulkhead(Path(directory))
    return _bulkhead


def _after_fork_in_child() -> None:
    if _bulkhead is not None:
        _bulkhead.forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
