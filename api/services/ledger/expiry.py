"""Expiry: an account's due lots before it spends, and the set-based run over every account."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from api import locks
from api.db import Tx, fetch, transaction
from api.models import PointsLot
from api.services import clock
from api.services.ledger import sql
from api.services.ledger.accounts import EXPIRE_REASON, Entry, LockedAccount
from api.services.ledger.moves import insert_entry, insert_moves


async def expire_account(tx: Tx, acct: LockedAccount, as_of: datetime) -> Entry | None:
    """Expires this account's lots due at `as_of` (called before spending, so that only points
    valid now are spent). Free when the lock saw nothing due."""
    if not acct.due:
        return None
    acct.due = 0  # (spendable is unchanged: balance falls by what was due)
    rows = await PointsLot.filter(account_id=acct.id, kind="EARN", remaining__gt=0, expires_at__lte=as_of).values_list(
        "id", "remaining")
    total = sum(remaining for _, remaining in rows)
    if not total:
        return None
    entry, _ = await insert_entry(tx, acct, "EXPIRE", -total, EXPIRE_REASON, "expiry", None, as_of)
    await insert_moves(tx, entry.id, [(lot_id, -remaining) for lot_id, remaining in rows])
    return entry


@dataclass(frozen=True)
class ExpiryResult:
    lots_expired: int
    points_expired: int
    accounts: int


EXPIRY_CHUNK = 2000  # accounts per transaction


async def expire_due(as_of: datetime) -> ExpiryResult:
    """Expires every lot due at `as_of`, in set-based statements, EXPIRY_CHUNK accounts per transaction.
    The accounts with due lots are listed once (one index scan); each chunk then locks those of its
    accounts that still have lots due and works on them alone, so the run's cost follows the due lots,
    not the size of the ledger. Safe to repeat and to run twice at once: each chunk locks its accounts
    first and then only finds lots that still have points left."""
    candidates = [int(r["account_id"]) for r in await fetch(sql.EXPIRY_CANDIDATES, as_of)]
    run = f"{as_of.isoformat()}#{uuid.uuid4().hex[:12]}"
    lots = points = accounts = 0
    for i in range(0, len(candidates), EXPIRY_CHUNK):
        # Each chunk's entries carry a reference of their own: the statement that writes the moves finds
        # them by it, so it reads this chunk's entries only, not every chunk's before it (quadratic).
        chunk = await _expire_chunk(as_of, f"{run}#{i // EXPIRY_CHUNK}", candidates[i:i + EXPIRY_CHUNK])
        lots, points, accounts = lots + chunk[0], points + chunk[1], accounts + chunk[2]
    return ExpiryResult(lots, points, accounts)


async def _expire_chunk(as_of: datetime, run: str, candidate_ids: list[int]) -> tuple[int, int, int]:
    async with transaction() as tx:
        # The accounts are picked by a subquery that sees the snapshot from before the lock wait: an
        # account whose lot came due meanwhile is not locked. Every later statement is limited to the
        # accounts actually locked (in member order, as every points move takes them).
        locked = await locks.statement(locks.Rank.MEMBER, sql.expiry_accounts(candidate_ids), as_of)
        if not locked:
            return 0, 0, 0
        locks.enter(locks.Rank.MEMBER, [int(r["member_id"]) for r in locked])
        chunk = sql.expiry_chunk([int(r["id"]) for r in locked])
        stats = await tx.fetchrow(chunk["stats"], as_of)
        if stats is None or not stats["lots"]:
            return 0, 0, 0
        await tx.execute(chunk["entries"], as_of, EXPIRE_REASON, run)
        await tx.execute(chunk["moves"], as_of, run)
        await tx.execute(chunk["balances"], as_of, clock.now())
        await tx.execute(chunk["lots"], as_of)
        return int(stats["lots"]), int(stats["points"]), int(stats["accounts"])
