"""The points mall's SQL: the few statements the ORM cannot say as well or as fast. Everything else
in `api.services.mall` goes through the models (`api/models/mall.py`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.db import Tx, fetch
from api.services.ledger import sql as ledger_sql

# SQL because it is two conditional sums (all-time and today's units) in one statement; the ORM would
# fetch every order of the member and the product to add them up.
LIMIT_COUNTS = (
    "SELECT COALESCE(SUM(quantity), 0) AS total, COALESCE(SUM(CASE WHEN created_at >= $3 THEN quantity END), 0)"
    " AS today FROM mall_order WHERE member_id = $1 AND product_id = $2 AND channel IN ('REDEEM', 'CHECKOUT')"
    " AND (status = 'PAID' OR (status = 'PENDING_PAYMENT' AND expires_at > $4))"
)

# SQL because it answers a flash sale's sold-out press in one read without a transaction: the sale's
# stock and this key's first result, a LEFT JOIN to another domain's table that no relation describes
# (the benchmarked path).
SOLD_OUT_PEEK = (
    "SELECT f.stock, r.request_hash, r.result FROM flash_sale f LEFT JOIN idempotency_record r"
    " ON r.scope = $2 AND r.key = $3 WHERE f.id = $1"
)

# SQL because the gate's reload needs the stock and the paid orders from one snapshot: read one after the
# other, a winner committing in between is counted twice or not at all (api/services/mall/gate.py).
GATE_SNAPSHOT = (
    "SELECT f.stock, o.member_id, o.quantity, o.idempotency_key, o.status FROM flash_sale f"
    " LEFT JOIN mall_order o ON o.flash_sale_id = f.id WHERE f.id = $1"
)

# SQL because it is a report: a count and a sum over a merchant's day in one statement.
WRITE_OFF_SUMMARY = (
    "SELECT COUNT(*) AS n, COALESCE(SUM(face_value_fen), 0) AS total FROM voucher"
    " WHERE used_merchant_id = $1 AND used_at >= $2 AND used_at < $3"
)


async def limit_counts(tx: Tx, member_id: int, product_id: int, day_start: datetime,
                       live_after: datetime) -> tuple[int, int]:
    """Units of a product a member has bought or holds (checkouts live after `live_after`): in all, and today."""
    row = await tx.fetchrow(LIMIT_COUNTS, member_id, product_id, day_start, live_after)
    assert row is not None, "an aggregate has one row"
    return int(row["total"]), int(row["today"])


async def sold_out_peek(sale_id: int, scope: str, key: str) -> dict[str, Any] | None:
    """The sale's committed stock and the key's first request hash and result (None: no such sale)."""
    rows = await fetch(SOLD_OUT_PEEK, sale_id, scope, key)
    return dict(rows[0]) if rows else None


async def gate_snapshot(sale_id: int) -> tuple[int, list[dict[str, Any]]]:
    """A sale's stock left and its orders (member, units, idempotency key, status), as of one moment."""
    rows = await fetch(GATE_SNAPSHOT, sale_id)
    assert rows, "a flash sale is never deleted"
    return int(rows[0]["stock"]), [dict(r) for r in rows if r["member_id"] is not None]


async def write_off_summary(merchant_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """How many vouchers a merchant wrote off in [start, end), and their face value."""
    rows = await fetch(WRITE_OFF_SUMMARY, merchant_id, start, end)
    return int(rows[0]["n"]), int(rows[0]["total"])


# --- an order paid with points alone, on PostgreSQL (the benchmarked path: bench/flash_sale) -------
# Each Tortoise call cost 0.1–0.25 ms of CPU and each statement a round trip; a redemption made about
# fourteen. It now reads the sale and its product in one statement, reads what it checks under the
# account lock in one more, and writes in one (`order_writes`); the general path (ledger.debit, the
# models) stays for SQLite. tests/test_mall_paths.py compares the rows of both.

# A flash sale as stored now with its product (the ProductInfo fields, as `p_…`): read inside the
# transaction, before any lock (a sold-out sale is refused without one).
SALE_AND_PRODUCT = (
    "SELECT f.id, f.product_id, f.title, f.points_price, f.stock, f.stock_total, f.per_member_limit, f.starts_at,"
    " f.ends_at, f.status, f.created_at, f.updated_at, p.kind AS p_kind, p.name AS p_name,"
    " p.description AS p_description, p.image_urls AS p_image_urls, p.merchant_id AS p_merchant_id,"
    " p.face_value_fen AS p_face_value_fen, p.validity_days AS p_validity_days, p.points_price AS p_points_price,"
    " p.cash_price_fen AS p_cash_price_fen, p.stock AS p_stock, p.limit_per_member AS p_limit_per_member,"
    " p.limit_per_member_daily AS p_limit_per_member_daily, p.zone AS p_zone, p.min_tier_id AS p_min_tier_id,"
    " p.segment_id AS p_segment_id,"
    " p.sale_starts_at AS p_sale_starts_at, p.sale_ends_at AS p_sale_ends_at, p.status AS p_status,"
    " p.created_at AS p_created_at, p.updated_at AS p_updated_at"
    " FROM flash_sale f JOIN product p ON p.id = f.product_id WHERE f.id = $1"
)

# What a flash-sale order checks under the account lock, in one round trip: the points due and held
# (read after the lock, not in a subquery of the locking statement: that one sees the snapshot from
# before the lock wait) and the units of the sale the member has bought.
# $1 account, $2 as of, $3 sale, $4 member.
FLASH_BUYER = (
    "SELECT (SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.account_id = $1 AND l.kind = 'EARN'"
    " AND l.remaining > 0 AND l.expires_at <= $2) AS due,"
    " (SELECT COALESCE(SUM(h.points), 0) FROM points_hold h WHERE h.account_id = $1 AND h.status = 'HELD'"
    " AND h.expires_at > $2) AS held,"
    " (SELECT COALESCE(SUM(o.quantity), 0) FROM mall_order o WHERE o.flash_sale_id = $3 AND o.member_id = $4"
    " AND o.status = 'PAID') AS bought"
)

_STOCK_TABLES = {"product": "product", "flash_sale": "flash_sale"}


@dataclass(frozen=True)
class OrderWrite:
    """A paid order for points alone, as `order_writes` books it."""
    account_id: int
    balance: int  # before the order
    told: int  # the points balance the member is told (spendable after the order)
    points: int  # > 0
    reason: str
    order_no: str
    member_id: int
    product_id: int
    flash_sale_id: int | None
    channel: str
    quantity: int
    key: str
    now: datetime
    voucher_kind: str
    merchant_id: int | None
    face_value_fen: int | None
    valid_until: datetime
    codes: tuple[str, ...]
    stock_table: str  # "product" or "flash_sale": whose stock the order takes
    stock_id: int
    record_id: int


def order_writes(w: OrderWrite) -> tuple[str, list[Any]]:
    """The order's writes on PostgreSQL as one statement of data-modifying CTEs (one round trip) and its
    arguments: the SPEND entry, the lots it takes (earliest expiry first, as `ledger.debit`) and their
    moves, the cached balance, the order, its vouchers, the units taken by the conditional update
    (last; Rank.PRODUCT or Rank.FLASH_SALE) and the idempotency key's result. Returns order_id, took
    (1 when the units were there) and spent (what the lots gave: the points, unless they did not cover
    them). The same rows as `ledger.debit`, `orders.insert_order`, `vouchers.issue` and `take_stock`."""
    a = ledger_sql.Args()
    account, at, points = a(w.account_id), a(w.now), a(w.points, "::bigint")
    table = _STOCK_TABLES[w.stock_table]
    member, product, key = a(w.member_id), a(w.product_id), a(w.key)
    codes = ", ".join(f"({a(code)})" for code in w.codes)
    statement = (
        f"WITH {ledger_sql.charge_ctes(account, points)},"
        " entry AS (INSERT INTO points_entry (account_id, kind, points, balance_after, reason, source_type,"
        f" source_ref, occurred_at) VALUES ({account}, 'SPEND', -{points}, {a(w.balance - w.points)}, {a(w.reason)},"
        f" 'mall_order', {a(w.order_no)}, {at}) RETURNING id),"
        f" balance AS (UPDATE points_account SET balance = {a(w.balance - w.points)}, updated_at = {at}"
        f" WHERE id = {account}), {ledger_sql.charge_moves('(SELECT id FROM entry)')},"
        " o AS (INSERT INTO mall_order (order_no, member_id, product_id, flash_sale_id, channel, status, quantity,"
        " points, cash_fen, idempotency_key, created_at, expires_at, paid_at, spend_entry_id)"
        f" SELECT {a(w.order_no)}, {member}, {product}, {a(w.flash_sale_id, '::bigint')}, {a(w.channel)}, 'PAID',"
        f" {a(w.quantity)}, {points}, 0, {key}, {at}, NULL, {at}, entry.id FROM entry RETURNING id),"
        " v AS (INSERT INTO voucher (code, order_id, member_id, product_id, merchant_id, kind, face_value_fen, status,"
        f" valid_from, valid_until, created_at) SELECT c.code, o.id, {member}, {product},"
        f" {a(w.merchant_id, '::bigint')}, {a(w.voucher_kind)}, {a(w.face_value_fen, '::bigint')}, 'ISSUED', {at},"
        f" {a(w.valid_until, '::timestamptz')}, {at} FROM o, (VALUES {codes}) AS c(code)),"
        f" unit AS (UPDATE {table} SET stock = stock - {a(w.quantity)} WHERE id = {a(w.stock_id)}"
        f" AND stock >= {a(w.quantity)} RETURNING id),"
        " result AS (UPDATE idempotency_record SET result = '{\"order_id\":' || (SELECT id FROM o)"
        f" || ',\"points_balance\":' || {a(w.told, '::bigint')} || ',\"payment_id\":null}}' WHERE id = {a(w.record_id)})"
        " SELECT (SELECT id FROM o) AS order_id, (SELECT COUNT(*) FROM unit) AS took,"
        " (SELECT COALESCE(SUM(delta), 0) FROM take) AS spent"
    )
    return statement, a.values
