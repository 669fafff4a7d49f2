"""The points liability for finance: points members hold and their cash value, points that expired
(breakage) per Asia/Shanghai month, and points issued and redeemed per merchant, as of a moment."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from tortoise.functions import Sum
from tortoise.queryset import QuerySet

from api.models import JournalEntry, PointsEntry, Purchase, TillPayment
from api.services import clock
from api.services.settlement.journal import points_value_fen

MONTHS = 12  # expired points per month for this many months, the as-of month included


@dataclass(frozen=True)
class MonthExpired:
    month: date  # the month's first day
    points: int
    value_fen: int


@dataclass(frozen=True)
class MerchantPoints:
    merchant_id: int
    issued: int  # earned on its receipts, less what refunds took back
    redeemed: int  # paid at its tills, plus the points of its vouchers written off


@dataclass(frozen=True)
class Liability:
    as_of: datetime
    points_outstanding: int
    value_fen: int
    expired_by_month: tuple[MonthExpired, ...]
    by_merchant: tuple[MerchantPoints, ...]


def _month_starts(as_of: datetime) -> list[date]:
    """The as-of month and the MONTHS − 1 before it, oldest first."""
    local = as_of.astimezone(clock.SHANGHAI).date()
    year, month = local.year, local.month
    starts = []
    for _ in range(MONTHS):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(0), clock.SHANGHAI).astimezone(timezone.utc)


async def _sum(query: QuerySet[Any], field: str) -> int:
    row = await query.annotate(total=Sum(field)).first().values("total")
    return int(row["total"] or 0) if row else 0


async def _expired(as_of: datetime) -> tuple[MonthExpired, ...]:
    starts = _month_starts(as_of)
    out = []
    for i, start in enumerate(starts):
        end = _instant(starts[i + 1]) if i + 1 < len(starts) else as_of
        points = -await _sum(PointsEntry.filter(kind="EXPIRE", occurred_at__gte=_instant(start), occurred_at__lt=end),
                             "points")
        out.append(MonthExpired(start, points, points_value_fen(points)))
    return tuple(out)


async def _by_merchant(as_of: datetime) -> tuple[MerchantPoints, ...]:
    issued: dict[int, int] = {}
    redeemed: dict[int, int] = {}
    rows = await Purchase.filter(recorded_at__lte=as_of).annotate(
        earned=Sum("points_earned"), back=Sum("points_reversed")).group_by("merchant_id").values(
        "merchant_id", "earned", "back")
    for r in rows:
        issued[r["merchant_id"]] = int(r["earned"] or 0) - int(r["back"] or 0)
    for r in await TillPayment.filter(recorded_at__lte=as_of).annotate(total=Sum("points")).group_by(
            "merchant_id").values("merchant_id", "total"):
        redeemed[r["merchant_id"]] = int(r["total"] or 0)
    for r in await JournalEntry.filter(kind="VOUCHER_WRITTEN_OFF", booked_at__lte=as_of).annotate(
            total=Sum("points")).group_by("merchant_id").values("merchant_id", "total"):
        redeemed[r["merchant_id"]] = redeemed.get(r["merchant_id"], 0) + int(r["total"] or 0)
    ids = sorted(set(issued) | set(redeemed))
    return tuple(MerchantPoints(m, issued.get(m, 0), redeemed.get(m, 0)) for m in ids)


async def report(as_of: datetime | None) -> Liability:
    """As of `as_of` (default now): outstanding is the sum of every entry booked by then."""
    moment = clock.check_as_of(as_of) if as_of is not None else clock.now()
    outstanding = await _sum(PointsEntry.filter(occurred_at__lte=moment), "points")
    return Liability(moment, outstanding, points_value_fen(max(outstanding, 0)), await _expired(moment),
                     await _by_merchant(moment))
