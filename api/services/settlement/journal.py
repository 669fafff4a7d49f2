"""Postings from the events that move money between the mall and a merchant, each one statement on the
event's own transaction (the hook is the event's last write; it never locks anything, so it never
changes an event's lock order). What each posting moves: docs/settlement.md."""
from __future__ import annotations

from datetime import datetime

from api.config import settings
from api.db import Tx
from api.services.settlement import sql


def points_value_fen(points: int) -> int:
    """The cash value of points, at the rate pointsPay uses (MALLPOINTS_PAY_POINTS_PER_YUAN), rounded down."""
    return points * 100 // settings().pay_points_per_yuan


async def points_issued(tx: Tx, merchant_id: int, purchase_id: int, points: int, now: datetime) -> None:
    """Points earned on a merchant's receipt: the merchant funds its pointCostSharePercent of their value."""
    value = points_value_fen(points)
    if value > 0:
        await tx.execute(sql.POINTS_ISSUED, f"purchase:{purchase_id}", merchant_id, points, value, now)


def points_issued_many(receipts: list[tuple[int, int, int, datetime]]) -> tuple[str, tuple] | None:
    """The postings of `points_issued` for many receipts (merchant, purchase, points, booked at) as one
    statement over arrays with its arguments, for a set-based write (PostgreSQL); None when no receipt
    earned points worth a fen."""
    rows = [(f"purchase:{purchase_id}", merchant_id, points, points_value_fen(points), at)
            for merchant_id, purchase_id, points, at in receipts if points_value_fen(points) > 0]
    if not rows:
        return None
    return sql.POINTS_ISSUED_MANY, tuple(list(column) for column in zip(*rows, strict=True))


async def purchase_refunded(tx: Tx, purchase_id: int, refund_id: int, refunded_before: int, refunded_after: int,
                            amount_fen: int, now: datetime) -> None:
    """A receipt refunded (in part): its share of the points posting reversed, in the refund's period."""
    await tx.execute(sql.PROPORTIONAL_REVERSAL, f"purchase_refund:{refund_id}", f"purchase:{purchase_id}",
                     refunded_before, refunded_after, amount_fen, now)


async def points_paid(tx: Tx, merchant_id: int, payment_id: int, points: int, cash_value_fen: int,
                      now: datetime) -> None:
    """Points paid at a merchant's till: the mall owes the merchant their cash value."""
    await tx.execute(sql.POINTS_PAID, f"till_payment:{payment_id}", merchant_id, cash_value_fen, points, now)


async def voucher_written_off(tx: Tx, voucher_id: int, now: datetime) -> None:
    """A merchant's voucher written off: the mall owes the merchant the mall-funded part of its face value."""
    await tx.execute(sql.VOUCHER_WRITTEN_OFF, voucher_id, f"voucher:{voucher_id}", now,
                     settings().pay_points_per_yuan)


async def cash_sale(tx: Tx, order_id: int, now: datetime) -> None:
    """A paid points-plus-cash order of a merchant's goods: the cash less commission is owed to the merchant."""
    await tx.execute(sql.CASH_SALE, order_id, f"mall_order:{order_id}", now)


async def cash_sale_refunded(tx: Tx, order_id: int, now: datetime) -> None:
    """A refunded order: its cash-sale posting reversed whole, in the refund's period."""
    await tx.execute(sql.REVERSAL, f"mall_refund:{order_id}", f"mall_order:{order_id}", now)
