"""A Redis counter in front of a stock the database keeps (lucky-draw prizes; flash sales have a gate
of their own that also knows buyers). It only answers "gone" early: the database's conditional update
decides, a step the database refused is undone, and a missing counter is loaded from the database.
Redis down means no gate, never a refusal.

Callers name a counter by its logical key (`mallpoints:{draw:<game>}:prize:<prize>`); the Redis key
carries the installation id as well (api/services/installation.py), added here."""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from api.services import installation

log = logging.getLogger("mallpoints.stock_gate")

# KEYS[1]: the counter. Returns the units left after taking one, -1 when none is left, -2 when the
# counter is not loaded.
_TAKE = """
local left = redis.call('GET', KEYS[1])
if not left then return -2 end
if tonumber(left) <= 0 then return -1 end
return redis.call('DECR', KEYS[1])
"""
# ARGV[1]: '1' when the database said none is left (the counter becomes 0), else one unit goes back.
_UNDO = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], 0, 'KEEPTTL') else redis.call('INCR', KEYS[1]) end
return 1
"""
_scripts: dict[tuple[int, str], Any] = {}


def _script(redis: Any, source: str) -> Any:
    key = (id(redis), source)
    if key not in _scripts:
        _scripts[key] = redis.register_script(source)
    return _scripts[key]


async def take(redis: Any, key: str, load: Callable[[], Awaitable[int | None]], ttl_seconds: int) -> bool | None:
    """Takes one unit from the counter: True (taken), False (none left), None (no gate: Redis is down,
    or the stock is gone from the database too and nothing could be loaded)."""
    try:
        name = await installation.key(key)
        left = await _script(redis, _TAKE)(keys=[name])
        if left == -2:
            stock = await load()
            if stock is None:
                return None
            await redis.set(name, stock, ex=ttl_seconds, nx=True)
            left = await _script(redis, _TAKE)(keys=[name])
    except Exception:  # Redis is a gate in front of the database, never a dependency
        log.warning("stock gate %s: Redis unavailable, the database decides alone", key, exc_info=True)
        return None
    return int(left) >= 0


async def undo(redis: Any, key: str, none_left: bool) -> None:
    try:
        await _script(redis, _UNDO)(keys=[await installation.key(key)], args=["1" if none_left else "0"])
    except Exception:  # the gate stays too strict by one unit until it is reloaded; the database decides
        log.warning("stock gate %s: could not undo a step", key, exc_info=True)


async def peek(redis: Any, keys: list[str]) -> list[int | None] | None:
    """The counters (None where not loaded), or None when Redis is unavailable. The keys must share a
    hash tag (one game's prizes do): MGET spans one slot of a Redis Cluster."""
    if not keys:
        return []
    try:
        values = await redis.mget([await installation.key(k) for k in keys])
    except Exception:
        log.warning("stock gate: Redis unavailable", exc_info=True)
        return None
    return [None if v is None else int(v) for v in values]


async def reload(redis: Any, key: str, stock: int, ttl_seconds: int) -> None:
    try:
        await redis.set(await installation.key(key), stock, ex=ttl_seconds)
    except Exception:
        log.warning("stock gate %s: could not reload", key, exc_info=True)
