"""The points mall: the catalogue, redemption for points alone, and points-plus-cash checkout (hold →
pay → confirm, or lapse), order refunds.

How a write is done (docs/mall.md): one transaction that claims the idempotency key, locks the
member's account (which serialises the member's own orders, so per-member limits are counted safely),
checks, writes the order, spends or holds the points, issues the vouchers, and takes the stock last,
with a conditional update (`stock = stock - q WHERE stock >= q`) so the hot row is locked as briefly
as possible. Lock order everywhere: idempotency key, account, order, product.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from api.config import settings
from api.db import Tx, fetch, transaction
from api.services import clock, idempotency, ledger, tiers, vouchers
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

KINDS = ("GOODS", "COUPON", "MERCHANT_VOUCHER", "PARKING_COUPON")
STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")
MAX_QUANTITY = 10
MAX_PRICE = 100_000_000
MAX_STOCK = 10_000_000
NOTIFY_GRACE = timedelta(minutes=5)  # a hold outlives the payment deadline by this much (late notifications)


@dataclass(frozen=True)
class ProductInfo:
    id: int
    kind: str
    name: str
    description: str | None
    image_urls: list[str]
    merchant_id: int | None
    face_value_fen: int | None
    validity_days: int
    points_price: int
    cash_price_fen: int
    stock: int
    limit_per_member: int | None
    limit_per_member_daily: int | None
    zone: str | None
    min_tier_id: int | None
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    status: str
    created_at: datetime
    updated_at: datetime

    def on_sale(self, now: datetime) -> bool:
        return (self.status == "ACTIVE" and (self.sale_starts_at is None or self.sale_starts_at <= now)
                and (self.sale_ends_at is None or now < self.sale_ends_at))


PRODUCT_COLUMNS = (
    "id, kind, name, description, image_urls, merchant_id, face_value_fen, validity_days, points_price, cash_price_fen,"
    " stock, limit_per_member, limit_per_member_daily, zone, min_tier_id, sale_starts_at, sale_ends_at, status,"
    " created_at, updated_at"
)


def _product(row: Any) -> ProductInfo:
    data = dict(row)
    data["image_urls"] = json.loads(data["image_urls"] or "[]")
    for name in ("sale_starts_at", "sale_ends_at", "created_at", "updated_at"):
        data[name] = clock.parse_db_time(data[name])
    for name in ("points_price", "cash_price_fen", "stock"):
        data[name] = int(data[name])
    return ProductInfo(**data)


# --- catalogue (operators) -----------------------------------------------------------------------

@dataclass(frozen=True)
class ProductData:
    """What an operator sets on a product; on update, None leaves a field as it is."""

    kind: str | None = None
    name: str | None = None
    description: str | None = None
    image_urls: list[str] | None = None
    merchant_id: int | None = None
    face_value_fen: int | None = None
    validity_days: int | None = None
    points_price: int | None = None
    cash_price_fen: int | None = None
    limit_per_member: int | None = None
    limit_per_member_daily: int | None = None
    zone: str | None = None
    min_tier_id: int | None = None
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    status: str | None = None


def _invalid(message: str, field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, ["input", field])


def _validate(p: dict[str, Any]) -> None:
    if p["kind"] not in KINDS:
        raise _invalid(f"kind must be one of {', '.join(KINDS)}", "kind")
    if not 1 <= len((p["name"] or "").strip()) <= 128:
        raise _invalid("name must be 1 to 128 characters", "name")
    urls = p["image_urls"] or []
    if len(urls) > 10 or any(not str(u).startswith(("https://", "http://")) or len(str(u)) > 500 for u in urls):
        raise _invalid("imageUrls: at most 10 http(s) URLs of up to 500 characters", "imageUrls")
    if not 0 <= p["points_price"] <= MAX_PRICE or not 0 <= p["cash_price_fen"] <= MAX_PRICE:
        raise _invalid(f"prices must be 0 to {MAX_PRICE}", "pointsPrice")
    if p["points_price"] + p["cash_price_fen"] == 0:
        raise _invalid("a product needs a price in points, in cash, or both", "pointsPrice")
    if p["kind"] == "MERCHANT_VOUCHER" and (p["merchant_id"] is None or not p["face_value_fen"]):
        raise _invalid("a merchant voucher needs a merchant and a face value", "merchantCode")
    if p["kind"] == "PARKING_COUPON" and not p["face_value_fen"]:
        raise _invalid("a parking coupon needs a face value (fen off the parking fee)", "faceValueFen")
    if p["face_value_fen"] is not None and not 0 < p["face_value_fen"] <= MAX_PRICE:
        raise _invalid("faceValueFen must be positive", "faceValueFen")
    if not 1 <= p["validity_days"] <= 3660:
        raise _invalid("validityDays must be 1 to 3660", "validityDays")
    for name, field in (("limit_per_member", "limitPerMember"), ("limit_per_member_daily", "limitPerMemberDaily")):
        if p[name] is not None and not 1 <= p[name] <= 10_000:
            raise _invalid(f"{field} must be 1 to 10000 (or null: no limit)", field)
    if p["sale_starts_at"] and p["sale_ends_at"] and p["sale_ends_at"] <= p["sale_starts_at"]:
        raise _invalid("saleEndsAt must be after saleStartsAt", "saleEndsAt")
    if p["status"] not in STATUSES:
        raise _invalid(f"status must be one of {', '.join(STATUSES)}", "status")
    if p["zone"] is not None and not 1 <= len(p["zone"]) <= 32:
        raise _invalid("zone must be 1 to 32 characters", "zone")


_WRITABLE = ("kind", "name", "description", "image_urls", "merchant_id", "face_value_fen", "validity_days",
             "points_price", "cash_price_fen", "limit_per_member", "limit_per_member_daily", "zone", "min_tier_id",
             "sale_starts_at", "sale_ends_at", "status")


async def create_product(actor: Actor, data: ProductData, stock: int) -> ProductInfo:
    fields = {name: getattr(data, name) for name in _WRITABLE}
    fields["image_urls"] = fields["image_urls"] or []
    fields["validity_days"] = fields["validity_days"] or 30
    fields["cash_price_fen"] = fields["cash_price_fen"] or 0
    fields["points_price"] = fields["points_price"] or 0
    fields["status"] = fields["status"] or "ACTIVE"
    _validate(fields)
    if not 0 <= stock <= MAX_STOCK:
        raise _invalid(f"stock must be 0 to {MAX_STOCK}", "stock")
    now = clock.now()
    async with transaction() as tx:
        product_id = await tx.fetchval(
            "INSERT INTO product (kind, name, description, image_urls, merchant_id, face_value_fen, validity_days,"
            " points_price, cash_price_fen, limit_per_member, limit_per_member_daily, zone, min_tier_id,"
            " sale_starts_at, sale_ends_at, status, stock, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18) RETURNING id",
            *[json.dumps(fields[n]) if n == "image_urls" else fields[n] for n in _WRITABLE], stock, now,
        )
        await audit(tx, actor, "product.create", "product", str(product_id), {**fields, "stock": stock})
    return await product(product_id)


async def update_product(actor: Actor, product_id: int, data: ProductData, stock_delta: int = 0,
                         clear: frozenset[str] = frozenset()) -> ProductInfo:
    """Changes the given fields (and `clear` sets optional ones to null); `stock_delta` adds or
    removes stock without racing concurrent sales (stock never goes below zero)."""
    async with transaction() as tx:
        row = await tx.fetchrow(f"SELECT {PRODUCT_COLUMNS} FROM product WHERE id = $1"
                                + (" FOR UPDATE" if tx.postgres else ""), product_id)
        if row is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such product", ["input", "productId"])
        current = _product(row)
        changes = {n: getattr(data, n) for n in _WRITABLE if getattr(data, n) is not None}
        changes.update({n: None for n in clear})
        merged = {**{n: getattr(current, n) for n in _WRITABLE}, **changes}
        _validate(merged)
        if not -MAX_STOCK <= stock_delta <= MAX_STOCK or current.stock + stock_delta > MAX_STOCK:
            raise _invalid("stockDelta is out of range", "stockDelta")
        if current.stock + stock_delta < 0:
            raise DomainError(ErrorCode.OUT_OF_STOCK, f"only {current.stock} in stock", ["input", "stockDelta"])
        sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(changes))
        values = [json.dumps(v) if n == "image_urls" else v for n, v in changes.items()]
        await tx.execute(
            f"UPDATE product SET stock = stock + $2, updated_at = ${len(values) + 3}{', ' + sets if sets else ''}"
            " WHERE id = $1", product_id, stock_delta, *values, clock.now(),
        )
        await audit(tx, actor, "product.update", "product", str(product_id), {**changes, "stockDelta": stock_delta})
    return await product(product_id)


async def product(product_id: int) -> ProductInfo:
    rows = await fetch(f"SELECT {PRODUCT_COLUMNS} FROM product WHERE id = $1", product_id)
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such product", ["productId"])
    return _product(rows[0])


async def product_in(tx: Tx, product_id: int) -> ProductInfo:
    """The product, read on the transaction's own connection (a second pool connection taken inside a
    transaction can deadlock the pool under load)."""
    row = await tx.fetchrow(f"SELECT {PRODUCT_COLUMNS} FROM product WHERE id = $1", product_id)
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such product", ["input", "productId"])
    return _product(row)


async def products_by_id(ids: list[int]) -> dict[int, ProductInfo]:
    if not ids:
        return {}
    rows = await fetch(f"SELECT {PRODUCT_COLUMNS} FROM product WHERE id IN ({', '.join(str(int(i)) for i in ids)})")
    return {r["id"]: _product(r) for r in rows}


# --- browsing (members) --------------------------------------------------------------------------

async def _tier_rank(tier_id: int | None) -> int:
    """The tier's threshold (the order of tiers); -1 for no tier."""
    if tier_id is None:
        return -1
    return (await tiers.tier_by_id(tier_id)).growth_threshold


async def visible_to(tier_id: int | None, p: ProductInfo) -> bool:
    """Exclusive zones: a product with a minimum tier is shown to that tier and above only."""
    return p.min_tier_id is None or (tier_id is not None and await _tier_rank(tier_id) >= await _tier_rank(p.min_tier_id))


async def zone_filter(tier_id: int | None, column: str = "min_tier_id") -> str:
    """SQL that keeps the products (by their minimum-tier column) a member of this tier may see."""
    rank = await _tier_rank(tier_id)
    tier_ids = [t.id for t in await tiers.all_tiers() if t.growth_threshold <= rank]
    return f"({column} IS NULL OR {column} IN ({', '.join(str(i) for i in tier_ids) or 'NULL'}))"


async def browse(*, tier_id: int | None, spendable: int | None, kind: str | None, zone: str | None,
                 affordable: bool, include_hidden: bool, limit: int, after_id: int | None) -> list[ProductInfo]:
    """Products a member may see, by id; operators (include_hidden) see every product."""
    now = clock.now()
    where = ["id > $1"]
    args: list[Any] = [after_id or 0]
    if not include_hidden:
        where.append("status = 'ACTIVE' AND (sale_ends_at IS NULL OR sale_ends_at > $2)")
        args.append(now)
        where.append(await zone_filter(tier_id))
    if kind is not None:
        args.append(kind)
        where.append(f"kind = ${len(args)}")
    if zone is not None:
        args.append(zone)
        where.append(f"zone = ${len(args)}")
    if affordable:
        args.append(max(spendable or 0, 0))
        where.append(f"points_price <= ${len(args)}")
    args.append(limit)
    rows = await fetch(f"SELECT {PRODUCT_COLUMNS} FROM product WHERE {' AND '.join(where)} ORDER BY id"
                       f" LIMIT ${len(args)}", *args)
    return [_product(r) for r in rows]


# --- orders --------------------------------------------------------------------------------------

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


ORDER_COLUMNS = ("id, order_no, member_id, product_id, flash_sale_id, channel, status, quantity, points, cash_fen,"
                 " created_at, expires_at, paid_at, closed_at")


def _order(row: Any) -> OrderInfo:
    data = {k: row[k] for k in ORDER_COLUMNS.replace(" ", "").split(",")}
    for name in ("created_at", "expires_at", "paid_at", "closed_at"):
        data[name] = clock.parse_db_time(data[name])
    data["points"], data["cash_fen"] = int(data["points"]), int(data["cash_fen"])
    return OrderInfo(**data)


async def order(order_id: int) -> OrderInfo | None:
    rows = await fetch(f"SELECT {ORDER_COLUMNS} FROM mall_order WHERE id = $1", order_id)
    return _order(rows[0]) if rows else None


async def orders_page(member_id: int | None, limit: int, before_id: int | None) -> list[OrderInfo]:
    """Newest first; a member's own, or everyone's (operators, member_id None)."""
    args: list[Any] = [before_id if before_id is not None else 2**62, limit]
    where = "id < $1"
    if member_id is not None:
        args.append(member_id)
        where += " AND member_id = $3"
    rows = await fetch(f"SELECT {ORDER_COLUMNS} FROM mall_order WHERE {where} ORDER BY id DESC LIMIT $2", *args)
    return [_order(r) for r in rows]


def new_order_no(now: datetime) -> str:
    """MP + Shanghai date-time + 10 random digits: sortable by day, unguessable, ≤ 32 characters."""
    local = now.astimezone(clock.SHANGHAI)
    return f"MP{local:%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


def member_scope(member_id: int) -> str:
    return f"member:{member_id}"


def _check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise DomainError(ErrorCode.INVALID_INPUT, f"quantity must be 1 to {MAX_QUANTITY}", ["input", "quantity"])


async def _check_sale(tx: Tx, acct: ledger.LockedAccount, p: ProductInfo, quantity: int, now: datetime) -> None:
    """Everything but points and stock: on sale, tier, per-member limits (counted under the account
    lock, so two parallel orders of one member cannot both pass)."""
    if not p.on_sale(now):
        raise DomainError(ErrorCode.NOT_ON_SALE, "this product is not on sale now", ["input", "productId"])
    if not await visible_to(acct.tier_id, p):
        raise DomainError(ErrorCode.TIER_NOT_ELIGIBLE, "this product is for a higher tier", ["input", "productId"])
    if p.limit_per_member is None and p.limit_per_member_daily is None:
        return
    day_start = clock.day_start(now)
    row = await tx.fetchrow(
        "SELECT COALESCE(SUM(quantity), 0) AS total, COALESCE(SUM(CASE WHEN created_at >= $3 THEN quantity END), 0)"
        " AS today FROM mall_order WHERE member_id = $1 AND product_id = $2 AND channel IN ('REDEEM', 'CHECKOUT')"
        " AND (status = 'PAID' OR (status = 'PENDING_PAYMENT' AND expires_at > $4))",
        acct.member_id, p.id, day_start, now - NOTIFY_GRACE,
    )
    if p.limit_per_member is not None and int(row["total"]) + quantity > p.limit_per_member:
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED,
                          f"at most {p.limit_per_member} per member", ["input", "quantity"])
    if p.limit_per_member_daily is not None and int(row["today"]) + quantity > p.limit_per_member_daily:
        raise DomainError(ErrorCode.PURCHASE_LIMIT_REACHED,
                          f"at most {p.limit_per_member_daily} per member a day", ["input", "quantity"])


async def take_stock(tx: Tx, table: str, row_id: int, quantity: int) -> None:
    """The final word on contested stock: a conditional update, last in the transaction."""
    assert table in ("product", "flash_sale")
    taken = await tx.execute(f"UPDATE {table} SET stock = stock - $2 WHERE id = $1 AND stock >= $2", row_id, quantity)
    if not taken:
        field = "productId" if table == "product" else "flashSaleId"
        raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", field])


async def _lock_member(tx: Tx, member_id: int, now: datetime) -> ledger.LockedAccount:
    acct = await ledger.lock_account(tx, member_id, now)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", None)
    await ledger.expire_account(tx, acct, now)
    return acct


def _insufficient(acct: ledger.LockedAccount, points: int) -> DomainError:
    return DomainError(ErrorCode.INSUFFICIENT_POINTS, f"{points} points needed; {ledger.shortfall(acct)}",
                       ["input", "productId"])


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    points_balance: int
    payment_id: int | None = None


async def insert_order(tx: Tx, *, order_no: str, member_id: int, product_id: int, flash_sale_id: int | None,
                        channel: str, status: str, quantity: int, points: int, cash_fen: int, key: str,
                        now: datetime, expires_at: datetime | None, spend_entry_id: int | None) -> int:
    return await tx.fetchval(
        "INSERT INTO mall_order (order_no, member_id, product_id, flash_sale_id, channel, status, quantity, points,"
        " cash_fen, idempotency_key, created_at, expires_at, paid_at, spend_entry_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        order_no, member_id, product_id, flash_sale_id, channel, status, quantity, points, cash_fen, key, now,
        expires_at, now if status == "PAID" else None, spend_entry_id,
    )


async def issue_vouchers(tx: Tx, order_id: int, member_id: int, p: ProductInfo, quantity: int, now: datetime) -> None:
    await vouchers.issue(tx, order_id=order_id, member_id=member_id, product_id=p.id, kind=p.kind,
                         merchant_id=p.merchant_id, face_value_fen=p.face_value_fen, validity_days=p.validity_days,
                         quantity=quantity, now=now)


async def redeem(member_id: int, product_id: int, quantity: int, idempotency_key: str) -> OrderResult:
    """pointsMallRedeem: a product for points alone, in one transaction."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    _check_quantity(quantity)
    digest = idempotency.request_hash("pointsMallRedeem", {"productId": product_id, "quantity": quantity})
    now = clock.now()
    await tiers.all_tiers()  # warm: nothing inside the transaction may need a second connection
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OrderResult(**stored)
        p = await product_in(tx, product_id)
        if p.cash_price_fen:
            raise DomainError(ErrorCode.INVALID_INPUT, "this product needs cash too: use checkoutCreate",
                              ["input", "productId"])
        if p.stock < quantity:  # a read before any lock: sold-out answers cost no lock at all
            raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "productId"])
        acct = await _lock_member(tx, member_id, now)
        await _check_sale(tx, acct, p, quantity, now)
        points = p.points_price * quantity
        if acct.spendable < points:
            raise _insufficient(acct, points)
        order_no = new_order_no(now)
        entry = await ledger.debit(tx, acct, points=points, kind="SPEND", reason=f"积分商城兑换 {p.name}×{quantity}",
                                   source_type="mall_order", source_ref=order_no, occurred_at=now)
        order_id = await insert_order(
            tx, order_no=order_no, member_id=member_id, product_id=p.id, flash_sale_id=None, channel="REDEEM",
            status="PAID", quantity=quantity, points=points, cash_fen=0, key=key, now=now, expires_at=None,
            spend_entry_id=entry.id,
        )
        await issue_vouchers(tx, order_id, member_id, p, quantity, now)
        await take_stock(tx, "product", p.id, quantity)
        result = OrderResult(order_id, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


# --- points plus cash: checkout → payment notification → paid, or lapse -------------------------

def payment_provider() -> str:
    return settings().payment_provider


async def checkout_create(member_id: int, product_id: int, quantity: int, idempotency_key: str) -> OrderResult:
    """checkoutCreate: holds stock and points (not spent) and asks the provider for a payment; the
    order lapses at its deadline (MALLPOINTS_CHECKOUT_MINUTES) unless paid."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    _check_quantity(quantity)
    if payment_provider() == "none":
        raise DomainError(ErrorCode.NOT_ON_SALE, "cash payment is not configured on this server", ["input", "productId"])
    digest = idempotency.request_hash("checkoutCreate", {"productId": product_id, "quantity": quantity})
    now = clock.now()
    await tiers.all_tiers()  # warm: nothing inside the transaction may need a second connection
    deadline = now + timedelta(minutes=settings().checkout_minutes)
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OrderResult(**stored)
        p = await product_in(tx, product_id)
        if not p.cash_price_fen:
            raise DomainError(ErrorCode.INVALID_INPUT, "this product is for points alone: use pointsMallRedeem",
                              ["input", "productId"])
        if p.stock < quantity:
            raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "productId"])
        acct = await _lock_member(tx, member_id, now)
        await _check_sale(tx, acct, p, quantity, now)
        points, cash = p.points_price * quantity, p.cash_price_fen * quantity
        order_no = new_order_no(now)
        order_id = await insert_order(
            tx, order_no=order_no, member_id=member_id, product_id=p.id, flash_sale_id=None, channel="CHECKOUT",
            status="PENDING_PAYMENT", quantity=quantity, points=points, cash_fen=cash, key=key, now=now,
            expires_at=deadline, spend_entry_id=None,
        )
        if points and await ledger.hold(tx, acct, points=points, source_type="mall_order", source_ref=str(order_id),
                                        expires_at=deadline + NOTIFY_GRACE) is None:
            raise _insufficient(acct, points)
        payment_id = await tx.fetchval(
            "INSERT INTO payment (order_id, provider, out_trade_no, amount_fen, status, created_at)"
            " VALUES ($1, $2, $3, $4, 'PENDING', $5) RETURNING id",
            order_id, payment_provider(), order_no, cash, now,
        )
        await take_stock(tx, "product", p.id, quantity)
        result = OrderResult(order_id, acct.spendable, payment_id)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


@dataclass(frozen=True)
class PaymentInfo:
    id: int
    order_id: int
    provider: str
    out_trade_no: str
    amount_fen: int
    status: str
    transaction_id: str | None
    paid_at: datetime | None
    expires_at: datetime | None  # the order's payment deadline
    refund_requested_fen: int


async def payment_for_order(order_id: int) -> PaymentInfo | None:
    rows = await fetch(
        "SELECT p.id, p.order_id, p.provider, p.out_trade_no, p.amount_fen, p.status, p.transaction_id, p.paid_at,"
        " o.expires_at, (SELECT COALESCE(SUM(r.amount_fen), 0) FROM payment_refund r WHERE r.payment_id = p.id)"
        " AS refunded FROM payment p JOIN mall_order o ON o.id = p.order_id WHERE p.order_id = $1",
        order_id,
    )
    if not rows:
        return None
    r = rows[0]
    return PaymentInfo(r["id"], r["order_id"], r["provider"], r["out_trade_no"], int(r["amount_fen"]), r["status"],
                       r["transaction_id"], clock.parse_db_time(r["paid_at"]), clock.parse_db_time(r["expires_at"]),
                       int(r["refunded"]))


async def _lock_order(tx: Tx, where: str, value: Any) -> Any:
    return await tx.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM mall_order WHERE {where}" + (" FOR UPDATE" if tx.postgres else ""), value)


async def _lapse(tx: Tx, o: OrderInfo, status: str, now: datetime, stock_back: bool = True) -> None:
    """An unpaid checkout ends (EXPIRED or CANCELLED): holds released, stock back (unless the caller
    gives many orders' stock back at once)."""
    await tx.execute("UPDATE mall_order SET status = $2, closed_at = $3 WHERE id = $1", o.id, status, now)
    hold_id = await tx.fetchval(
        "SELECT id FROM points_hold WHERE source_type = 'mall_order' AND source_ref = $1", str(o.id))
    if hold_id is not None:
        await ledger.release(tx, hold_id)
    if stock_back:
        await tx.execute("UPDATE product SET stock = stock + $2 WHERE id = $1", o.product_id, o.quantity)


@dataclass(frozen=True)
class NotifyResult:
    order_id: int
    order_status: str
    payment_status: str  # PAID, or LATE: paid after the order lapsed, the cash is being refunded
    refund_requested_fen: int


async def payment_notify(provider: str, out_trade_no: str, transaction_id: str, amount_fen: int,
                         paid_at: datetime) -> NotifyResult:
    """The provider says a payment succeeded. Safe to repeat (same transaction id → same answer).
    Paid in time: the held points are spent, the order is PAID, the vouchers are issued. Paid after
    the order lapsed (or was cancelled): the order stays closed and a cash refund is requested."""
    transaction_id = (transaction_id or "").strip()
    if not 1 <= len(transaction_id) <= 64:
        raise DomainError(ErrorCode.INVALID_INPUT, "transactionId must be 1 to 64 characters", ["input", "transactionId"])
    now = clock.now()
    await tiers.all_tiers()
    async with transaction() as tx:
        row = await tx.fetchrow(
            "SELECT p.id, p.order_id, p.provider, p.amount_fen, o.member_id FROM payment p"
            " JOIN mall_order o ON o.id = p.order_id WHERE p.out_trade_no = $1", out_trade_no)
        if row is None or row["provider"] != provider:
            raise DomainError(ErrorCode.NOT_FOUND, "no such payment", ["input", "outTradeNo"])
        acct = await _lock_member(tx, row["member_id"], now)  # the lock order: account, then order
        o = _order(await _lock_order(tx, "id = $1", row["order_id"]))
        payment = await tx.fetchrow("SELECT status, transaction_id, amount_fen FROM payment WHERE id = $1", row["id"])
        if payment["status"] != "PENDING":  # notified before: the same payment, or a second one
            if payment["transaction_id"] != transaction_id:
                return await _late(tx, row["id"], o, transaction_id, amount_fen, now, "a second payment for this order")
            if int(payment["amount_fen"]) != amount_fen:
                raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "this transactionId was notified with another"
                                  " amount", ["input", "transactionId"])
            return await _notify_result(tx, o.id, row["id"])
        if o.status == "PENDING_PAYMENT" and now >= o.expires_at + NOTIFY_GRACE:
            await _lapse(tx, o, "EXPIRED", now)  # the expiry run had not come yet
            o = replace(o, status="EXPIRED")
        if o.status != "PENDING_PAYMENT":  # whatever was paid goes back
            return await _late(tx, row["id"], o, transaction_id, amount_fen, now, "paid after the order closed")
        if int(row["amount_fen"]) != amount_fen:
            raise DomainError(ErrorCode.PAYMENT_AMOUNT_MISMATCH,
                              f"the payment request was for {row['amount_fen']} fen", ["input", "amountFen"])
        await tx.execute("UPDATE payment SET status = 'PAID', transaction_id = $2, paid_at = $3 WHERE id = $1",
                         row["id"], transaction_id, now)
        await _confirm(tx, o, acct, now)
        return await _notify_result(tx, o.id, row["id"])


async def _confirm(tx: Tx, o: OrderInfo, acct: ledger.LockedAccount, now: datetime) -> None:
    """Spends the order's hold, marks it PAID and issues its vouchers."""
    entry_id = None
    if o.points:
        hold_id = await tx.fetchval(
            "SELECT id FROM points_hold WHERE source_type = 'mall_order' AND source_ref = $1", str(o.id))
        p = await product_in(tx, o.product_id)
        entry = await ledger.capture(tx, acct, hold_id, reason=f"积分商城 {p.name}×{o.quantity}（积分+现金）",
                                     source_type="mall_order", source_ref=o.order_no, occurred_at=now)
        entry_id = entry.id
    await tx.execute("UPDATE mall_order SET status = 'PAID', paid_at = $2, spend_entry_id = $3 WHERE id = $1",
                     o.id, now, entry_id)
    await issue_vouchers(tx, o.id, o.member_id, await product_in(tx, o.product_id), o.quantity, now)


async def _late(tx: Tx, payment_id: int, o: OrderInfo, transaction_id: str, amount_fen: int, now: datetime,
                why: str) -> NotifyResult:
    """Money we cannot keep: recorded, and a refund of all of it requested."""
    first = await tx.fetchval("SELECT status FROM payment WHERE id = $1", payment_id)
    if first == "PENDING":
        await tx.execute("UPDATE payment SET status = 'LATE', transaction_id = $2, paid_at = $3 WHERE id = $1",
                         payment_id, transaction_id, now)
    else:  # a second transaction for a settled order: remember it on the refund itself
        why = f"{why} (transaction {transaction_id})"
    seen = await tx.fetchval("SELECT COUNT(*) FROM payment_refund WHERE payment_id = $1 AND reason = $2",
                             payment_id, why)
    if not seen and amount_fen > 0:
        await tx.execute(
            "INSERT INTO payment_refund (payment_id, amount_fen, reason, status, created_at)"
            " VALUES ($1, $2, $3, 'REQUESTED', $4)", payment_id, amount_fen, why, now)
    return await _notify_result(tx, o.id, payment_id)


async def _notify_result(tx: Tx, order_id: int, payment_id: int) -> NotifyResult:
    row = await tx.fetchrow(
        "SELECT o.status AS order_status, p.status AS payment_status, (SELECT COALESCE(SUM(r.amount_fen), 0)"
        " FROM payment_refund r WHERE r.payment_id = p.id) AS refunded FROM mall_order o JOIN payment p"
        " ON p.order_id = o.id WHERE o.id = $1 AND p.id = $2", order_id, payment_id)
    return NotifyResult(order_id, row["order_status"], row["payment_status"], int(row["refunded"]))


async def cancel_checkout(member_id: int, order_id: int) -> OrderInfo:
    """checkoutCancel: the member gives up an unpaid order; holds and stock come back at once."""
    now = clock.now()
    async with transaction() as tx:
        row = await _lock_order(tx, "id = $1", order_id)
        if row is None or row["member_id"] != member_id:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["input", "orderId"])
        o = _order(row)
        if o.status != "PENDING_PAYMENT":
            raise DomainError(ErrorCode.ORDER_STATE_INVALID, f"the order is {o.status}", ["input", "orderId"])
        await _lapse(tx, o, "CANCELLED", now)
    return await order(order_id)  # type: ignore[return-value]


@dataclass(frozen=True)
class ExpireResult:
    orders_expired: int
    points_released: int


EXPIRE_CHUNK = 500


async def expire_orders(as_of: datetime | None = None) -> ExpireResult:
    """Lapses unpaid checkouts whose deadline (plus the notification grace) has passed. Safe to repeat
    and to run twice at once: each order is locked and re-checked (SKIP LOCKED on PostgreSQL lets a
    second runner, or a payment notification holding an order, pass it by). A chunk gives its stock
    back last, one update per product in id order, so two runners never deadlock on products."""
    as_of = as_of or clock.now()
    expired = points = 0
    while True:
        async with transaction() as tx:
            rows = await tx.fetch(
                f"SELECT {ORDER_COLUMNS} FROM mall_order WHERE status = 'PENDING_PAYMENT' AND expires_at < $1"
                " ORDER BY id LIMIT $2" + (" FOR UPDATE SKIP LOCKED" if tx.postgres else ""),
                as_of - NOTIFY_GRACE, EXPIRE_CHUNK,
            )
            back: dict[int, int] = {}
            for row in rows:
                o = _order(row)
                await _lapse(tx, o, "EXPIRED", as_of, stock_back=False)
                back[o.product_id] = back.get(o.product_id, 0) + o.quantity
                expired, points = expired + 1, points + o.points
            for product_id in sorted(back):
                await tx.execute("UPDATE product SET stock = stock + $2 WHERE id = $1", product_id, back[product_id])
        if len(rows) < EXPIRE_CHUNK:
            return ExpireResult(expired, points)


# --- refunds (operators) -------------------------------------------------------------------------

@dataclass(frozen=True)
class RefundResult:
    order_id: int
    points_returned: int
    cash_refund_fen: int
    flash_sale_id: int | None = None  # whose Redis gate must be reloaded (the unit is for sale again)
    draw_prize_id: int | None = None


async def refund_order(operator_id: int, order_id: int, reason: str, idempotency_key: str) -> RefundResult:
    """mallOrderRefund: a PAID order is undone: points back to the lots they came from, stock back,
    vouchers void (refused when one was used already), the cash part requested back from the provider."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 200:
        raise DomainError(ErrorCode.INVALID_INPUT, "reason must be 2 to 200 characters", ["input", "reason"])
    digest = idempotency.request_hash("mallOrderRefund", {"orderId": order_id, "reason": reason})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"operator:{operator_id}", key, digest,
                                                    ["input", "idempotencyKey"])
        if stored is not None:
            return RefundResult(**stored)
        member_id = await tx.fetchval("SELECT member_id FROM mall_order WHERE id = $1", order_id)
        if member_id is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["input", "orderId"])
        acct = await _lock_member(tx, member_id, now)
        o = _order(await _lock_order(tx, "id = $1", order_id))
        if o.status != "PAID":
            raise DomainError(ErrorCode.ORDER_STATE_INVALID, f"only a PAID order can be refunded; it is {o.status}",
                              ["input", "orderId"])
        if await vouchers.void_for_order(tx, o.id):
            raise DomainError(ErrorCode.ORDER_STATE_INVALID, "a voucher of this order has been used already",
                              ["input", "orderId"])
        refund_entry_id = None
        if o.points:
            spend_id = await tx.fetchval("SELECT spend_entry_id FROM mall_order WHERE id = $1", o.id)
            entry = await ledger.give_back(tx, acct, spend_id, reason=f"积分商城退款 {o.order_no}",
                                           source_type="mall_refund", source_ref=o.order_no, occurred_at=now,
                                           operator_id=operator_id)
            refund_entry_id = entry.id
        await tx.execute("UPDATE mall_order SET status = 'REFUNDED', closed_at = $2, refund_entry_id = $3"
                         " WHERE id = $1", o.id, now, refund_entry_id)
        prize_id = None
        if o.channel == "FLASH_SALE":
            await tx.execute("UPDATE flash_sale SET stock = stock + $2 WHERE id = $1", o.flash_sale_id, o.quantity)
        elif o.channel == "DRAW":  # the unit goes back to the prize it was won as
            prize_id = await tx.fetchval("SELECT prize_id FROM draw_play WHERE order_id = $1", o.id)
            await tx.execute("UPDATE draw_prize SET stock = stock + 1 WHERE id = $1 AND stock IS NOT NULL", prize_id)
        else:
            await tx.execute("UPDATE product SET stock = stock + $2 WHERE id = $1", o.product_id, o.quantity)
        if o.cash_fen:
            payment_id = await tx.fetchval("SELECT id FROM payment WHERE order_id = $1", o.id)
            await tx.execute(
                "INSERT INTO payment_refund (payment_id, amount_fen, reason, status, created_at)"
                " VALUES ($1, $2, $3, 'REQUESTED', $4)", payment_id, o.cash_fen, f"order refunded: {reason}", now)
        await audit(tx, ("operator", str(operator_id)), "mall_order.refund", "mall_order", str(o.id),
                    {"reason": reason, "points": o.points, "cashFen": o.cash_fen})
        result = RefundResult(o.id, o.points, o.cash_fen, o.flash_sale_id, prize_id)
        await idempotency.remember(tx, record_id, asdict(result))
    return result
