from __future__ import annotations


def cache_backend_errors() -> tuple[type[BaseException], ...]:
    """What a cache backend raises when its server cannot be reached or answers badly."""
    from django_redis.exceptions import ConnectionInterrupted
    from redis.exceptions import RedisError

    return (RedisError, ConnectionInterrupted, OSError)
