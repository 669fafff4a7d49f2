"""Accounts: the lock every points move starts with, and what it reads."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api import locks
from api.config import settings
from api.db import Tx
from api.models import PointsEntry
from api.services import clock
from api.services.ledger import sql

KINDS = ("EARN", "SPEND", "EXPIRE", "REVERSE", "ADJUST")
EXPIRE_REASON = "积分过期"


@dataclass
class LockedAccount:
    id: int
    member_id: int
    balance: int
    tier_id: int
    growth_value: int
    due: int = 0  # points in lots already past their expiry (expired by expire_account)
    held: int = 0  # points set aside by live holds (not spendable)

    @property
    def spendable(self) -> int:
        """Points a new spend or hold may take (after expire_account has run)."""
        return self.balance - self.due - self.held


@dataclass(frozen=True)
class Entry:
    id: int
    account_id: int
    kind: str
    points: int
    balance_after: int
    reason: str
    occurred_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, e: PointsEntry) -> Entry:
        return cls(e.id, e.account_id, e.kind, e.points, e.balance_after, e.reason, e.occurred_at, e.expires_at)


def expiry_for(earned_at: datetime) -> datetime:
    """Expiry of points earned at `earned_at` under the configured policy."""
    cfg = settings()
    if cfg.expiry_policy == "year_end":
        local = earned_at.astimezone(clock.SHANGHAI)
        end = datetime(local.year + 2, 1, 1, tzinfo=clock.SHANGHAI)  # end of the year after the earn
        return clock.to_utc(end)
    return clock.add_months(earned_at, cfg.expiry_months)


async def lock_account(tx: Tx, member_id: int, as_of: datetime | None = None) -> LockedAccount | None:
    """Locks the member's row and account row (PostgreSQL; a MEMBER lock in `api.locks`' order) and
    reads what a points move needs, including how many points are due for expiry at `as_of` (default
    now) and how many are held. Due and held points are read by a statement of their own, after the
    lock: a subquery of the locking statement sees the snapshot from before the lock wait (PostgreSQL
    re-reads only the locked rows), so a move committed meanwhile (a refund giving points back to an
    expired lot, a new hold) would be missed."""
    as_of = as_of or clock.now()
    acct = await lock_account_row(member_id)
    if acct is None:
        return None
    amounts = await tx.fetchrow(sql.DUE_AND_HELD, acct.id, as_of)
    assert amounts is not None  # two aggregates: always one row
    acct.due, acct.held = int(amounts["due"]), int(amounts["held"])
    return acct


async def lock_account_row(member_id: int) -> LockedAccount | None:
    """The lock of `lock_account` alone, with due and held left at 0: for a caller that reads them
    itself in a statement of its own after the lock (folded with its other reads, one round trip), and
    then sets `due` and `held` before anything spends."""
    found = await locks.statement(locks.Rank.MEMBER, sql.LOCK_ACCOUNT, member_id, ids=(member_id,), of="a, m")
    if not found:
        return None
    row = found[0]
    return LockedAccount(row["id"], member_id, row["balance"], row["tier_id"], row["growth_value"])


def shortfall(acct: LockedAccount) -> str:
    """Why a spend was refused, for the member."""
    if acct.balance < 0:
        return "a refund claw-back is outstanding"
    held = f" ({acct.held} more are held for unpaid orders)" if acct.held else ""
    return f"{acct.spendable} points are spendable{held}"
