"""Expiry reminders, queued by the scheduled run: points of a lot expiring within 30 days (and again
within 7), vouchers expiring within 3 days. Once per lot (voucher) and threshold: the notification's
(topic, source_ref) is unique, so a rerun writes nothing new. Windows do not overlap (30: more than 7 and
at most 30 days away; 7: at most 7), so a lot first seen 5 days before its expiry gets the 7-day reminder only."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from api.db import Tx, transaction
from api.services import clock
from api.services.notifications import sql
from api.services.notifications.settings import notify_settings

POINTS_THRESHOLDS = (30, 7)
VOUCHER_DAYS = 3


@dataclass(frozen=True)
class ReminderResult:
    points_reminders: int
    voucher_reminders: int


def _day(postgres: bool, column: str) -> str:
    return (sql.DAY_PG if postgres else sql.DAY_SQLITE).format(col=column)


async def _insert(tx: Tx, statement: str, *args: object) -> int:
    """Runs a set-based INSERT and returns how many rows it wrote."""
    if tx.postgres:
        return int(await tx.fetchval(sql.COUNTED_PG.format(insert=statement.strip()), *args))
    return await tx.execute(statement, *args)


async def queue_reminders(as_of: datetime | None = None) -> ReminderResult:
    now = as_of or clock.now()
    cfg = notify_settings()
    points = vouchers = 0
    bounds = list(POINTS_THRESHOLDS) + [0]
    async with transaction() as tx:
        for days, closer in zip(bounds, bounds[1:], strict=False):
            channel = cfg.push_channel("POINTS_EXPIRING")
            points += await _insert(tx, sql.REMIND_LOTS.format(day=_day(tx.postgres, "l.expires_at")), now,
                                       now + timedelta(days=days), str(days), channel,
                                       "DELIVERED" if channel == "INBOX" else "PENDING", now + timedelta(days=closer))
        channel = cfg.push_channel("VOUCHER_EXPIRING")
        vouchers += await _insert(tx, sql.REMIND_VOUCHERS.format(day=_day(tx.postgres, "v.valid_until")), now,
                                     now + timedelta(days=VOUCHER_DAYS), str(VOUCHER_DAYS), channel,
                                     "DELIVERED" if channel == "INBOX" else "PENDING", now)
    return ReminderResult(points, vouchers)
