"""Flash sales (积分秒杀): thousands of members press the button in the same second.

The database decides: the order is written, the points are spent and the sale's stock is taken by a
conditional update (`stock = stock - 1 WHERE stock >= 1`) in one transaction, with the member's
account locked so that the per-member limit is counted safely. Redis, when configured, is a gate in
front of it (api.services.mall.gate); without Redis, or while it is down, the same mutation runs on
the database alone. The terms are cached per process (api.services.mall.flash_terms).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.expressions import F

from api import locks
from api.db import Tx, transaction
from api.locks import Rank
from api.models import FlashSale
from api.services import clock, idempotency, ledger
from api.services import text as hygiene
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import sql
from api.services.mall.catalogue import MAX_PRICE, MAX_STOCK, ProductInfo, info, product
from api.services.mall.flash_terms import SaleInfo, _terms, forget, live_sale_ids, read, sale, sales_page
from api.services.mall.gate import GateState, gate_state, load_gate, pass_gate, undo_gate
from api.services.mall.orders import OrderResult, member_scope, pay_with_points
from api.services.mall.records import record
from api.services.mall.zones import visible_to
from api.services.segments import membership

__all__ = ["STATUSES", "SaleInfo", "GateState", "sale", "sales_page", "live_sale_ids", "create_sale", "update_sale",
           "load_gate", "gate_state", "redeem", "_terms", "GatePass", "pass_checks", "sold_out"]
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")


# --- operators -----------------------------------------------------------------------------------

def _check_terms(title: str, points_price: int, per_member_limit: int, starts_at: datetime, ends_at: datetime,
                 status: str) -> None:
    def invalid(message: str, field: str) -> DomainError:
        return DomainError(ErrorCode.INVALID_INPUT, message, ["input", field])

    hygiene.name(title, ["input", "title"], 128)  # 1 to 128 characters, no control characters
    if not 1 <= points_price <= MAX_PRICE:
        raise invalid(f"pointsPrice must be 1 to {MAX_PRICE}", "pointsPrice")
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
    if not 1 <= stock <= MAX_STOCK:
        raise DomainError(ErrorCode.INVALID_INPUT, f"stock must be 1 to {MAX_STOCK}", ["input", "stock"])
    await product(product_id)  # NOT_FOUND
    now = clock.now()
    async with transaction() as tx:
        created = await FlashSale.create(
            product_id=product_id, title=title.strip(), points_price=points_price, stock=stock, stock_total=stock,
            per_member_limit=per_member_limit, starts_at=starts_at, ends_at=ends_at, status="ACTIVE",
            created_at=now, updated_at=now,
        )
        await audit(tx, actor, "flash_sale.create", "flash_sale", str(created.id),
                    {"productId": product_id, "title": title, "pointsPrice": points_price, "stock": stock,
                     "perMemberLimit": per_member_limit, "startsAt": starts_at, "endsAt": ends_at})
    if redis is not None:
        await load_gate(redis, created.id, force=True)
    return await sale(created.id, fresh=True)


async def update_sale(actor: Actor, sale_id: int, *, title: str | None = None, points_price: int | None = None,
                      per_member_limit: int | None = None, starts_at: datetime | None = None,
                      ends_at: datetime | None = None, status: str | None = None, stock_delta: int = 0,
                      redis: Any = None) -> SaleInfo:
    """Changes the terms, pauses or archives, or adds/removes stock (never below what is sold)."""
    async with transaction() as tx:
        locked = await locks.row(Rank.FLASH_SALE, FlashSale, sale_id)
        if locked is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such flash sale", ["input", "flashSaleId"])
        s = record(SaleInfo, locked)
        new: dict[str, Any] = {"title": title if title is not None else s.title,
               "points_price": points_price if points_price is not None else s.points_price,
               "per_member_limit": per_member_limit if per_member_limit is not None else s.per_member_limit,
               "starts_at": clock.to_utc(starts_at) if starts_at is not None else s.starts_at,
               "ends_at": clock.to_utc(ends_at) if ends_at is not None else s.ends_at,
               "status": status if status is not None else s.status}
        _check_terms(**new)
        if s.stock + stock_delta < 0 or abs(stock_delta) > MAX_STOCK:
            raise DomainError(ErrorCode.OUT_OF_STOCK, f"only {s.stock} left to remove", ["input", "stockDelta"])
        await FlashSale.filter(id=sale_id).update(**new, stock=F("stock") + stock_delta,
                                                  stock_total=F("stock_total") + stock_delta, updated_at=clock.now())
        await audit(tx, actor, "flash_sale.update", "flash_sale", str(sale_id), {**new, "stockDelta": stock_delta})
    forget(sale_id)
    if redis is not None:
        await load_gate(redis, sale_id, force=True)
    return await sale(sale_id, fresh=True)


# --- redeeming -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GatePass:
    """What the checks before the database found for one request: the gate's verdict (None: no gate)
    and the time the sale was found on. Taken once: `redeem` uses it instead of asking the gate again."""

    member_id: int
    sale_id: int
    key: str
    verdict: str | None
    now: datetime


def sold_out() -> DomainError:
    """The refusal of a unit when none is left (the gate's or the database's)."""
    return DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "flashSaleId"])


async def pass_checks(member_id: int, sale_id: int, idempotency_key: str, redis: Any) -> GatePass | None:
    """The input checks and the gate, as `redeem` takes them (raises their DomainError); None when the
    sale is not on (the database answers: a repeat's first result, or not on sale)."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    s = await sale(sale_id)
    now = clock.now()
    if not s.on_sale(now):
        return None
    verdict = await pass_gate(redis, s, member_id, key) if redis is not None else None
    return GatePass(member_id, sale_id, key, verdict, now)


async def redeem(member_id: int, sale_id: int, idempotency_key: str, redis: Any = None,
                 gate: GatePass | None = None) -> OrderResult:
    """flashSaleRedeem: one unit for points. Idempotent: a repeat returns the first order, even after
    the sale has ended. `gate`: this request's checks, when they were taken already (api/soldout.py)."""
    if gate is None or (gate.member_id, gate.sale_id, gate.key) != (member_id, sale_id, idempotency_key):
        gate = await pass_checks(member_id, sale_id, idempotency_key, redis)
    if gate is None:
        key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
        first = await idempotency.stored(member_scope(member_id), key, _digest(sale_id), ["input", "idempotencyKey"])
        if first is not None:
            return OrderResult(**first)
        raise DomainError(ErrorCode.NOT_ON_SALE, "this flash sale is not on now", ["input", "flashSaleId"])
    key, verdict, now = gate.key, gate.verdict, gate.now
    if verdict == "SOLD_OUT":
        raise sold_out()
    if verdict == "LIMIT":
        s = await sale(sale_id)
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED, f"at most {s.per_member_limit} per member",
                          ["input", "flashSaleId"])
    try:
        result, repeated = await _book(member_id, sale_id, key, now)
    except BaseException as exc:
        if verdict == "OK":
            was_sold_out = isinstance(exc, DomainError) and exc.code == ErrorCode.OUT_OF_STOCK
            await undo_gate(redis, sale_id, member_id, key, was_sold_out)
        raise
    if repeated and verdict == "OK":  # the gate had forgotten this key (a reload): give the unit back
        await undo_gate(redis, sale_id, member_id, key, False)
    return result


def _digest(sale_id: int) -> str:
    return idempotency.request_hash("flashSaleRedeem", {"flashSaleId": sale_id})


async def _sold_out_answer(sale_id: int, scope: str, key: str, digest: str) -> OrderResult | None:
    """Sold out (committed)? Then the answer takes one read and no transaction: the first result of
    this key, or sold out. (A unit taken but not yet committed still shows as stock, so no winner is
    missed.) None: not sold out, or the key's first call is still running; the transaction decides."""
    seen = await sql.sold_out_peek(sale_id, scope, key)
    if seen is None or int(seen["stock"]) >= 1:
        return None
    if seen["request_hash"] is None:
        raise sold_out()
    if seen["request_hash"] != digest:
        raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                          "this idempotencyKey was used before with a different input", ["input", "idempotencyKey"])
    return None if seen["result"] is None else OrderResult(**json.loads(seen["result"]))


async def _book(member_id: int, sale_id: int, key: str, now: datetime) -> tuple[OrderResult, bool]:
    """The database's part; returns the result and whether it is a repeat's stored first result."""
    digest = _digest(sale_id)
    scope = member_scope(member_id)
    first = await _sold_out_answer(sale_id, scope, key, digest)
    if first is not None:
        return first, True
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope, key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OrderResult(**stored), True
        s, p = await _sale_and_product(tx, sale_id)
        if s.stock < 1:
            raise sold_out()
        if not s.on_sale(now):
            raise DomainError(ErrorCode.NOT_ON_SALE, "this flash sale is not on now", ["input", "flashSaleId"])
        acct = await ledger.lock_account_row(member_id)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
        checked = await tx.fetchrow(sql.FLASH_BUYER, acct.id, now, sale_id, member_id)
        assert checked is not None  # aggregates: one row
        acct.due, acct.held = int(checked["due"]), int(checked["held"])
        await ledger.expire_account(tx, acct, now)
        await _check_buyer(acct, s, p, int(checked["bought"]))
        result = await pay_with_points(tx, acct, p, points=s.points_price, reason=f"积分秒杀 {s.title}", quantity=1,
                                       channel="FLASH_SALE", flash_sale_id=sale_id, key=key, now=now,
                                       record_id=record_id)
    return result, False


async def _sale_and_product(tx: Tx, sale_id: int) -> tuple[SaleInfo, ProductInfo]:
    """The sale as stored now and its product: one statement on PostgreSQL (whose driver gives times as
    times; SQLite's raw rows hold text), the models otherwise."""
    if not tx.postgres:
        s = await read(sale_id)
        assert s is not None, "a flash sale is never deleted"
        return s, await product(s.product_id, ["input", "productId"])
    found = await tx.fetchrow(sql.SALE_AND_PRODUCT, sale_id)
    assert found is not None, "a flash sale is never deleted"
    return record(SaleInfo, found), info({**{k[2:]: v for k, v in found.items() if k.startswith("p_")},
                                          "id": found["product_id"]})


async def _check_buyer(acct: ledger.LockedAccount, s: SaleInfo, p: ProductInfo, bought: int) -> None:
    """Tier, the per-member limit (`bought`: counted under the account lock) and points."""
    if not await visible_to(acct.tier_id, p):
        raise DomainError(ErrorCode.TIER_NOT_ELIGIBLE, "this sale is for a higher tier", ["input", "flashSaleId"])
    await membership.check_eligible(p.segment_id, acct.member_id, ["input", "flashSaleId"], "sale")
    if bought >= s.per_member_limit:
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED, f"at most {s.per_member_limit} per member",
                          ["input", "flashSaleId"])
    if acct.spendable < s.points_price:
        raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"{s.points_price} points needed; {ledger.shortfall(acct)}",
                          ["input", "flashSaleId"])
