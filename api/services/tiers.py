"""Tiers: configurable levels of growth value. Upgrade is immediate when growth value in the current
qualification period crosses a threshold; at the end of a period the member keeps the tier the
period's growth qualifies for (which may be lower: a downgrade), and a new period starts at zero."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from api.config import settings
from api.db import Tx, fetch, transaction
from api.services import clock


@dataclass(frozen=True)
class TierInfo:
    id: int
    code: str
    name: str
    growth_threshold: int
    earn_multiplier_percent: int


_cache: dict[str, object] = {"tiers": None, "at": 0.0}
CACHE_SECONDS = 30.0


async def all_tiers(refresh: bool = False) -> list[TierInfo]:
    """Tiers in ascending threshold order, cached in the process for a few seconds."""
    if refresh or _cache["tiers"] is None or time.monotonic() - _cache["at"] > CACHE_SECONDS:
        rows = await fetch(
            "SELECT id, code, name, growth_threshold, earn_multiplier_percent FROM tier ORDER BY growth_threshold"
        )
        _cache["tiers"] = [TierInfo(**dict(r)) for r in rows]
        _cache["at"] = time.monotonic()
    return _cache["tiers"]  # type: ignore[return-value]


def invalidate_cache() -> None:
    _cache["tiers"] = None


async def tier_by_id(tier_id: int) -> TierInfo:
    for tier in await all_tiers():
        if tier.id == tier_id:
            return tier
    for tier in await all_tiers(refresh=True):
        if tier.id == tier_id:
            return tier
    raise LookupError(f"tier {tier_id}")


def qualifying(tiers: list[TierInfo], growth_value: int) -> TierInfo:
    best = tiers[0]
    for tier in tiers:
        if tier.growth_threshold <= growth_value:
            best = tier
    return best


def next_tier(tiers: list[TierInfo], current: TierInfo) -> TierInfo | None:
    higher = [t for t in tiers if t.growth_threshold > current.growth_threshold]
    return higher[0] if higher else None


async def add_growth(
    tx: Tx, member_id: int, current_tier_id: int, growth_value: int, delta: int, reason: str,
    source_type: str, source_ref: str | None, occurred_at: datetime,
) -> tuple[int, int]:
    """Adds (or, for a refund, removes, never below zero) growth value and upgrades at once when a
    threshold is crossed. Returns (new growth value, tier id)."""
    new_value = max(0, growth_value + delta)
    applied = new_value - growth_value
    if applied == 0:
        return growth_value, current_tier_id
    tiers = await all_tiers()
    current = await tier_by_id(current_tier_id)
    target = qualifying(tiers, new_value)
    tier_id = target.id if applied > 0 and target.growth_threshold > current.growth_threshold else current_tier_id
    statements = [
        ("UPDATE member SET growth_value = $1, tier_id = $2, updated_at = $3 WHERE id = $4",
         (new_value, tier_id, clock.now(), member_id)),
        ("INSERT INTO growth_entry (member_id, delta, growth_after, reason, source_type, source_ref, occurred_at)"
         " VALUES ($1, $2, $3, $4, $5, $6, $7)",
         (member_id, applied, new_value, reason, source_type, source_ref, occurred_at)),
    ]
    if tier_id != current_tier_id:
        statements.append((
            "INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason,"
            " occurred_at) VALUES ($1, $2, $3, 'UPGRADE', $4, $5, $6)",
            (member_id, current.id, target.id, new_value, f"growth value reached {target.growth_threshold}",
             occurred_at),
        ))
    await tx.execute_many(statements)
    return new_value, tier_id


@dataclass(frozen=True)
class EvaluationResult:
    members_evaluated: int
    downgraded: int
    kept: int


async def evaluate_periods(as_of: datetime | None = None) -> EvaluationResult:
    """Closes every qualification period that has ended at `as_of`: the member keeps the tier the
    period's growth qualifies for (never higher than the current one; upgrades already happened),
    the change is logged, and a new period starts with growth value zero. Safe to repeat."""
    as_of = as_of or clock.now()
    months = settings().tier_period_months
    tiers = await all_tiers(refresh=True)
    evaluated = downgraded = kept = 0
    while True:
        rows = await fetch(
            "SELECT id FROM member WHERE tier_period_start <= $1 ORDER BY id LIMIT 500",
            clock.add_months(as_of, -months),
        )
        if not rows:
            break
        for row in rows:
            async with transaction() as tx:
                changed = await _close_period(tx, row["id"], as_of, months, tiers)
            if changed is None:
                continue
            evaluated += 1
            downgraded += changed
            kept += 1 - changed
    return EvaluationResult(evaluated, downgraded, kept)


async def _close_period(tx: Tx, member_id: int, as_of: datetime, months: int, tiers: list[TierInfo]) -> int | None:
    member = await tx.fetchrow(
        "SELECT tier_id, growth_value, tier_period_start FROM member WHERE id = $1"
        + (" FOR UPDATE" if tx.postgres else ""),
        member_id,
    )
    start = clock.parse_db_time(member["tier_period_start"])
    period_end = clock.add_months(start, months)
    if period_end > as_of:
        return None  # another run closed it already
    current = next(t for t in tiers if t.id == member["tier_id"])
    earned = qualifying(tiers, member["growth_value"])
    new_tier = earned if earned.growth_threshold < current.growth_threshold else current
    direction = "DOWNGRADE" if new_tier.id != current.id else "KEEP"
    await tx.execute(
        "INSERT INTO tier_change (member_id, from_tier_id, to_tier_id, direction, growth_value, reason, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        member_id, current.id, new_tier.id, direction, member["growth_value"],
        f"qualification period {start.date()} – {period_end.date()} closed", period_end,
    )
    if member["growth_value"]:
        await tx.execute(
            "INSERT INTO growth_entry (member_id, delta, growth_after, reason, source_type, source_ref, occurred_at)"
            " VALUES ($1, $2, 0, $3, 'tier_period', NULL, $4)",
            member_id, -member["growth_value"], "new qualification period", period_end,
        )
    await tx.execute(
        "UPDATE member SET tier_id = $1, growth_value = 0, tier_period_start = $2, updated_at = $3 WHERE id = $4",
        new_tier.id, period_end, clock.now(), member_id,
    )
    return 1 if direction == "DOWNGRADE" else 0
