"""Pending points: points of a purchase that wait for its return window (not in the balance, not in
any lot). A refund inside the window cancels them in proportion; the scheduled run releases the rest
as an EARN entry when the window closes.

Lock order (api/locks.py): the member's account, then the purchase (`Rank.PURCHASE`), then its
pending row (`Rank.PENDING`), as a refund takes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import F

from api import locks
from api.db import Tx, transaction
from api.models import EarnBreakdown, Merchant, PendingPoints, Purchase
from api.services import clock, ledger

RELEASE_BATCH = 500


async def cancel_pending(tx: Tx, purchase_id: int, refunded_fen: int, amount_fen: int, now: datetime) -> int:
    """A refund before release cancels pending points in proportion (cumulatively) to what has been
    refunded; the spendable balance is not touched. Returns the points cancelled now. Runs under the
    member's account lock, after the purchase is locked."""
    found = await PendingPoints.filter(purchase_id=purchase_id).only("id").first()
    if found is None:
        return 0
    row = await locks.row(locks.Rank.PENDING, PendingPoints, found.id)
    if row is None or row.status != "PENDING":
        return 0
    before = int(row.points_cancelled)
    row.points_cancelled = int(row.points) * refunded_fen // amount_fen
    if row.points_cancelled >= int(row.points):
        row.status, row.settled_at = "CANCELLED", now
    await row.save(update_fields=["points_cancelled", "status", "settled_at"])
    return row.points_cancelled - before


@dataclass(frozen=True)
class ReleaseResult:
    released: int
    points: int


async def release_pending(as_of: datetime) -> ReleaseResult:
    """Books every pending row whose window closed by `as_of` as an EARN entry. Each row in its own
    transaction after locking the account, and only if it is still PENDING: safe to repeat and to
    run on two servers at once."""
    released = points = 0
    last_id = 0
    while True:
        rows = await PendingPoints.filter(status="PENDING", release_at__lte=as_of, id__gt=last_id) \
            .order_by("id").limit(RELEASE_BATCH).values_list("id", "member_id", "purchase_id")
        if not rows:
            break
        for pending_id, member_id, purchase_id in rows:
            last_id = pending_id
            async with transaction() as tx:
                got = await _release_one(tx, pending_id, member_id, purchase_id)
            if got is not None:
                released, points = released + 1, points + got
    return ReleaseResult(released, points)


async def _release_one(tx: Tx, pending_id: int, member_id: int, purchase_id: int) -> int | None:
    acct = await ledger.lock_account(tx, member_id)
    assert acct is not None
    purchase = await locks.row(locks.Rank.PURCHASE, Purchase, purchase_id)
    row = await locks.row(locks.Rank.PENDING, PendingPoints, pending_id)
    if purchase is None or row is None or row.status != "PENDING":
        return None  # another run released it, or a refund cancelled it all
    net = int(row.points) - int(row.points_cancelled)
    now = clock.now()
    await ledger.expire_account(tx, acct, now)
    if net > 0:
        merchant = await Merchant.get(purchases__id=purchase_id)
        entry = await ledger.credit(
            tx, acct, points=net, kind="EARN", reason=f"{merchant.name} 消费积分到账（退货期满）",
            source_type="purchase", source_ref=str(purchase_id), occurred_at=row.release_at,
        )
        row.entry_id = entry.id
        await EarnBreakdown.create(entry_id=entry.id, breakdown=row.breakdown)
    # The purchase now owns all of its points; what refunds cancelled counts as settled already.
    await Purchase.filter(id=purchase_id).update(points_earned=F("points_earned") + int(row.points),
                                                 points_reversed=F("points_reversed") + int(row.points_cancelled))
    row.status, row.settled_at = "RELEASED", now
    await row.save(update_fields=["status", "entry_id", "settled_at"])
    return net
