"""A throw-away Redis server of our own, for tests that stop Redis in the middle of things
without disturbing the shared one."""

from __future__ import annotations

import shutil
import subprocess

import redis

from tests.live import free_port
from tests.waiting import wait_until


class DisposableRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)

        def answering() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(answering, 10, what=f"redis-server on port {self.port}")
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def cache_settings(self) -> dict[str, object]:
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": self.url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.3, "SOCKET_TIMEOUT": 0.3},
        }
