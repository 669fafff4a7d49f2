"""A flash sale's Redis gate: one Lua script keeps a stock counter, a count per buyer and the
idempotency keys of successful buyers, and answers "sold out" and "limit reached" without touching
the database. It only rejects early: the database decides, a step the database refused is undone,
and the gate is rebuilt from the database (a lost or flushed Redis only costs a reload)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from api.services import clock, installation
from api.services.mall import sql
from api.services.mall.flash_terms import SaleInfo, sale
from api.services.mall.stock_gate import IN_FLIGHT_SECONDS  # the prize counters' grace for passes in flight

log = logging.getLogger("mallpoints.flash_sales")


def gate_tag(sale_id: int) -> str:
    """The logical prefix of a sale's gate keys; `{fs:<id>}` is the hash tag that puts the four keys in
    one slot of a Redis Cluster (a Lua script's keys must share a slot)."""
    return f"mallpoints:{{fs:{sale_id}}}"


async def gate_keys(sale_id: int) -> list[str]:
    """The Redis keys of a sale's gate (stock, buyers, keys, passes), namespaced by the installation id."""
    tag = await installation.key(gate_tag(sale_id))
    return [f"{tag}:stock", f"{tag}:buyers", f"{tag}:keys", f"{tag}:passes"]


# KEYS: stock, buyers (hash member -> units), keys (set of "member:idempotencyKey" of successful buyers),
# passes (sorted set: "member:idempotencyKey" -> when it passed, Redis's clock in ms, until it is older than
# IN_FLIGHT_SECONDS at a reload or an undo takes it back)
# ARGV: member, member:key, per-member limit
_GATE = """
local stock = redis.call('GET', KEYS[1])
if not stock then return 'NOT_LOADED' end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return 'REPEAT' end
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') >= tonumber(ARGV[3]) then return 'LIMIT' end
if tonumber(stock) <= 0 then return 'SOLD_OUT' end
redis.call('DECR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('SADD', KEYS[3], ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[2])
local ttl = math.max(60, redis.call('TTL', KEYS[1]))
for i = 2, 4 do if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end end
return 'OK'
"""
# Undo one 'OK' of this request (only if the gate still remembers it: a reload may have replaced it).
# ARGV: member, member:key, '1' when the database said sold out (then the counter is set to 0).
_UNDO = """
redis.call('ZREM', KEYS[4], ARGV[2])
if redis.call('SREM', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if ARGV[3] == '1' then redis.call('SET', KEYS[1], 0, 'KEEPTTL') else redis.call('INCR', KEYS[1]) end
return 1
"""
# The gate from the database's snapshot, keeping the passes still in flight: a pass younger than the grace
# whose order the snapshot does not hold yet keeps its unit (else a reload in the middle of a burst would
# hand the units of running winners out again, and the database would have to refuse that many more).
# Passes leave only by age (or by their undo): a recorded pass stays noted until then, so a reload whose
# snapshot is older than another's, running after it, still finds it and counts it.
# ARGV: stock, ttl seconds, force ('1' replaces a loaded gate), grace seconds, n buyers, m paid orders,
# n pairs (member, units), the m "member:key" strings of the paid orders, then those of the sale's other
# orders (refunded: recorded, so their passes are not in flight, but no longer buyers).
_LOAD = """
if ARGV[3] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local oldest = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[4]) * 1000
local n, m = tonumber(ARGV[5]), tonumber(ARGV[6])
local first = 7 + 2 * n
local recorded = {}
for i = first, #ARGV do recorded[ARGV[i]] = true end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', oldest)
local running = {}
for _, key in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if not recorded[key] then table.insert(running, key) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], math.max(0, tonumber(ARGV[1]) - #running), 'EX', ARGV[2])
for i = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[7 + 2 * i], ARGV[8 + 2 * i]) end
for i = first, first + m - 1 do redis.call('SADD', KEYS[3], ARGV[i]) end
for _, key in ipairs(running) do
  redis.call('SADD', KEYS[3], key)
  redis.call('HINCRBY', KEYS[2], string.match(key, '^[^:]+'), 1)
end
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return 1
"""
_scripts: dict[tuple[int, str], Any] = {}
_warned_at = [0.0]


def _warn_once(message: str) -> None:
    """One warning per 10 s per process: a Redis outage in a burst would otherwise log thousands."""
    if time.monotonic() - _warned_at[0] > 10:
        _warned_at[0] = time.monotonic()
        log.warning(message, exc_info=True)


def _script(redis: Any, source: str) -> Any:
    """redis-py's Script object: EVALSHA, falling back to EVAL after a Redis restart."""
    key = (id(redis), source)
    if key not in _scripts:
        _scripts[key] = redis.register_script(source)
    return _scripts[key]


async def load_gate(redis: Any, sale_id: int, force: bool = False) -> bool:
    """Loads (or with `force` rebuilds) the gate of a sale from the database: stock left, units per
    buyer, idempotency keys of paid orders, less the passes still in flight (`_LOAD`). Returns False when
    Redis is unavailable."""
    s = await sale(sale_id, fresh=True)  # its window (the keys' time to live)
    stock, rows = await sql.gate_snapshot(sale_id)  # stock and orders of one moment
    paid = [r for r in rows if r["status"] == "PAID"]
    units: dict[int, int] = {}
    for r in paid:
        units[r["member_id"]] = units.get(r["member_id"], 0) + r["quantity"]
    ttl = max(60, int((s.ends_at - clock.now()).total_seconds()) + 86400)
    args: list[Any] = [stock, ttl, "1" if force else "0", IN_FLIGHT_SECONDS, len(units), len(paid)]
    for member_id, count in units.items():
        args += [member_id, count]
    args += [f"{r['member_id']}:{r['idempotency_key']}" for r in paid]
    args += [f"{r['member_id']}:{r['idempotency_key']}" for r in rows if r["status"] != "PAID"]
    try:
        await _script(redis, _LOAD)(keys=await gate_keys(sale_id), args=args)
        return True
    except Exception:  # Redis is a gate in front of the database, never a dependency
        log.warning("flash sale %s: Redis unavailable, gate not loaded", sale_id, exc_info=True)
        return False


@dataclass(frozen=True)
class GateState:
    loaded: bool
    stock: int | None
    buyers: int


async def gate_state(redis: Any, sale_id: int) -> GateState:
    keys = await gate_keys(sale_id)
    stock, buyers = await redis.get(keys[0]), await redis.hlen(keys[1])
    return GateState(stock is not None, None if stock is None else int(stock), int(buyers))


async def pass_gate(redis: Any, s: SaleInfo, member_id: int, key: str) -> str | None:
    """The gate's verdict: OK, REPEAT (go to the database for the first result), LIMIT, SOLD_OUT;
    None when there is no gate (no Redis, or Redis is down)."""
    gate = _script(redis, _GATE)
    args = [member_id, f"{member_id}:{key}", s.per_member_limit]
    try:
        verdict = await gate(keys=await gate_keys(s.id), args=args)
        if verdict in (b"NOT_LOADED", "NOT_LOADED"):
            if not await load_gate(redis, s.id):
                return None
            verdict = await gate(keys=await gate_keys(s.id), args=args)
    except Exception as exc:
        _warn_once(f"flash sale {s.id}: Redis unavailable ({exc.__class__.__name__}), the database decides alone")
        return None
    return verdict.decode() if isinstance(verdict, bytes) else str(verdict)


async def undo_gate(redis: Any, sale_id: int, member_id: int, key: str, sold_out: bool) -> None:
    try:
        await _script(redis, _UNDO)(keys=await gate_keys(sale_id), args=[member_id, f"{member_id}:{key}", "1" if sold_out else "0"])
    except Exception:  # the gate is then too strict by one unit until it is rebuilt; the database still decides
        log.warning("flash sale %s: could not undo a gate step", sale_id, exc_info=True)
