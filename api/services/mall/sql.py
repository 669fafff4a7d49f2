"""The points mall's SQL: the few statements the ORM cannot say as well or as fast. Everything else
in `api.services.mall` goes through the models (`api/models/mall.py`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from api.db import Tx, fetch

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


async def write_off_summary(merchant_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """How many vouchers a merchant wrote off in [start, end), and their face value."""
    rows = await fetch(WRITE_OFF_SUMMARY, merchant_id, start, end)
    return int(rows[0]["n"]), int(rows[0]["total"])
