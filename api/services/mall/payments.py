"""The cash part of a checkout: the payment record, the provider's notification, and the providers.

A real provider (WeChat Pay) plugs in here: it turns a payment into the parameters its client SDK
needs, and it notifies the server through the signed `paymentNotify` mutation (an integration key
with the `payment` scope), carrying the provider's transaction id.

The development provider ("dev", dev-only) has a cashier page of its own: `POST /dev/pay/{outTradeNo}`
on this server plays the member paying and the provider notifying, so the whole flow can be driven
from a browser, a test or curl without WeChat.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from api.config import settings
from api.db import Tx, transaction
from api.models import Payment, PaymentRefund
from api.services import clock, ledger, text
from api.services.errors import DomainError, ErrorCode
from api.services.mall.checkout import confirm, lapse, lock_order
from api.services.mall.orders import NOTIFY_GRACE, OrderInfo, lock_member
from api.services.mall.records import column, scalar


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


@dataclass(frozen=True)
class NotifyResult:
    order_id: int
    order_status: str
    payment_status: str  # PAID, or LATE: paid after the order lapsed, the cash is being refunded
    refund_requested_fen: int


async def _refunded(payment_id: int) -> int:
    return sum(await column(PaymentRefund.filter(payment_id=payment_id), "amount_fen"))


async def payment_for_order(order_id: int) -> PaymentInfo | None:
    row = await Payment.filter(order_id=order_id).first().values(
        "id", "order_id", "provider", "out_trade_no", "amount_fen", "status", "transaction_id", "paid_at",
        expires_at="order__expires_at")
    return None if row is None else PaymentInfo(**row, refund_requested_fen=await _refunded(row["id"]))


async def _notify_result(order_id: int, payment_id: int) -> NotifyResult:
    row = await Payment.filter(id=payment_id).first().values("status", order_status="order__status")
    return NotifyResult(order_id, row["order_status"], row["status"], await _refunded(payment_id))


async def payment_notify(provider: str, out_trade_no: str, transaction_id: str, amount_fen: int,
                         paid_at: datetime) -> NotifyResult:
    """The provider says a payment succeeded. Safe to repeat (same transaction id → same answer).
    Paid in time: the held points are spent, the order is PAID, the vouchers are issued. Paid after
    the order lapsed (or was cancelled): the order stays closed and a cash refund is requested."""
    transaction_id = text.identifier(transaction_id, ["input", "transactionId"], 64)
    now = clock.now()
    paid_at = text.check_paid_at(paid_at, ["input", "paidAt"], now)  # with an offset, 30 days ago … now + 5 min
    if text.has_control(out_trade_no):  # no payment has one; PostgreSQL refuses NUL in a query
        raise DomainError(ErrorCode.NOT_FOUND, "no such payment", ["input", "outTradeNo"])
    async with transaction() as tx:
        found = await Payment.filter(out_trade_no=out_trade_no).first().values(
            "id", "order_id", "provider", member_id="order__member_id")
        if found is None or found["provider"] != provider:
            raise DomainError(ErrorCode.NOT_FOUND, "no such payment", ["input", "outTradeNo"])
        acct = await lock_member(tx, found["member_id"], now)  # the lock order: account, then order
        o = await lock_order(found["order_id"])
        assert o is not None, "an order with a payment is never deleted"
        payment = await Payment.get(id=found["id"])
        if payment.status != "PENDING":  # notified before: the same payment, or a second one
            if payment.transaction_id != transaction_id:
                return await _late(payment, o, transaction_id, amount_fen, now, "a second payment for this order")
            if payment.amount_fen != amount_fen:
                raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "this transactionId was notified with another"
                                  " amount", ["input", "transactionId"])
            return await _notify_result(o.id, payment.id)
        if o.status == "PENDING_PAYMENT" and o.expires_at is not None and now >= o.expires_at + NOTIFY_GRACE:
            await lapse(tx, o, "EXPIRED", now)  # the expiry run had not come yet
            o = replace(o, status="EXPIRED")
        if o.status != "PENDING_PAYMENT":  # whatever was paid goes back
            return await _late(payment, o, transaction_id, amount_fen, now, "paid after the order closed")
        return await _pay(tx, payment, o, acct, transaction_id, amount_fen, now)


async def _pay(tx: Tx, payment: Payment, o: OrderInfo, acct: ledger.LockedAccount, transaction_id: str,
               amount_fen: int, now: datetime) -> NotifyResult:
    """Paid in time and in full: the payment is PAID and the order confirmed."""
    if payment.amount_fen != amount_fen:
        raise DomainError(ErrorCode.PAYMENT_AMOUNT_MISMATCH,
                          f"the payment request was for {payment.amount_fen} fen", ["input", "amountFen"])
    await Payment.filter(id=payment.id).update(status="PAID", transaction_id=transaction_id, paid_at=now)
    await confirm(tx, o, acct, now)
    return await _notify_result(o.id, payment.id)


async def _late(payment: Payment, o: OrderInfo, transaction_id: str, amount_fen: int, now: datetime,
                why: str) -> NotifyResult:
    """Money we cannot keep: recorded, and a refund of all of it requested."""
    if payment.status == "PENDING":
        await Payment.filter(id=payment.id).update(status="LATE", transaction_id=transaction_id, paid_at=now)
    else:  # a second transaction for a settled order: remember it on the refund itself
        why = f"{why} (transaction {transaction_id})"
    seen = await PaymentRefund.filter(payment_id=payment.id, reason=why).exists()
    if not seen and amount_fen > 0:
        await PaymentRefund.create(payment_id=payment.id, amount_fen=amount_fen, reason=why, status="REQUESTED",
                                   created_at=now)
    return await _notify_result(o.id, payment.id)


# --- providers -----------------------------------------------------------------------------------

def pay_params(payment: PaymentInfo) -> str:
    """JSON for the client: the dev provider's cashier URL, or (for a real provider) its SDK parameters."""
    if payment.provider == "dev":
        return json.dumps({"payUrl": f"/dev/pay/{payment.out_trade_no}", "method": "POST",
                           "amountFen": payment.amount_fen}, separators=(",", ":"))
    return json.dumps({"outTradeNo": payment.out_trade_no, "amountFen": payment.amount_fen}, separators=(",", ":"))


def dev_provider_enabled() -> bool:
    cfg = settings()
    return cfg.payment_provider == "dev" and not cfg.is_production


async def dev_pay(out_trade_no: str) -> NotifyResult:
    """The development provider: the member paid the whole amount just now; the provider notifies."""
    if not dev_provider_enabled():
        raise DomainError(ErrorCode.NOT_FOUND, "the development payment provider is off", ["outTradeNo"])
    amount = await scalar(Payment.filter(out_trade_no=out_trade_no, provider="dev"), "amount_fen")
    if amount is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such payment", ["outTradeNo"])
    return await payment_notify("dev", out_trade_no, "dev-" + secrets.token_hex(12), amount, clock.now())
