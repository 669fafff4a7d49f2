"""Orders: the record, reads, and the steps every way of buying shares (limits, the order row, the
vouchers, the conditional stock update)."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from tortoise.expressions import F

from api import locks
from api.db import Tx
from api.locks import Rank
from api.models import FlashSale, MallOrder, Product
from api.services import clock, idempotency, ledger
from api.services.errors import DomainError, ErrorCode
from api.services.mall import sql, vouchers
from api.services.mall.catalogue import ProductInfo
from api.services.mall.records import load, record
from api.services.mall.zones import visible_to
from api.services.segments import membership

MAX_QUANTITY = 10
NOTIFY_GRACE = timedelta(minutes=5)  # a hold outlives the payment deadline by this much (late notifications)


@dataclass(frozen=True)
class OrderInfo:
    id: int
    order_no: str
    member_id: int
    product_id: int
    flash_sale_id: int | None
    channel: str
    status: str
    quantity: int
    points: int
    cash_fen: int
    created_at: datetime
    expires_at: datetime | None
    paid_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    points_balance: int
    payment_id: int | None = None


async def order(order_id: int) -> OrderInfo | None:
    found = await MallOrder.get_or_none(id=order_id)
    return None if found is None else record(OrderInfo, found)


async def orders_page(member_id: int | None, limit: int, before_id: int | None) -> list[OrderInfo]:
    """Newest first; a member's own, or everyone's (operators, member_id None)."""
    query = MallOrder.filter(id__lt=before_id) if before_id is not None else MallOrder.all()
    if member_id is not None:
        query = query.filter(member_id=member_id)
    return await load(OrderInfo, query.order_by("-id").limit(limit))


def new_order_no(now: datetime) -> str:
    """MP + Shanghai date-time + 10 random digits: sortable by day, unguessable, ≤ 32 characters."""
    local = now.astimezone(clock.SHANGHAI)
    return f"MP{local:%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


def member_scope(member_id: int) -> str:
    return f"member:{member_id}"


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise DomainError(ErrorCode.INVALID_INPUT, f"quantity must be 1 to {MAX_QUANTITY}", ["input", "quantity"])


async def lock_member(tx: Tx, member_id: int, now: datetime) -> ledger.LockedAccount:
    """The member's account, locked, with the points due at `now` expired first."""
    acct = await ledger.lock_account(tx, member_id, now)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
    await ledger.expire_account(tx, acct, now)
    return acct


def insufficient(acct: ledger.LockedAccount, points: int) -> DomainError:
    return DomainError(ErrorCode.INSUFFICIENT_POINTS, f"{points} points needed; {ledger.shortfall(acct)}",
                       ["input", "productId"])


async def check_sale(tx: Tx, acct: ledger.LockedAccount, p: ProductInfo, quantity: int, now: datetime) -> None:
    """Everything but points and stock: on sale, tier, per-member limits (counted under the account
    lock, so two parallel orders of one member cannot both pass)."""
    if not p.on_sale(now):
        raise DomainError(ErrorCode.NOT_ON_SALE, "this product is not on sale now", ["input", "productId"])
    if not await visible_to(acct.tier_id, p):
        raise DomainError(ErrorCode.TIER_NOT_ELIGIBLE, "this product is for a higher tier", ["input", "productId"])
    await membership.check_eligible(p.segment_id, acct.member_id, ["input", "productId"], "product")
    if p.limit_per_member is None and p.limit_per_member_daily is None:
        return
    total, today = await sql.limit_counts(tx, acct.member_id, p.id, clock.day_start(now), now - NOTIFY_GRACE)
    if p.limit_per_member is not None and total + quantity > p.limit_per_member:
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED,
                          f"at most {p.limit_per_member} per member", ["input", "quantity"])
    if p.limit_per_member_daily is not None and today + quantity > p.limit_per_member_daily:
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED,
                          f"at most {p.limit_per_member_daily} per member a day", ["input", "quantity"])


async def insert_order(*, order_no: str, member_id: int, product_id: int, flash_sale_id: int | None,
                       channel: str, status: str, quantity: int, points: int, cash_fen: int, key: str,
                       now: datetime, expires_at: datetime | None, spend_entry_id: int | None) -> int:
    """Writes an order (inside the caller's transaction); returns its id."""
    created = await MallOrder.create(
        order_no=order_no, member_id=member_id, product_id=product_id, flash_sale_id=flash_sale_id, channel=channel,
        status=status, quantity=quantity, points=points, cash_fen=cash_fen, idempotency_key=key, created_at=now,
        expires_at=expires_at, paid_at=now if status == "PAID" else None, spend_entry_id=spend_entry_id,
    )
    return created.id


async def issue_vouchers(order_id: int, member_id: int, p: ProductInfo, quantity: int, now: datetime) -> None:
    await vouchers.issue(order_id=order_id, member_id=member_id, product_id=p.id, kind=p.kind,
                         merchant_id=p.merchant_id, face_value_fen=p.face_value_fen, validity_days=p.validity_days,
                         quantity=quantity, now=now)


_STOCK: dict[type[Product] | type[FlashSale], tuple[Rank, str]] = {
    Product: (Rank.PRODUCT, "productId"), FlashSale: (Rank.FLASH_SALE, "flashSaleId")}


async def take_stock(model: type[Product] | type[FlashSale], row_id: int, quantity: int) -> None:
    """The final word on contested stock: a conditional update (its row count decides), last in the
    transaction so that the hot row is locked as briefly as possible."""
    rank, field = _STOCK[model]
    locks.enter(rank, (row_id,))
    if not await model.filter(id=row_id, stock__gte=quantity).update(stock=F("stock") - quantity):
        raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", field])


async def give_back_stock(model: type[Product] | type[FlashSale], row_id: int, quantity: int) -> None:
    """Units of a lapsed or refunded order for sale again."""
    locks.enter(_STOCK[model][0], (row_id,))
    await model.filter(id=row_id).update(stock=F("stock") + quantity)


# An order paid with points alone is written in one statement on PostgreSQL (sql.order_writes); tests
# switch it off to compare the rows with the general path's.
ONE_STATEMENT = True


async def pay_with_points(tx: Tx, acct: ledger.LockedAccount, p: ProductInfo, *, points: int, reason: str,
                          quantity: int, channel: str, flash_sale_id: int | None, key: str, now: datetime,
                          record_id: int | None) -> OrderResult:
    """The writes of a paid order for points alone, after every check: the spend, the order, its
    vouchers, the units (a conditional update, last: the sale's stock for a flash sale, else the
    product's) and the key's result. One statement on PostgreSQL; step by step otherwise."""
    assert record_id is not None
    model: type[Product] | type[FlashSale] = FlashSale if flash_sale_id is not None else Product
    stock_id = flash_sale_id if flash_sale_id is not None else p.id
    order_no = new_order_no(now)
    if not (ONE_STATEMENT and tx.postgres and points > 0):
        entry = await ledger.debit(tx, acct, points=points, kind="SPEND", reason=reason, source_type="mall_order",
                                   source_ref=order_no, occurred_at=now)
        order_id = await insert_order(
            order_no=order_no, member_id=acct.member_id, product_id=p.id, flash_sale_id=flash_sale_id,
            channel=channel, status="PAID", quantity=quantity, points=points, cash_fen=0, key=key, now=now,
            expires_at=None, spend_entry_id=entry.id)
        await issue_vouchers(order_id, acct.member_id, p, quantity, now)
        await take_stock(model, stock_id, quantity)
        result = OrderResult(order_id, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
        return result
    rank, field = _STOCK[model]
    locks.enter(rank, (stock_id,))
    balance = acct.balance - points
    statement, args = sql.order_writes(sql.OrderWrite(
        account_id=acct.id, balance=acct.balance, told=balance - acct.due - acct.held, points=points, reason=reason,
        order_no=order_no, member_id=acct.member_id, product_id=p.id, flash_sale_id=flash_sale_id, channel=channel,
        quantity=quantity, key=key, now=now, voucher_kind=p.kind, merchant_id=p.merchant_id,
        face_value_fen=p.face_value_fen, valid_until=now + timedelta(days=p.validity_days),
        codes=tuple(vouchers.new_code() for _ in range(quantity)), stock_table=model._meta.db_table,
        stock_id=stock_id, record_id=record_id))
    row = await tx.fetchrow(statement, *args)
    assert row is not None  # one row of scalar subqueries
    if int(row["spent"]) != points:
        raise AssertionError(f"a spend of {points} on account {acct.id} exceeds its lots")
    if not row["took"]:
        raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", field])
    acct.balance = balance
    return OrderResult(int(row["order_id"]), acct.spendable)
