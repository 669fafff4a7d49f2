"""Fixed-window rate limits. Redis when configured (shared by every server process); otherwise a
per-process table. A limit is a gate only: losing Redis loses no data, and the limiter then falls
back to the process table."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("mallpoints.ratelimit")
_local: dict[str, tuple[int, float]] = {}


async def exceeded(redis, key: str, limit: int, window_seconds: int) -> bool:
    """True when `limit` hits were counted on `key` in the current window (counts nothing)."""
    if redis is not None:
        try:
            value = await redis.get(f"mallpoints:rl:{key}:{int(time.time()) // window_seconds}")
            return value is not None and int(value) >= limit
        except Exception:  # Redis is a gate in front of the database, never a dependency
            log.warning("rate limiter: Redis unavailable, using the process table", exc_info=True)
    count, started = _local.get(key, (0, time.monotonic()))
    return time.monotonic() - started < window_seconds and count >= limit


async def allow(redis, key: str, limit: int, window_seconds: int) -> bool:
    """Counts one hit on `key`; False once `limit` hits were counted in the current window."""
    if redis is not None:
        try:
            bucket = f"mallpoints:rl:{key}:{int(time.time()) // window_seconds}"
            async with redis.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(bucket).expire(bucket, window_seconds).execute()
            return int(count) <= limit
        except Exception:  # Redis is a gate in front of the database, never a dependency
            log.warning("rate limiter: Redis unavailable, using the process table", exc_info=True)
    now = time.monotonic()
    count, started = _local.get(key, (0, now))
    if now - started >= window_seconds:
        count, started = 0, now
    if len(_local) > 100_000:
        _local.clear()
    _local[key] = (count + 1, started)
    return count + 1 <= limit
