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

# A unit taken that the database has not recorded yet is in flight for at most this long; after it, a
# reload counts it as taken by a process that died before its commit or undo, and gives it back.
IN_FLIGHT_SECONDS = 60

# KEYS[1]: the counter, KEYS[2]: its passes (sorted set: the caller's token -> when it took a unit,
# Redis's clock in ms, until it is older than IN_FLIGHT_SECONDS at a reload or an undo takes it back).
# ARGV: token, ttl seconds. Returns the units left after taking one, -1 when none is left, -2 when the
# counter is not loaded.
_TAKE = """
local left = redis.call('GET', KEYS[1])
if not left then return -2 end
if tonumber(left) <= 0 then return -1 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return redis.call('DECR', KEYS[1])
"""
# ARGV[1]: '1' when the database said none is left (the counter becomes 0), else one unit goes back;
# ARGV[2]: the token of the take. Only if the pass is still noted: a reload that aged it out gave its
# unit back already.
_UNDO = """
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], 0, 'KEEPTTL') else redis.call('INCR', KEYS[1]) end
return 1
"""
# The counter from the database's snapshot, less the units still in flight: passes younger than the grace
# that the snapshot does not hold yet (else a reload in the middle of a burst would hand the units of
# running plays out again, for the database to refuse). Passes leave only by age or by their undo, so a
# reload with an older snapshot, running after another, still counts a pass the other found recorded.
# ARGV: stock, ttl seconds, grace seconds, then the tokens the snapshot holds.
_RELOAD = """
local t = redis.call('TIME')
local oldest = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[3]) * 1000
local done = {}
for i = 4, #ARGV do done[ARGV[i]] = true end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', oldest)
local running = 0
for _, token in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if not done[token] then running = running + 1 end
end
redis.call('SET', KEYS[1], math.max(0, tonumber(ARGV[1]) - running), 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return running
"""
_scripts: dict[tuple[int, str], Any] = {}


def _script(redis: Any, source: str) -> Any:
    key = (id(redis), source)
    if key not in _scripts:
        _scripts[key] = redis.register_script(source)
    return _scripts[key]


def _keys(name: str) -> list[str]:
    """The counter and its passes (one hash tag: the caller's key carries it)."""
    return [name, f"{name}:passes"]


async def take(redis: Any, key: str, load: Callable[[], Awaitable[int | None]], ttl_seconds: int,
               token: str) -> bool | None:
    """Takes one unit from the counter for `token` (what the database records the unit under, e.g.
    "member:idempotencyKey"): True (taken), False (none left), None (no gate: Redis is down, or the stock
    is gone from the database too and nothing could be loaded)."""
    try:
        keys = _keys(await installation.key(key))
        left = await _script(redis, _TAKE)(keys=keys, args=[token, ttl_seconds])
        if left == -2:
            stock = await load()
            if stock is None:
                return None
            await redis.set(keys[0], stock, ex=ttl_seconds, nx=True)
            left = await _script(redis, _TAKE)(keys=keys, args=[token, ttl_seconds])
    except Exception:  # Redis is a gate in front of the database, never a dependency
        log.warning("stock gate %s: Redis unavailable, the database decides alone", key, exc_info=True)
        return None
    return int(left) >= 0


async def undo(redis: Any, key: str, none_left: bool, token: str) -> None:
    """Gives back the unit `token` took (or, when the database said none is left, sets the counter to 0)."""
    try:
        await _script(redis, _UNDO)(keys=_keys(await installation.key(key)), args=["1" if none_left else "0", token])
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


async def reload(redis: Any, key: str, stock: int, ttl_seconds: int, recorded: list[str]) -> None:
    """The counter from the database: `stock` left and the tokens of the units it has `recorded` (of the
    last IN_FLIGHT_SECONDS at least), as of one moment; the units of passes still in flight stay taken."""
    try:
        await _script(redis, _RELOAD)(keys=_keys(await installation.key(key)),
                                      args=[stock, ttl_seconds, IN_FLIGHT_SECONDS, *recorded])
    except Exception:
        log.warning("stock gate %s: could not reload", key, exc_info=True)
