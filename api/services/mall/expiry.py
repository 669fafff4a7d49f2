"""The order lapse run: unpaid checkouts past their deadline give back their holds and stock."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import MallOrder, Product
from api.services import clock
from api.services.mall.checkout import lapse
from api.services.mall.orders import NOTIFY_GRACE, OrderInfo, give_back_stock
from api.services.mall.records import record

EXPIRE_CHUNK = 500  # orders per transaction


@dataclass(frozen=True)
class ExpireResult:
    orders_expired: int
    points_released: int


async def expire_orders(as_of: datetime | None = None) -> ExpireResult:
    """Lapses unpaid checkouts whose deadline (plus the notification grace) has passed. Safe to repeat
    and to run twice at once: each order is locked and re-checked (SKIP LOCKED on PostgreSQL lets a
    second runner, or a payment notification holding an order, pass it by). A chunk gives its stock
    back last, one update per product in id order, so two runners never deadlock on products."""
    as_of = as_of or clock.now()
    expired = points = 0
    while True:
        async with transaction() as tx:
            due = await locks.skip_locked(Rank.ORDER, MallOrder, EXPIRE_CHUNK, status="PENDING_PAYMENT",
                                          expires_at__lt=as_of - NOTIFY_GRACE)
            back: dict[int, int] = {}
            for row in due:
                o = record(OrderInfo, row)
                await lapse(tx, o, "EXPIRED", as_of, stock_back=False)
                back[o.product_id] = back.get(o.product_id, 0) + o.quantity
                expired, points = expired + 1, points + o.points
            for product_id in sorted(back):
                await give_back_stock(Product, product_id, back[product_id])
        if len(due) < EXPIRE_CHUNK:
            return ExpireResult(expired, points)
