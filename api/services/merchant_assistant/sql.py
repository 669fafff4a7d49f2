"""The merchant assistant's SQL: its one report. Everything else in `api.services.merchant_assistant`
goes through the models."""
from __future__ import annotations

from datetime import datetime

from api.db import fetch

# SQL because it is a report: counts and sums over five tables of two domains for one merchant's day,
# in one round trip (the ORM would need five aggregate queries, two of them joins without a relation).
# Receipts count by when they happened (a till that was offline reports late); refunds, till payments
# and write-offs by when they were recorded; mall orders of the merchant's goods by when they were paid
# (a refunded order still counts on the day it was paid, and as refunded on the day it was refunded).
MERCHANT_DAY = (
    "SELECT w.write_offs, w.write_off_fen, p.receipts, p.sales_fen, p.points_issued, r.refunds,"
    " r.points_reversed, t.payments, t.points_paid, t.paid_fen, o.orders, o.units, o.order_points,"
    " o.order_cash_fen, x.orders_refunded"
    " FROM (SELECT COUNT(*) AS write_offs, COALESCE(SUM(face_value_fen), 0) AS write_off_fen FROM voucher"
    "  WHERE used_merchant_id = $1 AND used_at >= $2 AND used_at < $3) w,"
    " (SELECT COUNT(*) AS receipts, COALESCE(SUM(amount_fen), 0) AS sales_fen,"
    "  COALESCE(SUM(points_earned), 0) AS points_issued FROM purchase"
    "  WHERE merchant_id = $1 AND occurred_at >= $2 AND occurred_at < $3) p,"
    " (SELECT COUNT(*) AS refunds, COALESCE(SUM(f.points_reversed), 0) AS points_reversed"
    "  FROM purchase_refund f JOIN purchase b ON b.id = f.purchase_id"
    "  WHERE b.merchant_id = $1 AND f.recorded_at >= $2 AND f.recorded_at < $3) r,"
    " (SELECT COUNT(*) AS payments, COALESCE(SUM(points), 0) AS points_paid,"
    "  COALESCE(SUM(cash_value_fen), 0) AS paid_fen FROM till_payment"
    "  WHERE merchant_id = $1 AND recorded_at >= $2 AND recorded_at < $3) t,"
    " (SELECT COUNT(*) AS orders, COALESCE(SUM(m.quantity), 0) AS units, COALESCE(SUM(m.points), 0) AS order_points,"
    "  COALESCE(SUM(m.cash_fen), 0) AS order_cash_fen FROM mall_order m JOIN product g ON g.id = m.product_id"
    "  WHERE g.merchant_id = $1 AND m.paid_at >= $2 AND m.paid_at < $3) o,"
    " (SELECT COUNT(*) AS orders_refunded FROM mall_order m JOIN product g ON g.id = m.product_id"
    "  WHERE g.merchant_id = $1 AND m.status = 'REFUNDED' AND m.closed_at >= $2 AND m.closed_at < $3) x"
)


async def merchant_day(merchant_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """The figures of MERCHANT_DAY for [start, end), as ints."""
    rows = await fetch(MERCHANT_DAY, merchant_id, start, end)
    return {k: int(v) for k, v in dict(rows[0]).items()}
