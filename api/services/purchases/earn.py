"""Booking one receipt: the one-statement earn on PostgreSQL, the general earn everywhere else."""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import asdict
from datetime import datetime

from api import locks
from api.db import Tx, transaction
from api.models import Purchase
from api.services import clock, earning, idempotency, ledger, merchants, settlement, tiers
from api.services.errors import DomainError, ErrorCode
from api.services.notifications import outbox
from api.services.purchases import sql
from api.services.purchases.checks import Checked, PurchaseResult, check_amount, check_receipt_no, yuan

# Invites qualified by the receipts of the running group (their rewards are booked after commit).
qualified_invites: ContextVar[list[int] | None] = ContextVar("qualified_invites", default=None)


async def book(tx: Tx, item: Checked, now: datetime) -> PurchaseResult:
    """Claims the key and earns. A DomainError leaves nothing but the claim written (the caller's
    transaction rolls it back, or a group releases it), so no savepoint is needed. An invite that
    this purchase qualifies (the invitee's first purchase) is noted in `qualified_invites`."""
    qualified = qualified_invites.get()
    if qualified is None:
        qualified = []
        qualified_invites.set(qualified)
    record_id = None
    if tx.postgres and item.plan is not None:
        record_id, result = await earn_in_one_statement(tx, item, now, qualified)
        if result is not None:
            await settlement.points_issued(tx, item.merchant.id, result.purchase_id, result.points_earned, now)
            return result
    if record_id is None:  # SQLite, or a key used before
        record_id, stored = await idempotency.claim(tx, item.scope, item.key, item.digest, ["idempotencyKey"])
        if stored is not None:
            return PurchaseResult(**stored)
    result = await earn(tx, item.member_id, item.merchant, item.receipt_no, item.amount_fen, item.occurred_at, now,
                        qualified, item.plan.segments if item.plan is not None else None)
    await settlement.points_issued(tx, item.merchant.id, result.purchase_id, result.points_earned, now)
    await idempotency.remember(tx, record_id, asdict(result))  # (over)writes the claim's result
    return result


async def earn_in_one_statement(
    tx: Tx, item: Checked, now: datetime, qualified: list[int],
) -> tuple[int | None, PurchaseResult | None]:
    """Returns (claimed record id, result); the result is None when the general path must go on."""
    plan = item.plan
    assert plan is not None
    reason = f"{item.merchant.name} 消费 {yuan(item.amount_fen)}"
    locks.enter(locks.Rank.MEMBER, (item.member_id,))  # the statement locks the member's rows itself
    row = await tx.fetchrow(
        sql.EARN, item.member_id, item.merchant.id, item.receipt_no, item.amount_fen, plan.tier_ids, plan.points,
        item.occurred_at, now, ledger.expiry_for(item.occurred_at), reason, item.scope, item.key, item.digest,
        plan.growth, plan.breakdowns,
    )
    assert row is not None  # the final SELECT always returns one row
    if row["claim_id"] is None:
        return None, None  # the key was used before: the general path returns or refuses the first result
    if row["balance"] is None:
        raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
    if row["due"] or row["balance"] < 0 or not row["planned"] or row["stale"]:
        # The general path expires what is due or pays the debt off first, or reads due and held
        # points again after a lock wait.
        return row["claim_id"], None
    if row["purchase_id"] is None:
        raise DomainError(ErrorCode.DUPLICATE_RECEIPT, "this receipt has been recorded already", ["receiptNo"])
    if row["invite_id"] is not None:
        qualified.append(int(row["invite_id"]))
    points = int(row["points_earned"])
    result = PurchaseResult(row["purchase_id"], item.receipt_no, item.amount_fen, points,
                            int(row["balance"]) + points - int(row["held"]))
    upgraded = row["upgraded_tier_id"]
    await outbox.on_receipt(tx, item.member_id, result.purchase_id, points, result.points_balance,
                            None if upgraded is None else (int(upgraded), (await tiers.tier_by_id(int(upgraded))).name))
    return row["claim_id"], result


async def earn(
    tx: Tx, member_id: int, merchant: merchants.MerchantInfo, receipt_no: str, amount_fen: int,
    occurred_at: datetime, now: datetime, qualified: list[int] | None = None, segments: frozenset[int] | None = None,
) -> PurchaseResult:
    """The general earn (SQLite, and PostgreSQL when a rule needs state): lock, evaluate the rules
    with the member's counters, book the spendable part now and the rest as pending points. `segments`:
    the plan's answer about the segments of the receipt's rules (None: asked here)."""
    acct = await ledger.lock_account(tx, member_id)
    if acct is None:
        raise DomainError(ErrorCode.NOT_FOUND, "unknown member code", ["memberCode"])
    rules = await earning.active_rules("PURCHASE")
    first = (any(r.conditions.first_purchase for r in rules)
             and not await Purchase.filter(member_id=member_id).exists())
    facts = await earning.facts_for(acct, "PURCHASE", occurred_at, amount_fen=amount_fen, merchant_code=merchant.code,
                                    merchant_category=merchant.category, first_purchase=first, segments=segments)
    # Segments (of rules restricted to one) as the member is before this receipt, as the fast path's plan sees them.
    facts = await earning.with_segments(member_id, rules, facts)
    purchase_id = await tx.fetchval(sql.INSERT_PURCHASE, merchant.id, member_id, receipt_no, amount_fen, occurred_at,
                                    now)
    if purchase_id is None:
        raise DomainError(ErrorCode.DUPLICATE_RECEIPT, "this receipt has been recorded already", ["receiptNo"])
    await ledger.expire_account(tx, acct, now)
    applied = await earning.apply(
        tx, acct, facts, reason=f"{merchant.name} 消费 {yuan(amount_fen)}", source_type="purchase",
        source_ref=str(purchase_id), occurred_at=occurred_at, now=now, purchase_id=purchase_id,
    )
    await Purchase.filter(id=purchase_id).update(points_earned=applied.points, growth_earned=applied.growth)
    invite_id = await tx.fetchval(sql.QUALIFY_INVITE, purchase_id, now, member_id)
    if invite_id is not None and qualified is not None:
        qualified.append(int(invite_id))
    await outbox.on_receipt(tx, member_id, purchase_id, applied.points, acct.spendable, None)  # upgrade: add_growth
    return PurchaseResult(purchase_id, receipt_no, amount_fen, applied.points, acct.spendable)


async def import_purchase(
    member_id: int, merchant_code: str, receipt_no: str, amount_fen: int, occurred_at: datetime,
) -> PurchaseResult | None:
    """Books a historic purchase (seeds, data migration from another system): the same earn as a
    till's, without a member code. Returns None when the receipt was booked already."""
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    check_amount(amount_fen, "amountFen")
    try:
        async with transaction() as tx:
            return await earn(tx, member_id, merchant, check_receipt_no(receipt_no), amount_fen,
                              clock.to_utc(occurred_at), clock.now())
    except DomainError as err:
        if err.code is ErrorCode.DUPLICATE_RECEIPT:
            return None
        raise
