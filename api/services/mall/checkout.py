"""Points plus cash: checkoutCreate holds stock and points and asks the provider for a payment; the
order is then confirmed by the payment notification (api.services.mall.payments), cancelled by the
member, or lapses at its deadline (api.services.mall.expiry)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from api import locks
from api.config import settings
from api.db import Tx, transaction
from api.locks import Rank
from api.models import MallOrder, Payment, PointsHold, Product
from api.services import clock, idempotency, ledger, settlement
from api.services.errors import DomainError, ErrorCode
from api.services.mall.catalogue import product
from api.services.mall.orders import (
    NOTIFY_GRACE,
    OrderInfo,
    OrderResult,
    check_quantity,
    check_sale,
    give_back_stock,
    insert_order,
    insufficient,
    issue_vouchers,
    lock_member,
    member_scope,
    new_order_no,
    order,
    take_stock,
)
from api.services.mall.records import record, scalar


def payment_provider() -> str:
    return settings().payment_provider


async def checkout_create(member_id: int, product_id: int, quantity: int, idempotency_key: str) -> OrderResult:
    """checkoutCreate: holds stock and points (not spent) and asks the provider for a payment; the
    order lapses at its deadline (MALLPOINTS_CHECKOUT_MINUTES) unless paid."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    check_quantity(quantity)
    if payment_provider() == "none":
        raise DomainError(ErrorCode.NOT_ON_SALE, "cash payment is not configured on this server", ["input", "productId"])
    digest = idempotency.request_hash("checkoutCreate", {"productId": product_id, "quantity": quantity})
    now = clock.now()
    deadline = now + timedelta(minutes=settings().checkout_minutes)
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, member_scope(member_id), key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OrderResult(**stored)
        p = await product(product_id, ["input", "productId"])
        if not p.cash_price_fen:
            raise DomainError(ErrorCode.INVALID_INPUT, "this product is for points alone: use pointsMallRedeem",
                              ["input", "productId"])
        if p.stock < quantity:
            raise DomainError(ErrorCode.OUT_OF_STOCK, "sold out", ["input", "productId"])
        acct = await lock_member(tx, member_id, now)
        await check_sale(tx, acct, p, quantity, now)
        points, cash = p.points_price * quantity, p.cash_price_fen * quantity
        order_no = new_order_no(now)
        order_id = await insert_order(
            order_no=order_no, member_id=member_id, product_id=p.id, flash_sale_id=None, channel="CHECKOUT",
            status="PENDING_PAYMENT", quantity=quantity, points=points, cash_fen=cash, key=key, now=now,
            expires_at=deadline, spend_entry_id=None,
        )
        if points and await ledger.hold(tx, acct, points=points, source_type="mall_order", source_ref=str(order_id),
                                        expires_at=deadline + NOTIFY_GRACE) is None:
            raise insufficient(acct, points)
        payment = await Payment.create(order_id=order_id, provider=payment_provider(), out_trade_no=order_no,
                                       amount_fen=cash, status="PENDING", created_at=now)
        await take_stock(Product, p.id, quantity)
        result = OrderResult(order_id, acct.spendable, payment.id)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def lock_order(order_id: int) -> OrderInfo | None:
    """The order, locked (Rank.ORDER: after the member's account, before its vouchers and stock)."""
    locked = await locks.row(Rank.ORDER, MallOrder, order_id)
    return None if locked is None else record(OrderInfo, locked)


async def _hold_of(order_id: int) -> int | None:
    return await scalar(PointsHold.filter(source_type="mall_order", source_ref=str(order_id)), "id")


async def lapse(tx: Tx, o: OrderInfo, status: str, now: datetime, stock_back: bool = True) -> None:
    """An unpaid checkout ends (EXPIRED or CANCELLED): holds released, stock back (unless the caller
    gives many orders' stock back at once)."""
    await MallOrder.filter(id=o.id).update(status=status, closed_at=now)
    hold_id = await _hold_of(o.id)
    if hold_id is not None:
        await ledger.release(tx, hold_id)
    if stock_back:
        await give_back_stock(Product, o.product_id, o.quantity)


async def confirm(tx: Tx, o: OrderInfo, acct: ledger.LockedAccount, now: datetime) -> None:
    """Spends the order's hold, marks it PAID and issues its vouchers."""
    p = await product(o.product_id)
    entry_id = None
    if o.points:
        hold_id = await _hold_of(o.id)
        assert hold_id is not None, "an order with points holds them until it is paid or lapses"
        entry = await ledger.capture(tx, acct, hold_id, reason=f"积分商城 {p.name}×{o.quantity}（积分+现金）",
                                     source_type="mall_order", source_ref=o.order_no, occurred_at=now)
        entry_id = entry.id
    await MallOrder.filter(id=o.id).update(status="PAID", paid_at=now, spend_entry_id=entry_id)
    await issue_vouchers(o.id, o.member_id, p, o.quantity, now)
    await settlement.cash_sale(tx, o.id, now)


async def cancel_checkout(member_id: int, order_id: int) -> OrderInfo:
    """checkoutCancel: the member gives up an unpaid order; holds and stock come back at once."""
    now = clock.now()
    async with transaction() as tx:
        o = await lock_order(order_id)
        if o is None or o.member_id != member_id:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["input", "orderId"])
        if o.status != "PENDING_PAYMENT":
            raise DomainError(ErrorCode.ORDER_STATE_INVALID, f"the order is {o.status}", ["input", "orderId"])
        await lapse(tx, o, "CANCELLED", now)
    return await order(order_id)  # type: ignore[return-value]
