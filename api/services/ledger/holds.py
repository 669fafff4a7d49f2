"""Holds: points set aside for an order that waits (payment, a parking exit)."""
from __future__ import annotations

from datetime import datetime

from api import locks
from api.db import Tx
from api.models import PointsAccount, PointsHold
from api.services import clock
from api.services.ledger import sql
from api.services.ledger.accounts import Entry, LockedAccount
from api.services.ledger.moves import debit


async def hold(
    tx: Tx, acct: LockedAccount, *, points: int, source_type: str, source_ref: str, expires_at: datetime,
) -> int | None:
    """Sets `points` aside until `expires_at`, or returns None when they are not spendable for that
    long: points that will have expired by then cannot be held (so a hold can always be captured
    before it lapses). Call after expire_account. Returns the hold's id.
    The account row is written too (a new row version): a statement that waited for this account's
    lock and read held points with its older snapshot (the one-statement earn) sees that it is stale."""
    assert points > 0
    if acct.spendable - int(await tx.fetchval(sql.EXPIRING_BY, acct.id, expires_at)) < points:
        return None
    now = clock.now()
    if tx.postgres:
        hold_id = await tx.fetchval(sql.HOLD_AND_TOUCH_PG, acct.id, points, source_type, source_ref, expires_at, now)
    else:
        hold_id = (await PointsHold.create(account_id=acct.id, points=points, status="HELD", source_type=source_type,
                                           source_ref=source_ref, expires_at=expires_at, created_at=now)).id
        await PointsAccount.filter(id=acct.id).update(updated_at=now)
    acct.held += points
    return hold_id


async def capture(tx: Tx, acct: LockedAccount, hold_id: int, *, reason: str, source_type: str, source_ref: str,
                  occurred_at: datetime) -> Entry:
    """Spends a live hold: one SPEND entry, lots earliest expiry first. Should a refund claw-back have
    taken the held points meanwhile, the shortfall becomes debt like any claw-back (docs/ledger.md)."""
    row = await tx.fetchrow(sql.CAPTURE_HOLD, hold_id, occurred_at, acct.id)
    assert row is not None, f"hold {hold_id} is not live"
    points = int(row["points"])
    live_until = clock.parse_db_time(row["expires_at"])
    if live_until is not None and live_until > occurred_at:
        acct.held -= points
    entry = await debit(tx, acct, points=points, kind="SPEND", reason=reason, source_type=source_type,
                        source_ref=source_ref, occurred_at=occurred_at, allow_debt=True)
    await tx.execute(sql.LINK_HOLD, entry.id, hold_id)
    return entry


async def release(tx: Tx, hold_id: int) -> bool:
    """Ends a hold without spending; False when it was no longer live. When the caller holds the
    account's lock, the account row is written too (see `hold`); a caller without it (an order that
    lapses) must not take it here, below the locks it holds."""
    now = clock.now()
    row = await tx.fetchrow(sql.RELEASE_HOLD, hold_id, now)
    if row is None:
        return False
    if (int(locks.Rank.MEMBER), int(row["member_id"])) in locks.held():
        await PointsAccount.filter(id=row["account_id"]).update(updated_at=now)
    return True
