"""The member's side of a stay: the points account a move locks, and the stay's points hold
(`ledger.hold`, source_type "parking_session"), held from `parkingOffsetApply` until the exit."""
from __future__ import annotations

from datetime import datetime

from api.db import Tx
from api.models import PointsHold
from api.services import ledger
from api.services.parking.common import no_member


async def lock_account(tx: Tx, member_id: int, now: datetime) -> ledger.LockedAccount:
    """Locks the member's account (Rank.MEMBER) and expires what is due first."""
    acct = await ledger.lock_account(tx, member_id, now)
    if acct is None:
        raise no_member()
    await ledger.expire_account(tx, acct, now)
    return acct


async def release_hold(tx: Tx, acct: ledger.LockedAccount | None, hold_id: int | None, now: datetime) -> int:
    """Releases a stay's hold if it is live; returns the points it still held."""
    if hold_id is None:
        return 0
    found = await PointsHold.get_or_none(id=hold_id, status="HELD")
    if found is None or not await ledger.release(tx, hold_id):
        return 0
    if found.expires_at <= now:
        return 0
    if acct is not None:
        acct.held -= found.points
    return found.points


async def live_hold(hold_id: int | None, now: datetime) -> PointsHold | None:
    """The hold if it still holds its points at `now`."""
    if hold_id is None:
        return None
    found = await PointsHold.get_or_none(id=hold_id)
    return found if found is not None and found.status == "HELD" and found.expires_at > now else None
