"""Paying with points at the till (pointsPay)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from api.config import settings
from api.db import retry_on_deadlock, transaction
from api.services import clock, idempotency, ledger, merchants, settlement, signing
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity, require_merchant
from api.services.purchases import sql
from api.services.purchases.checks import MAX_PAY_POINTS, check_key, check_receipt_no, scope_of, yuan


@dataclass(frozen=True)
class PayResult:
    points_spent: int
    cash_value_fen: int
    points_balance: int


@retry_on_deadlock()
async def pay_with_points(
    identity: IntegrationIdentity, member_code: str, merchant_code: str, receipt_no: str, points: int,
    idempotency_key: str,
) -> PayResult:
    cfg = settings()
    key = check_key(idempotency_key)
    receipt_no = check_receipt_no(receipt_no)
    if points <= 0 or points > MAX_PAY_POINTS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"points must be 1 to {MAX_PAY_POINTS}", ["points"])
    if (points * 100) % cfg.pay_points_per_yuan:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"points must be worth a whole number of fen ({cfg.pay_points_per_yuan} points = 1 yuan)", ["points"],
        )
    cash_value_fen = points * 100 // cfg.pay_points_per_yuan
    merchant = await merchants.active_by_code(merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    member_id = signing.read_member_code(member_code)  # spending: the code must be valid now
    digest = idempotency.request_hash("pointsPay", {
        "memberCode": member_code, "merchantCode": merchant_code, "receiptNo": receipt_no, "points": points,
    })
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope_of(identity), key, digest, ["idempotencyKey"])
        if stored is not None:
            return PayResult(**stored)
        acct = await ledger.lock_account(tx, member_id)
        if acct is None:
            raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
        await ledger.expire_account(tx, acct, now)
        if acct.spendable < points:
            raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"not enough points: {ledger.shortfall(acct)}", ["points"])
        payment_id = await tx.fetchval(sql.INSERT_TILL_PAYMENT, merchant.id, member_id, receipt_no, points,
                                       cash_value_fen, now)
        if payment_id is None:
            raise DomainError(ErrorCode.DUPLICATE_RECEIPT, "points were already used on this receipt", ["receiptNo"])
        await ledger.debit(
            tx, acct, points=points, kind="SPEND", reason=f"{merchant.name} 积分抵现 {yuan(cash_value_fen)}",
            source_type="till_payment", source_ref=str(payment_id), occurred_at=now,
        )
        await settlement.points_paid(tx, merchant.id, payment_id, points, cash_value_fen, now)
        result = PayResult(points, cash_value_fen, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result
