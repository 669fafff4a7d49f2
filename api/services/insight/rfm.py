"""RFM scores and lifecycle stages (docs/insight.md): recomputed set-based for every member by the scheduled
run (once per Asia/Shanghai day) and on demand (`insightRecompute`), in member-id chunks of
`chunk_members` (one transaction each, so no more row locks than that are held at once); a stage change
appends a row to member_lifecycle_change."""
from __future__ import annotations

import time as _time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api import locks
from api.db import fetch, is_postgres, transaction
from api.models.insight import InsightState, LifecycleChange, MemberInsight
from api.services import clock
from api.services.insight import sql
from api.services.insight.settings import insight_settings

STATE = "rfm"
INSIGHT_LOCK_SPACE = 4713  # the first key of pg_advisory_xact_lock(int, int) for a chunk of members


@dataclass(frozen=True)
class RecomputeResult:
    members: int
    stage_changes: int
    seconds: float


@dataclass(frozen=True)
class InsightRecord:
    member_id: int
    recency_days: int
    frequency: int
    monetary_fen: int
    r: int
    f: int
    m: int
    lifecycle: str
    stage_since: datetime
    computed_at: datetime


@dataclass(frozen=True)
class StageChange:
    from_stage: str | None
    to_stage: str
    changed_at: datetime


def _cuts(rows: list[dict[str, Any]], key: str, column: str) -> list[Any]:
    """The top values of tiles 1..4 (None where a tile is missing: fewer than five buyers)."""
    tops = {int(r["t"]): r[column] for r in rows if r["k"] == key}
    return [tops.get(t) for t in range(1, 5)]


async def recompute(as_of: datetime | None = None) -> RecomputeResult:
    started = _time.perf_counter()
    cfg = insight_settings()
    now = as_of or clock.now()
    window = now - timedelta(days=cfg.rfm_window_days)
    trend = now - timedelta(days=cfg.trend_days)
    cut_rows = [dict(r) for r in await fetch(sql.RFM_CUTS, window)]
    f_cuts, m_cuts = _cuts(cut_rows, "f", "v"), _cuts(cut_rows, "m", "v")
    # PostgreSQL returns the cut times as datetimes; SQLite as the stored text, compared as text.
    r_cuts = _cuts(cut_rows, "r", "at")
    args = (now, window, trend, trend - timedelta(days=cfg.trend_days), now - timedelta(days=cfg.new_days),
            now - timedelta(days=cfg.lost_days), now - timedelta(days=cfg.declining_days),
            *[None if v is None else int(v) for v in f_cuts], *[None if v is None else int(v) for v in m_cuts], *r_cuts)
    span = (await fetch(sql.MEMBER_SPAN))[0]
    lo, hi = int(span["lo"]), int(span["hi"])
    statements = sql.rfm_chunk(is_postgres())
    members = changes = 0
    start = lo
    while lo and start <= hi:
        end = start + cfg.chunk_members
        async with transaction() as tx:
            # Two recomputations at once (the scheduled run and insightRecompute) take a chunk in turn, so
            # the second sees the first's stages and writes no duplicate history rows.
            await locks.advisory(locks.Rank.SHARED, INSIGHT_LOCK_SPACE, f"rfm:{start}")
            if tx.postgres:
                row = (await tx.fetch(statements[0], start, end, *args))[0]
                members, changes = members + int(row["n"]), changes + int(row["c"])
            else:
                changes += await tx.execute(statements[0], start, end, *args)
                members += await tx.execute(statements[1], start, end, *args)
        start = end
    if is_postgres():
        await fetch(sql.ANALYZE)
    await InsightState.get_or_create(name=STATE)
    await InsightState.filter(name=STATE).update(last_day=clock.business_day(now), ran_at=clock.now())
    return RecomputeResult(members, changes, _time.perf_counter() - started)


async def recompute_if_due(as_of: datetime | None = None) -> RecomputeResult | None:
    """The scheduled run's step: once per Asia/Shanghai day."""
    now = as_of or clock.now()
    state = await InsightState.get_or_none(name=STATE)
    if state is not None and state.last_day is not None and state.last_day >= clock.business_day(now):
        return None
    return await recompute(now)


def _record(row: MemberInsight) -> InsightRecord:
    return InsightRecord(int(row.member_id), row.recency_days, row.frequency, int(row.monetary_fen), row.r, row.f,
                         row.m, row.lifecycle, row.stage_since, row.computed_at)


async def for_members(member_ids: list[int]) -> dict[int, InsightRecord]:
    """The DataLoader batch of Member.insight."""
    return {int(r.member_id): _record(r) for r in await MemberInsight.filter(member_id__in=member_ids)}


async def history(member_id: int, first: int) -> list[StageChange]:
    rows = await LifecycleChange.filter(member_id=member_id).order_by("-id").limit(first)
    return [StageChange(r.from_stage, r.to_stage, r.changed_at) for r in rows]


async def stage_counts() -> dict[str, int]:
    return {str(r["lifecycle"]): int(r["n"]) for r in await fetch(sql.STAGE_COUNTS)}
