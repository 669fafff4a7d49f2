"""KPIs of a range of Asia/Shanghai days (docs/insight.md defines each): closed days from the rollup,
days not rolled yet (today, or all of them before the first scheduled run) live from the base tables
with the same aggregate; distinct members of the range from the rolled days' bitmaps on PostgreSQL, from
the base tables on SQLite."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from api.config import settings
from api.db import fetch, is_postgres
from api.models.insight import KpiDay
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.insight import bitmaps, sql
from api.services.insight.rollup import first_day

MAX_RANGE_DAYS = 3 * 366
COUNTS = ("members_new", "purchases", "member_sales_fen", "points_issued", "points_redeemed", "points_expired",
          "check_ins", "task_completions", "redemptions", "flash_sale_orders", "draw_plays", "parking_offsets",
          "parking_offset_fen")


@dataclass(frozen=True)
class KpiFigures:
    members_total: int = 0
    members_new: int = 0
    members_active: int = 0
    purchases: int = 0
    member_sales_fen: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    points_issued: int = 0
    points_redeemed: int = 0
    points_expired: int = 0
    points_outstanding: int = 0
    check_ins: int = 0
    task_completions: int = 0
    redemptions: int = 0
    flash_sale_orders: int = 0
    draw_plays: int = 0
    parking_offsets: int = 0
    parking_offset_fen: int = 0

    @property
    def average_ticket_fen(self) -> int:
        return self.member_sales_fen // self.purchases if self.purchases else 0

    @property
    def repurchase_rate_permille(self) -> int:
        return self.repeat_buyers * 1000 // self.buyers if self.buyers else 0

    @property
    def liability_fen(self) -> int:
        return self.points_outstanding * 100 // settings().pay_points_per_yuan

    @property
    def breakage_rate_permille(self) -> int:
        spent = self.points_expired + self.points_redeemed
        return self.points_expired * 1000 // spent if spent > 0 else 0


@dataclass(frozen=True)
class KpiDayFigures(KpiFigures):
    day: date = date(2000, 1, 1)


@dataclass(frozen=True)
class Kpis(KpiFigures):
    daily: list[KpiDayFigures] = field(default_factory=list)


def check_range(start: date, end: date) -> None:
    if end < start:
        raise DomainError(ErrorCode.INVALID_INPUT, "to must not be before from", ["to"])
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_RANGE_DAYS} days", ["to"])


def _ints(row: dict) -> dict[str, int]:
    return {k: int(v or 0) for k, v in row.items()}


async def _live_span(start: datetime, end: datetime) -> dict[str, int]:
    return _ints(dict((await fetch(sql.SPAN_COUNTS, start, end))[0]))


ROW_FIELDS = ("day", *COUNTS, "buyers", "repeat_buyers", "members_active", "points_net")


async def kpis(start: date, end: date) -> Kpis:
    check_range(start, end)
    today = clock.business_day(clock.now())
    rows = {_day(r["day"]): r for r in await KpiDay.filter(day__gte=start, day__lte=end).values(*ROW_FIELDS)}
    daily: list[KpiDayFigures] = []
    # Running totals up to the day before `start`: rolled days plus live spans of unrolled days.
    members, points = await _totals_before(start, await first_day())
    for i in range((end - start).days + 1):
        day = start + timedelta(days=i)
        row = rows.get(day)
        if row is not None and day < today:
            counts = {c: int(row[c]) for c in ROW_FIELDS[1:]}
        elif day > today:  # nothing is recorded in the future (receipts and runs are refused there)
            counts = dict.fromkeys(ROW_FIELDS[1:], 0)
        else:
            counts = await _live_span(*clock.day_bounds(day))
        members += counts["members_new"]
        points += counts["points_net"]
        daily.append(KpiDayFigures(day=day, members_total=members, points_outstanding=points,
                                   **{c: counts[c] for c in (*COUNTS, "buyers", "repeat_buyers", "members_active")}))
    sums = {c: sum(getattr(d, c) for d in daily) for c in COUNTS}
    active, buyers, repeat = await _distinct(start, end, daily, set(rows), today)
    return Kpis(members_total=members, points_outstanding=points, members_active=active, buyers=buyers,
                repeat_buyers=repeat, daily=daily, **sums)


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def _totals_before(start: date, first: date | None) -> tuple[int, int]:
    """Members and outstanding points at the start of `start`: the rolled days' sums (one aggregate) plus
    live spans of the days before `start` that are not rolled."""
    if first is None or first >= start:
        return 0, 0
    row = (await fetch(sql.ROLLED_BEFORE, first, start))[0]
    members, points = int(row["members"] or 0), int(row["points"] or 0)
    if int(row["days"]) == (start - first).days:
        return members, points  # every day before the range is rolled
    rolled = {_day(d) for d in await KpiDay.filter(day__gte=first, day__lt=start).values_list("day", flat=True)}
    day = first
    while day < start:  # unrolled days before the range, as contiguous spans
        if day in rolled:
            day += timedelta(days=1)
            continue
        span_end = day
        while span_end + timedelta(days=1) < start and span_end + timedelta(days=1) not in rolled:
            span_end += timedelta(days=1)
        counts = await _live_span(clock.day_bounds(day)[0], clock.day_bounds(span_end)[1])
        members, points = members + counts["members_new"], points + counts["points_net"]
        day = span_end + timedelta(days=1)
    return members, points


async def _distinct(start: date, end: date, daily: list[KpiDayFigures], rows: set[date],
                    today: date) -> tuple[int, int, int]:
    """Distinct active members, purchasers and repeat purchasers of the whole range."""
    if start == end:
        d = daily[0]
        return d.members_active, d.buyers, d.repeat_buyers
    span_start, span_end = clock.day_bounds(start)[0], clock.day_bounds(end)[1]
    if not is_postgres():
        counts = await _live_span(span_start, span_end)
        return counts["members_active"], counts["buyers"], counts["repeat_buyers"]
    live_days = [d.day for d in daily if (d.day not in rows or d.day >= today) and d.day <= today]
    if len(live_days) > 31:  # mostly unrolled: the base tables answer as fast
        counts = await _live_span(span_start, span_end)
        return counts["members_active"], counts["buyers"], counts["repeat_buyers"]
    bits = ("", "", "")
    if live_days:
        ranges = [clock.day_bounds(d) for d in live_days]
        bits = await _union_bits(ranges)
    rolled_end = max([d.day for d in daily if d.day not in live_days], default=start - timedelta(days=1))
    width = int((await fetch(sql.BITS_WIDTH, start, rolled_end))[0]["w"] or 0) if rolled_end >= start else 0
    width = max(width, *(bitmaps.width(b) for b in bits), 8)
    row = (await fetch(sql.distinct_over_range(width), start, rolled_end, *bits))[0]
    return int(row["active"] or 0), int(row["buyers"] or 0), int(row["repeat"] or 0)


async def _union_bits(ranges: list[tuple[datetime, datetime]]) -> tuple[str, str, str]:
    """One live block of bitmaps over several unrolled days (a member counted once across them)."""
    active: set[int] = set()
    counts: dict[int, int] = {}
    for lo, hi in ranges:
        for r in await fetch(sql.ACTIVE_IDS, lo, hi):
            active.add(int(r["member_id"]))
        for r in await fetch(sql.BUYER_COUNTS, lo, hi):
            counts[int(r["member_id"])] = counts.get(int(r["member_id"]), 0) + int(r["n"])
    return (bitmaps.hex_bits(active), bitmaps.hex_bits(counts),
            bitmaps.hex_bits(m for m, n in counts.items() if n >= 2))
