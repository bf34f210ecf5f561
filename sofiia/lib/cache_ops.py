"""Cache operations that Django's cache API has no single call for."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import BaseCache
from django_redis.cache import RedisCache
from redis.commands.core import Script

# KEYS[1]: the key; ARGV[1]: the encoded value; ARGV[2]: its lifetime in milliseconds.
# Returns the value already there, or false after storing ARGV[1].
_GET_OR_ADD = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
_script: Script | None = None


def cache_get_or_add(cache: BaseCache, key: str, value: Any, *, timeout: float) -> tuple[bool, Any]:
    """Store ``value`` under ``key`` for ``timeout`` seconds unless the key holds a value.

    Returns ``(True, None)`` when it stored ``value``, else ``(False, the value found)``. On
    Redis both happen in one round trip and one atomic step (``cache.get`` then ``cache.add``
    would be two of each); elsewhere the value found may be ``None`` when it expired or was
    deleted between the two steps.
    """
    if not isinstance(cache, RedisCache):
        if cache.add(key, value, timeout=timeout):
            return True, None
        return False, cache.get(key)
    global _script
    client = cache.client.get_client(write=True)
    if _script is None:
        _script = client.register_script(_GET_OR_ADD)
    milliseconds = max(1, round(timeout * 1000))
    found = _script(keys=[cache.make_key(key)], args=[cache.client.encode(value), milliseconds], client=client)
    if found is None:
        return True, None
    return False, cache.client.decode(found)
