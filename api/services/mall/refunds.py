"""mallOrderRefund: an operator undoes a PAID order."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from tortoise.expressions import F

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import DrawPlay, DrawPrize, FlashSale, MallOrder, Payment, PaymentRefund, Product
from api.services import clock, idempotency, ledger, settlement
from api.services.audit import audit
from api.services.errors import DomainError, ErrorCode
from api.services.mall import vouchers
from api.services.mall.checkout import lock_order
from api.services.mall.orders import OrderInfo, give_back_stock, lock_member
from api.services.mall.records import scalar


@dataclass(frozen=True)
class RefundResult:
    order_id: int
    points_returned: int
    cash_refund_fen: int
    flash_sale_id: int | None = None  # whose Redis gate must be reloaded (the unit is for sale again)
    draw_prize_id: int | None = None


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 200:
        raise DomainError(ErrorCode.INVALID_INPUT, "reason must be 2 to 200 characters", ["input", "reason"])
    return reason


async def refund_order(operator_id: int, order_id: int, reason: str, idempotency_key: str) -> RefundResult:
    """A PAID order is undone: points back to the lots they came from, stock back, vouchers void
    (refused when one was used already), the cash part requested back from the provider."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    reason = _check_reason(reason)
    digest = idempotency.request_hash("mallOrderRefund", {"orderId": order_id, "reason": reason})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"operator:{operator_id}", key, digest,
                                                    ["input", "idempotencyKey"])
        if stored is not None:
            return RefundResult(**stored)
        member_id = await scalar(MallOrder.filter(id=order_id), "member_id")
        if member_id is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["input", "orderId"])
        acct = await lock_member(tx, member_id, now)
        o = await lock_order(order_id)
        assert o is not None, "an order is never deleted"
        if o.status != "PAID":
            raise DomainError(ErrorCode.ORDER_STATE_INVALID, f"only a PAID order can be refunded; it is {o.status}",
                              ["input", "orderId"])
        if await vouchers.void_for_order(o.id):
            raise DomainError(ErrorCode.ORDER_STATE_INVALID, "a voucher of this order has been used already",
                              ["input", "orderId"])
        refund_entry_id = None
        if o.points:
            spend_id = await scalar(MallOrder.filter(id=o.id), "spend_entry_id")
            entry = await ledger.give_back(tx, acct, spend_id, reason=f"积分商城退款 {o.order_no}",
                                           source_type="mall_refund", source_ref=o.order_no, occurred_at=now,
                                           operator_id=operator_id)
            refund_entry_id = entry.id
        await MallOrder.filter(id=o.id).update(status="REFUNDED", closed_at=now, refund_entry_id=refund_entry_id)
        prize_id = await _stock_back(o)
        if o.cash_fen:
            payment_id = await scalar(Payment.filter(order_id=o.id), "id")
            await PaymentRefund.create(payment_id=payment_id, amount_fen=o.cash_fen, reason=f"order refunded: {reason}",
                                       status="REQUESTED", created_at=now)
            await settlement.cash_sale_refunded(tx, o.id, now)
        await audit(tx, ("operator", str(operator_id)), "mall_order.refund", "mall_order", str(o.id),
                    {"reason": reason, "points": o.points, "cashFen": o.cash_fen})
        result = RefundResult(o.id, o.points, o.cash_fen, o.flash_sale_id, prize_id)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def _stock_back(o: OrderInfo) -> int | None:
    """The refunded unit goes back where it was sold from; returns the draw prize it was won as."""
    if o.channel == "FLASH_SALE":
        await give_back_stock(FlashSale, o.flash_sale_id, o.quantity)  # type: ignore[arg-type]
        return None
    if o.channel != "DRAW":
        await give_back_stock(Product, o.product_id, o.quantity)
        return None
    prize_id = await scalar(DrawPlay.filter(order_id=o.id), "prize_id")
    locks.enter(Rank.PRIZE, (prize_id,))
    await DrawPrize.filter(id=prize_id, stock__isnull=False).update(stock=F("stock") + 1)
    return prize_id
