"""Fixed-window rate limits.

Two kinds:

- `allow(...)` counts a hit on Redis when configured (shared by every server process), otherwise on a
  per-process table. It is a gate only: losing Redis loses no data, and the limiter then falls back to
  the process table. Used where a per-process limit is still a useful brake (SMS per address, shares).
- `reserve(...)` takes one slot of a limit atomically *before* the work it guards (a password check):
  Redis `INCR` with an expiry when Redis is configured, otherwise a counter row in the database
  (one upsert, so concurrent callers in any number of processes each get their own count). The caller
  gives the slot back with `Slot.give_back()` when the attempt must not count (a successful sign-in).
  A burst of N concurrent callers thus lets at most `limit` of them through, where a read-then-count
  limiter lets all N pass the read before any of them counts.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from api import db
from api.services import installation
from api.services import sql as core_sql

log = logging.getLogger("mallpoints.ratelimit")
_local: dict[str, tuple[int, float]] = {}
_PURGE_EVERY_SECONDS = 60.0
_last_purge = [0.0]



def _digest(key: str) -> str:
    """What a limit's key is stored under, in Redis as in the database: its hash (keys name usernames and
    client addresses)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def bucket_prefix(key: str) -> str:
    """The Redis keys of a limit's windows start with this: the installation id (a staging copy beside
    production on one Redis counts apart) and the key's hash."""
    return await installation.key(f"mallpoints:rl:{_digest(key)}:")


async def allow(redis: Any, key: str, limit: int, window_seconds: int) -> bool:
    """Counts one hit on `key`; False once `limit` hits were counted in the current window."""
    if redis is not None:
        try:
            bucket = f"{await bucket_prefix(key)}{int(time.time()) // window_seconds}"
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


@dataclass
class Slot:
    """One reserved hit of a limit. `allowed` is False when the hit was over the limit."""

    allowed: bool
    hits: int
    _redis: Any
    _key: str
    _expires_at: int
    _given_back: bool = False

    async def give_back(self) -> None:
        """Uncounts this hit (once): the attempt it guarded turned out not to count against the limit."""
        if self._given_back:
            return
        self._given_back = True
        if self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=True) as pipe:  # the expiry again: a key that
                    await pipe.decr(self._key).expireat(self._key, self._expires_at + 1).execute()  # just ended
                return
            except Exception:  # the hit then simply stays counted until the window ends
                log.warning("rate limiter: Redis unavailable, a hit stays counted", exc_info=True)
                return
        async with db.transaction() as tx:
            await tx.execute(core_sql.RATE_GIVE_BACK, self._key, self._expires_at)


def _window_end(window_seconds: int, now: float) -> int:
    return (int(now) // window_seconds + 1) * window_seconds


async def reserve(redis: Any, key: str, limit: int, window_seconds: int) -> Slot:
    """Counts one hit on `key` atomically and says whether it is within `limit` for the current window.
    Redis when configured (falling back to the database when Redis fails), otherwise the database."""
    now = time.time()
    expires_at = _window_end(window_seconds, now)
    if redis is not None:
        try:
            bucket = f"{await bucket_prefix(key)}{expires_at}"
            async with redis.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(bucket).expireat(bucket, expires_at + 1).execute()
            return Slot(int(count) <= limit, int(count), redis, bucket, expires_at)
        except Exception:  # Redis is a gate, never a dependency: the database counts instead
            log.warning("rate limiter: Redis unavailable, counting in the database", exc_info=True)
    key_hash = _digest(key)
    await _purge_now_and_then(now)
    async with db.transaction() as tx:
        count = int(await tx.fetchval(core_sql.RATE_HIT, key_hash, expires_at))
    return Slot(count <= limit, count, None, key_hash, expires_at)


async def _purge_now_and_then(now: float) -> None:
    if now - _last_purge[0] < _PURGE_EVERY_SECONDS:
        return
    _last_purge[0] = now
    async with db.transaction() as tx:
        await tx.execute(core_sql.RATE_PURGE, int(now))
