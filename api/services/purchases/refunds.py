"""Refunds: points settled in proportion to the refunded amount."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from tortoise.expressions import F

from api import locks
from api.db import Tx, retry_on_deadlock, transaction
from api.models import PointsEntry, PointsLot, Purchase, PurchaseRefund
from api.services import clock, earning, idempotency, ledger, merchants, settlement, tiers
from api.services.errors import DomainError, ErrorCode
from api.services.integrations import IntegrationIdentity, require_merchant
from api.services.purchases import sql
from api.services.purchases.checks import check_amount, check_key, check_receipt_no, scope_of, yuan


@dataclass(frozen=True)
class RefundResult:
    points_reversed: int
    points_balance: int


@dataclass(frozen=True)
class _Settlement:
    """What a refund of `amount_fen` settles, cumulatively over the purchase's refunds."""

    refunded: int  # refunded_fen after this refund
    settle: int  # points to settle now
    growth_back: int


def _settlement(purchase: Purchase, amount_fen: int) -> _Settlement:
    refundable = purchase.amount_fen - purchase.refunded_fen
    if amount_fen > refundable:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"refund exceeds what is left to refund ({refundable} fen)", ["refundAmountFen"]
        )
    refunded = purchase.refunded_fen + amount_fen
    settle = purchase.points_earned * refunded // purchase.amount_fen - purchase.points_reversed
    growth_back = purchase.growth_earned * refunded // purchase.amount_fen - purchase.growth_reversed
    return _Settlement(refunded, settle, growth_back)


async def _lock_purchase(tx: Tx, merchant_id: int, receipt_no: str) -> tuple[ledger.LockedAccount, Purchase]:
    """The lock order of every points move: key, account, then the purchase (a pending-points release
    locks the account before it updates the purchase)."""
    found = await Purchase.filter(merchant_id=merchant_id, receipt_no=receipt_no).first().values("id", "member_id")
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such receipt at this merchant", ["receiptNo"])
    acct = await ledger.lock_account(tx, found["member_id"])
    assert acct is not None
    purchase = await locks.row(locks.Rank.PURCHASE, Purchase, found["id"])
    assert purchase is not None
    return acct, purchase


async def _forgivable(tx: Tx, earn_ids: tuple[int, ...], settle: int, forgiven_before: int) -> int:
    """How much of `settle` needs no claw-back: when the purchase's own lots cannot cover it, the
    part of the shortfall that expired (never used by the member) is settled by that expiry."""
    own = sum(lot.remaining for lot in await PointsLot.filter(entry_id__in=earn_ids, kind="EARN").only("remaining"))
    shortfall = settle - min(settle, own)
    if not shortfall:
        return 0
    expired = await tx.fetchval(sql.expired_from(ledger.sql_ids(earn_ids)))
    return min(shortfall, max(0, int(expired) - forgiven_before))


async def _settle_points(tx: Tx, acct: ledger.LockedAccount, purchase: Purchase, due: _Settlement, reason: str,
                         now: datetime) -> tuple[int, int]:
    """Takes back what the refund settles: the purchase's own lot first; what it lost to expiry is
    forgiven; the rest from other lots by earliest expiry, then as a claw-back debt. Returns
    (taken, forgiven)."""
    if not due.settle:
        return 0, 0
    # The purchase's own EARN entries: one, or two when part of its points was pending and released.
    earn_ids = tuple(e.id for e in await PointsEntry.filter(source_type="purchase", source_ref=str(purchase.id),
                                                            kind="EARN").order_by("id").only("id"))
    forgive = await _forgivable(tx, earn_ids, due.settle, purchase.points_forgiven)
    take = due.settle - forgive
    if take:
        await ledger.debit(
            tx, acct, points=take, kind="REVERSE", reason=reason, source_type="purchase_refund",
            source_ref=str(purchase.id), occurred_at=now, prefer_entry_ids=earn_ids, allow_debt=True,
            reverses_id=earn_ids[0] if earn_ids else None,
        )
    return take, forgive


async def _refund(tx: Tx, merchant: merchants.MerchantInfo, receipt_no: str, amount_fen: int,
                  now: datetime) -> RefundResult:
    acct, purchase = await _lock_purchase(tx, merchant.id, receipt_no)
    due = _settlement(purchase, amount_fen)
    # Expire what is due first, as an expiry run would have: the result must not depend on
    # whether one ran (what the purchase's own lot lost to expiry is forgiven).
    await ledger.expire_account(tx, acct, now)
    reason = f"{merchant.name} 退款 {yuan(amount_fen)}"
    take, forgive = await _settle_points(tx, acct, purchase, due, reason, now)
    await Purchase.filter(id=purchase.id).update(
        refunded_fen=due.refunded, points_reversed=F("points_reversed") + due.settle,
        points_forgiven=F("points_forgiven") + forgive, growth_reversed=F("growth_reversed") + due.growth_back,
    )
    refund = await PurchaseRefund.create(purchase_id=purchase.id, amount_fen=amount_fen, points_reversed=take,
                                         points_forgiven=forgive, recorded_at=now)
    await settlement.purchase_refunded(tx, purchase.id, refund.id, purchase.refunded_fen, due.refunded,
                                       purchase.amount_fen, now)
    await earning.cancel_pending(tx, purchase.id, due.refunded, purchase.amount_fen, now)
    await earning.give_back_counters(tx, purchase.id, acct.member_id, purchase.occurred_at, purchase.amount_fen,
                                     purchase.refunded_fen, due.refunded)
    if due.growth_back:
        await tiers.add_growth(tx, acct.member_id, acct.tier_id, acct.growth_value, -due.growth_back, reason,
                               "purchase_refund", str(purchase.id), now)
    return RefundResult(take, acct.spendable)


@retry_on_deadlock()
async def refund_purchase(
    identity: IntegrationIdentity, merchant_code: str, receipt_no: str, refund_amount_fen: int, idempotency_key: str,
) -> RefundResult:
    """Settles points in proportion to the refunded amount (cumulatively, so that refunding the
    whole amount in parts settles exactly what was earned). The purchase's own lot gives back first;
    what it no longer holds because it expired is forgiven (the member never used it); the rest is
    taken from other lots by earliest expiry, and what still cannot be covered becomes a negative
    balance (a claw-back debt) that blocks spending until later earnings pay it off."""
    key = check_key(idempotency_key)
    receipt_no = check_receipt_no(receipt_no)
    check_amount(refund_amount_fen, "refundAmountFen")
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    require_merchant(identity, merchant.id, ["merchantCode"])
    digest = idempotency.request_hash("purchaseRefund", {
        "merchantCode": merchant_code, "receiptNo": receipt_no, "refundAmountFen": refund_amount_fen,
    })
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, scope_of(identity), key, digest, ["idempotencyKey"])
        if stored is not None:
            return RefundResult(**stored)
        result = await _refund(tx, merchant, receipt_no, refund_amount_fen, clock.now())
        await idempotency.remember(tx, record_id, asdict(result))
    return result
