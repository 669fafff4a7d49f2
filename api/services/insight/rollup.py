"""The KPI daily rollup: one row per closed Asia/Shanghai day in insight_kpi_day, written set-based by the
scheduled run from the same aggregate that answers live days (api/services/insight/sql.py SPAN_COUNTS).

Which days a run rolls: every closed day from the first day with data that has no row yet; yesterday
(rows of transactions that committed just after midnight); and every day that a row written since the
watermark before last belongs to (a receipt recorded up to 30 days late, a backdated expiry run). The
watermarks are max ids of points_entry, purchase and member read before rolling; scanning from the one
before last leaves a whole run interval for transactions that took their id earlier but committed later.
Each day is one short transaction that touches one rollup row.
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from api import locks
from api.db import Tx, fetch, is_postgres, transaction
from api.models.insight import InsightState, KpiDay
from api.services import clock
from api.services.insight import bitmaps, sql

STATE = "rollup"
ROLLUP_LOCK_SPACE = 4714  # the first key of pg_advisory_xact_lock(int, int) for a rolled day


@dataclass(frozen=True)
class RollupResult:
    days_rolled: int
    seconds: float


def _to_date(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return clock.business_day(value)
    if isinstance(value, date):
        return value
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    parsed = clock.parse_db_time(text)
    return clock.business_day(parsed) if parsed else None


async def first_day() -> date | None:
    """The first Asia/Shanghai day any KPI source has a row (None on an empty mall)."""
    row = (await fetch(sql.FIRST_MOMENT))[0]
    days = [d for d in (_to_date(row[k]) for k in ("m", "e", "p")) if d is not None]
    return min(days) if days else None


async def roll_day(tx: Tx, day: date) -> None:
    await locks.advisory(locks.Rank.SHARED, ROLLUP_LOCK_SPACE, day.isoformat())  # one writer of a day at once
    start, end = clock.day_bounds(day)
    await tx.execute(sql.roll_day(tx.postgres), start, end, day, clock.now())
    if tx.postgres:
        active, buyers, multi = await day_bits(tx, start, end)
        await tx.execute(sql.SET_BITS, day, active, buyers, multi)


async def day_bits(tx: Tx | None, start: datetime, end: datetime) -> tuple[str, str, str]:
    """Hex bitmaps of a span's active members, purchasers, and members with two or more purchases."""
    run = tx.fetch if tx is not None else fetch
    active = [int(r["member_id"]) for r in await run(sql.ACTIVE_IDS, start, end)]
    counts = [(int(r["member_id"]), int(r["n"])) for r in await run(sql.BUYER_COUNTS, start, end)]
    return (bitmaps.hex_bits(active), bitmaps.hex_bits(m for m, _ in counts),
            bitmaps.hex_bits(m for m, n in counts if n >= 2))


BACKFILL_DAYS_PER_RUN = 400


async def run(as_of: datetime | None = None, max_days: int = BACKFILL_DAYS_PER_RUN) -> RollupResult:
    """Rolls the days due (see the module's note) as of a moment (default now): every day that may be stale,
    then days never rolled, newest first, up to `max_days` in all (a first run on an old mall backfills over
    several runs; days not rolled yet are answered live, so the figures are right meanwhile)."""
    started = _time.perf_counter()
    now = as_of or clock.now()
    yesterday = clock.business_day(now) - timedelta(days=1)
    first = await first_day()
    state, _ = await InsightState.get_or_create(name=STATE)
    marks = (await fetch(sql.MARKS))[0]
    new_marks = (int(marks["e"]), int(marks["p"]), int(marks["m"]))
    if first is None or first > yesterday:
        await _save_marks(state, new_marks, fresh=state.entry_mark == 0)
        return RollupResult(0, _time.perf_counter() - started)
    rolled = {_to_date(d) for d in await KpiDay.all().values_list("day", flat=True)}
    # Days whose rolled counts may be stale come first (late rows, yesterday), whatever their number; the
    # backfill of days never rolled takes what is left of max_days, newest first.
    stale = {yesterday}
    if state.entry_mark or state.purchase_mark or state.member_mark:
        late_sql = sql.LATE_DAYS_PG if is_postgres() else sql.LATE_DAYS_SQLITE
        for r in await fetch(late_sql, state.entry_mark_prev, state.purchase_mark_prev, state.member_mark_prev):
            day = _to_date(r["day"])
            if day is not None and first <= day <= yesterday:
                stale.add(day)
    missing = {first + timedelta(days=i) for i in range((yesterday - first).days + 1)} - rolled - stale
    todo = sorted(stale, reverse=True) + sorted(missing, reverse=True)[:max(0, max_days - len(stale))]
    for day in todo:
        async with transaction() as tx:
            await roll_day(tx, day)
    await _save_marks(state, new_marks, fresh=state.entry_mark == 0 and not rolled)
    return RollupResult(len(todo), _time.perf_counter() - started)


async def _save_marks(state: InsightState, marks: tuple[int, int, int], fresh: bool) -> None:
    # A first run rolled everything there was: both watermarks start at its marks.
    prev = marks if fresh else (state.entry_mark, state.purchase_mark, state.member_mark)
    await InsightState.filter(name=state.name).update(
        entry_mark_prev=prev[0], purchase_mark_prev=prev[1], member_mark_prev=prev[2],
        entry_mark=marks[0], purchase_mark=marks[1], member_mark=marks[2], ran_at=clock.now())
