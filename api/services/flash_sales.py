"""Flash sales (积分秒杀): thousands of members press the button in the same second.

The database decides: the order is written, the points are spent and the sale's stock is taken by a
conditional update (`stock = stock - 1 WHERE stock >= 1`) in one transaction, with the member's
account locked so that the per-member limit is counted safely. Redis, when configured, is a gate in
front of it: one Lua script keeps a stock counter, a count per buyer and the idempotency keys of
successful buyers, and answers "sold out" and "limit reached" without touching the database. When
the database step fails after the gate let a request through, the gate's step is undone. The gate
is loaded from the database on the first request of a sale (or by an operator at any time), and a
lost or flushed Redis only costs a reload: no order lives in Redis. Without Redis, or while it is
down, the same mutation runs on the database alone.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from api.db import fetch, transaction
from api.services import clock, idempotency, ledger, mall, tiers
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

log = logging.getLogger("mallpoints.flash_sales")
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")


@dataclass(frozen=True)
class SaleInfo:
    id: int
    product_id: int
    title: str
    points_price: int
    stock: int
    stock_total: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    status: str
    created_at: datetime
    updated_at: datetime

    def on_sale(self, now: datetime) -> bool:
        return self.status == "ACTIVE" and self.starts_at <= now < self.ends_at


COLUMNS = ("id, product_id, title, points_price, stock, stock_total, per_member_limit, starts_at, ends_at, status,"
           " created_at, updated_at")


def _sale(row: Any) -> SaleInfo:
    data = dict(row)
    for name in ("starts_at", "ends_at", "created_at", "updated_at"):
        data[name] = clock.parse_db_time(data[name])
    for name in ("points_price", "stock", "stock_total"):
        data[name] = int(data[name])
    return SaleInfo(**data)


# --- the sale's terms, cached in the process (not its stock: the database and the gate hold that) --

_terms: dict[int, tuple[float, SaleInfo]] = {}
_loading: dict[int, asyncio.Future] = {}
TERMS_SECONDS = 2.0  # an operator's change reaches every server process within this time


async def sale(sale_id: int, fresh: bool = False) -> SaleInfo:
    """The sale's terms. In a burst, one read per process is in flight at a time: the others wait for
    it (a thousand requests missing the cache at once would each queue for a database connection)."""
    cached = _terms.get(sale_id)
    if not fresh and cached is not None and time.monotonic() - cached[0] < TERMS_SECONDS:
        return cached[1]
    pending = _loading.get(sale_id)
    if pending is None:
        pending = asyncio.ensure_future(_read_terms(sale_id))
        _loading[sale_id] = pending
        pending.add_done_callback(lambda _f: _loading.pop(sale_id, None))
    return await asyncio.shield(pending)


async def _read_terms(sale_id: int) -> SaleInfo:
    rows = await fetch(f"SELECT {COLUMNS} FROM flash_sale WHERE id = $1", sale_id)
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such flash sale", ["input", "flashSaleId"])
    info = _sale(rows[0])
    _terms[sale_id] = (time.monotonic(), info)
    return info


async def sales_page(limit: int, after_id: int | None, *, include_hidden: bool,
                     tier_id: int | None = None) -> list[SaleInfo]:
    """Sales by start time; members (not include_hidden) see the live and coming sales of the
    products their tier may see (exclusive zones)."""
    columns = ", ".join(f"f.{c.strip()}" for c in COLUMNS.split(","))
    where = "f.id > $1"
    args: list[Any] = [after_id or 0, limit]
    if not include_hidden:
        args.append(clock.now())
        where += f" AND f.status = 'ACTIVE' AND f.ends_at > $3 AND {await mall.zone_filter(tier_id, 'p.min_tier_id')}"
    rows = await fetch(f"SELECT {columns} FROM flash_sale f JOIN product p ON p.id = f.product_id WHERE {where}"
                       " ORDER BY f.starts_at, f.id LIMIT $2", *args)
    return [_sale(r) for r in rows]


async def live_sale_ids(now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    rows = await fetch("SELECT id FROM flash_sale WHERE status = 'ACTIVE' AND starts_at <= $1 AND ends_at > $1", now)
    return [r["id"] for r in rows]


# --- operators -----------------------------------------------------------------------------------

def _check_terms(title: str, points_price: int, per_member_limit: int, starts_at: datetime, ends_at: datetime,
                 status: str) -> None:
    def invalid(message: str, field: str) -> DomainError:
        return DomainError(ErrorCode.INVALID_INPUT, message, ["input", field])

    if not 1 <= len(title.strip()) <= 128:
        raise invalid("title must be 1 to 128 characters", "title")
    if not 1 <= points_price <= mall.MAX_PRICE:
        raise invalid(f"pointsPrice must be 1 to {mall.MAX_PRICE}", "pointsPrice")
    if not 1 <= per_member_limit <= 100:
        raise invalid("perMemberLimit must be 1 to 100", "perMemberLimit")
    if ends_at <= starts_at:
        raise invalid("endsAt must be after startsAt", "endsAt")
    if status not in STATUSES:
        raise invalid(f"status must be one of {', '.join(STATUSES)}", "status")


async def create_sale(actor: Actor, *, product_id: int, title: str, points_price: int, stock: int,
                      per_member_limit: int, starts_at: datetime, ends_at: datetime, redis: Any = None) -> SaleInfo:
    """A sale has a stock of its own (a quota set aside for it, not taken from the product's)."""
    starts_at, ends_at = clock.to_utc(starts_at), clock.to_utc(ends_at)
    _check_terms(title, points_price, per_member_limit, starts_at, ends_at, "ACTIVE")
    if not 1 <= stock <= mall.MAX_STOCK:
        raise DomainError(ErrorCode.INVALID_INPUT, f"stock must be 1 to {mall.MAX_STOCK}", ["input", "stock"])
    await mall.product(product_id)  # NOT_FOUND
    now = clock.now()
    async with transaction() as tx:
        sale_id = await tx.fetchval(
            "INSERT INTO flash_sale (product_id, title, points_price, stock, stock_total, per_member_limit, starts_at,"
            " ends_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, 'ACTIVE', $8, $8)"
            " RETURNING id",
            product_id, title.strip(), points_price, stock, per_member_limit, starts_at, ends_at, now,
        )
        await audit(tx, actor, "flash_sale.create", "flash_sale", str(sale_id),
                    {"productId": product_id, "title": title, "pointsPrice": points_price, "stock": stock,
                     "perMemberLimit": per_member_limit, "startsAt": starts_at, "endsAt": ends_at})
    if redis is not None:
        await load_gate(redis, sale_id, force=True)
    return await sale(sale_id, fresh=True)


async def update_sale(actor: Actor, sale_id: int, *, title: str | None = None, points_price: int | None = None,
                      per_member_limit: int | None = None, starts_at: datetime | None = None,
                      ends_at: datetime | None = None, status: str | None = None, stock_delta: int = 0,
                      redis: Any = None) -> SaleInfo:
    """Changes the terms, pauses or archives, or adds/removes stock (never below what is sold)."""
    async with transaction() as tx:
        row = await tx.fetchrow(f"SELECT {COLUMNS} FROM flash_sale WHERE id = $1" + (" FOR UPDATE" if tx.postgres else ""),
                                sale_id)
        if row is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such flash sale", ["input", "flashSaleId"])
        s = _sale(row)
        new = {"title": title if title is not None else s.title,
               "points_price": points_price if points_price is not None else s.points_price,
               "per_member_limit": per_member_limit if per_member_limit is not None else s.per_member_limit,
               "starts_at": clock.to_utc(starts_at) if starts_at is not None else s.starts_at,
               "ends_at": clock.to_utc(ends_at) if ends_at is not None else s.ends_at,
               "status": status if status is not None else s.status}
        _check_terms(**new)
        if s.stock + stock_delta < 0 or abs(stock_delta) > mall.MAX_STOCK:
            raise DomainError(ErrorCode.OUT_OF_STOCK, f"only {s.stock} left to remove", ["input", "stockDelta"])
        await tx.execute(
            "UPDATE flash_sale SET title = $2, points_price = $3, per_member_limit = $4, starts_at = $5, ends_at = $6,"
            " status = $7, stock = stock + $8, stock_total = stock_total + $8, updated_at = $9 WHERE id = $1",
            sale_id, new["title"], new["points_price"], new["per_member_limit"], new["starts_at"], new["ends_at"],
            new["status"], stock_delta, clock.now(),
        )
        await audit(tx, actor, "flash_sale.update", "flash_sale", str(sale_id), {**new, "stockDelta": stock_delta})
    _terms.pop(sale_id, None)
    if redis is not None:
        await load_gate(redis, sale_id, force=True)
    return await sale(sale_id, fresh=True)


# --- the Redis gate ------------------------------------------------------------------------------

def _keys(sale_id: int) -> list[str]:
    tag = f"mallpoints:fs:{{{sale_id}}}"  # one hash slot per sale (Redis Cluster)
    return [f"{tag}:stock", f"{tag}:buyers", f"{tag}:keys"]


# KEYS: stock, buyers (hash member -> units), keys (set of "member:idempotencyKey" of successful buyers)
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
return 'OK'
"""
# Undo one 'OK' of this request (only if the gate still remembers it: a reload may have replaced it).
# ARGV: member, member:key, '1' when the database said sold out (then the counter is set to 0).
_UNDO = """
if redis.call('SREM', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if ARGV[3] == '1' then redis.call('SET', KEYS[1], 0, 'KEEPTTL') else redis.call('INCR', KEYS[1]) end
return 1
"""
# ARGV: stock, ttl seconds, force ('1' replaces a loaded gate), n buyers, n pairs (member, units),
# then the "member:key" strings.
_LOAD = """
if ARGV[3] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local n = tonumber(ARGV[4])
for i = 0, n - 1 do redis.call('HSET', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i]) end
for i = 5 + 2 * n, #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[2])
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
    buyer, idempotency keys of paid orders. Returns False when Redis is unavailable."""
    s = await sale(sale_id, fresh=True)
    rows = await fetch("SELECT member_id, quantity, idempotency_key FROM mall_order WHERE flash_sale_id = $1"
                       " AND status = 'PAID'", sale_id)
    units: dict[int, int] = {}
    for r in rows:
        units[r["member_id"]] = units.get(r["member_id"], 0) + int(r["quantity"])
    ttl = max(60, int((s.ends_at - clock.now()).total_seconds()) + 86400)
    args: list[Any] = [s.stock, ttl, "1" if force else "0", len(units)]
    for member_id, count in units.items():
        args += [member_id, count]
    args += [f"{r['member_id']}:{r['idempotency_key']}" for r in rows]
    try:
        await _script(redis, _LOAD)(keys=_keys(sale_id), args=args)
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
    keys = _keys(sale_id)
    stock, buyers = await redis.get(keys[0]), await redis.hlen(keys[1])
    return GateState(stock is not None, None if stock is None else int(stock), int(buyers))


async def _pass_gate(redis: Any, s: SaleInfo, member_id: int, key: str) -> str | None:
    """The gate's verdict: OK, REPEAT (go to the database for the first result), LIMIT, SOLD_OUT;
    None when there is no gate (no Redis, or Redis is down)."""
    gate = _script(redis, _GATE)
    args = [member_id, f"{member_id}:{key}", s.per_member_limit]
    try:
        verdict = await gate(keys=_keys(s.id), args=args)
        if verdict in (b"NOT_LOADED", "NOT_LOADED"):
            if not await load_gate(redis, s.id):
                return None
            verdict = await gate(keys=_keys(s.id), args=args)
    except Exception as exc:
        _warn_once(f"flash sale {s.id}: Redis unavailable ({exc.__class__.__name__}), the database decides alone")
        return None
    return verdict.decode() if isinstance(verdict, bytes) else str(verdict)


async def _undo_gate(redis: Any, sale_id: int, member_id: int, key: str, sold_out: bool) -> None:
    try:
        await _script(redis, _UNDO)(keys=_keys(sale_id), args=[member_id, f"{member_id}:{key}", "1" if sold_out else "0"])
    except Exception:  # the gate is then too strict by one unit until it is rebuilt; the database still decides
        log.warning("flash sale %s: could not undo a gate step", sale_id, exc_info=True)


# --- redeeming -----------------------------------------------------------------------------------

async def redeem(member_id: int, sale_id: int, idempotency_key: str, redis: Any = None) -> mall.OrderResult:
    """flashSaleRedeem: one unit for points. Idempotent: a repeat returns the first order, even after
    the sale has ended."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    s = await sale(sale_id)
    now = clock.now()
    if not s.on_sale(now):
        first = await idempotency.stored(mall.member_scope(member_id), key, _digest(sale_id), ["input", "idempotencyKey"])
        if first is not None:
            return mall.OrderResult(**first)
        raise DomainError(ErrorCode.NOT_ON_SALE, "this flash sale is not on now", ["input", "flashSaleId"])
    verdict = await _pass_gate(redis, s, member_id, key) if redis is not None else None
    if verdict == "SOLD_OUT":
        raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "flashSaleId"])
    if verdict == "LIMIT":
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED, f"at most {s.per_member_limit} per member",
                          ["input", "flashSaleId"])
    await tiers.all_tiers()  # warm: nothing inside the transaction may need a second connection
    try:
        result, repeated = await _book(member_id, sale_id, key, now)
    except BaseException as exc:
        if verdict == "OK":
            sold_out = isinstance(exc, DomainError) and exc.code == ErrorCode.OUT_OF_STOCK
            await _undo_gate(redis, sale_id, member_id, key, sold_out)
        raise
    if repeated and verdict == "OK":  # the gate had forgotten this key (a reload): give the unit back
        await _undo_gate(redis, sale_id, member_id, key, False)
    return result


def _digest(sale_id: int) -> str:
    return idempotency.request_hash("flashSaleRedeem", {"flashSaleId": sale_id})


async def _book(member_id: int, sale_id: int, key: str, now: datetime) -> tuple[mall.OrderResult, bool]:
    """The database's part; returns the result and whether it is a repeat's stored first result."""
    digest = _digest(sale_id)
    scope = mall.member_scope(member_id)
    # Sold out (committed)? Then answer with one read and no transaction: the first result of this key,
    # or sold out. (A unit taken but not yet committed still shows as stock, so no winner is missed.)
    seen = await fetch(
        "SELECT f.stock, r.request_hash, r.result FROM flash_sale f LEFT JOIN idempotency_record r"
        " ON r.scope = $2 AND r.key = $3 WHERE f.id = $1", sale_id, scope, key)
    if seen and int(seen[0]["stock"]) < 1:
        if seen[0]["request_hash"] is None:
            raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "flashSaleId"])
        if seen[0]["request_hash"] != digest:
            raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                              "this idempotencyKey was used before with a different input", ["input", "idempotencyKey"])
        if seen[0]["result"] is not None:
            return mall.OrderResult(**json.loads(seen[0]["result"])), True
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope, key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return mall.OrderResult(**stored), True
        row = await tx.fetchrow(f"SELECT {COLUMNS} FROM flash_sale WHERE id = $1", sale_id)
        s = _sale(row)
        if s.stock < 1:
            raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "flashSaleId"])
        if not s.on_sale(now):
            raise DomainError(ErrorCode.NOT_ON_SALE, "this flash sale is not on now", ["input", "flashSaleId"])
        p = await mall.product_in(tx, s.product_id)
        acct = await ledger.lock_account(tx, member_id, now)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
        await ledger.expire_account(tx, acct, now)
        if not await mall.visible_to(acct.tier_id, p):
            raise DomainError(ErrorCode.TIER_NOT_ELIGIBLE, "this sale is for a higher tier", ["input", "flashSaleId"])
        bought = await tx.fetchval(
            "SELECT COALESCE(SUM(quantity), 0) FROM mall_order WHERE flash_sale_id = $1 AND member_id = $2"
            " AND status = 'PAID'", sale_id, member_id)
        if int(bought) >= s.per_member_limit:
            raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED, f"at most {s.per_member_limit} per member",
                              ["input", "flashSaleId"])
        if acct.spendable < s.points_price:
            raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"{s.points_price} points needed; {ledger.shortfall(acct)}",
                              ["input", "flashSaleId"])
        order_no = mall.new_order_no(now)
        entry = await ledger.debit(tx, acct, points=s.points_price, kind="SPEND", reason=f"积分秒杀 {s.title}",
                                   source_type="mall_order", source_ref=order_no, occurred_at=now)
        order_id = await mall.insert_order(
            tx, order_no=order_no, member_id=member_id, product_id=p.id, flash_sale_id=sale_id, channel="FLASH_SALE",
            status="PAID", quantity=1, points=s.points_price, cash_fen=0, key=key, now=now, expires_at=None,
            spend_entry_id=entry.id,
        )
        await mall.issue_vouchers(tx, order_id, member_id, p, 1, now)
        await mall.take_stock(tx, "flash_sale", sale_id, 1)
        result = mall.OrderResult(order_id, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result, False
