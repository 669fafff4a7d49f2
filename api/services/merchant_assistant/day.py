"""A merchant's business day (Asia/Shanghai) as its staff see it in the merchant assistant."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from api.services import clock
from api.services.merchant_assistant import sql


@dataclass(frozen=True)
class MerchantDay:
    day: date
    write_offs: int  # vouchers written off at the merchant's tills
    write_off_face_value_fen: int
    receipts: int  # the merchant's receipts that earned points (by when they happened)
    sales_fen: int
    points_issued: int  # earned on those receipts
    refunds: int  # refunds of the merchant's receipts recorded that day
    points_reversed: int  # taken back by those refunds
    points_payments: int  # pointsPay at the merchant's tills
    points_paid: int
    points_paid_cash_value_fen: int
    orders: int  # points-mall orders of the merchant's goods, paid that day
    order_units: int
    order_points: int
    order_cash_fen: int
    orders_refunded: int  # orders of its goods refunded that day


async def day_of(merchant_id: int, day: date | None = None) -> MerchantDay:
    """The merchant's figures for an Asia/Shanghai day (default: today)."""
    day = day or clock.business_day(clock.now())
    start, end = clock.day_bounds(day)
    f = await sql.merchant_day(merchant_id, start, end)
    return MerchantDay(
        day=day, write_offs=f["write_offs"], write_off_face_value_fen=f["write_off_fen"], receipts=f["receipts"],
        sales_fen=f["sales_fen"], points_issued=f["points_issued"], refunds=f["refunds"],
        points_reversed=f["points_reversed"], points_payments=f["payments"], points_paid=f["points_paid"],
        points_paid_cash_value_fen=f["paid_fen"], orders=f["orders"], order_units=f["units"],
        order_points=f["order_points"], order_cash_fen=f["order_cash_fen"], orders_refunded=f["orders_refunded"],
    )
