"""Tiers: configurable levels of growth value. Upgrade is immediate when growth value in the current
qualification period crosses a threshold; at the end of a period the member keeps the tier the
period's growth qualifies for (which may be lower: a downgrade), and a new period starts at zero.

Operators create and update tiers (threshold, multiplier, benefits, active), audited. A change applies
from then on and never rewrites history: entries keep the points they were booked with, tier changes
stay as logged, and members move only at their next growth (up) or at the end of their period. A
deactivated tier is no longer reached; its members keep it until their period closes."""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from api import locks
from api.config import settings
from api.db import Tx, transaction
from api.models import GrowthEntry, Member, Tier, TierChange
from api.services import clock, text
from api.services import sql as core_sql
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.notifications import outbox

CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


@dataclass(frozen=True)
class TierInfo:
    id: int
    code: str
    name: str
    growth_threshold: int
    earn_multiplier_percent: int
    benefits: tuple[str, ...] = ()
    active: bool = True


_cache: dict[str, Any] = {"tiers": None, "every": None, "at": 0.0}
CACHE_SECONDS = 30.0


def _info(t: Tier) -> TierInfo:
    return TierInfo(t.id, t.code, t.name, t.growth_threshold, t.earn_multiplier_percent,
                    tuple(json.loads(t.benefits)) if t.benefits else (), bool(t.active))


async def _load(refresh: bool) -> None:
    if refresh or _cache["tiers"] is None or time.monotonic() - _cache["at"] > CACHE_SECONDS:
        every = [_info(t) for t in await Tier.all().order_by("growth_threshold")]
        _cache["every"] = every
        _cache["tiers"] = [t for t in every if t.active]
        _cache["at"] = time.monotonic()


async def all_tiers(refresh: bool = False) -> list[TierInfo]:
    """Active tiers in ascending threshold order, cached in the process for a few seconds."""
    await _load(refresh)
    return _cache["tiers"]


async def every_tier(refresh: bool = False) -> list[TierInfo]:
    """Every tier, deactivated ones too, in ascending threshold order."""
    await _load(refresh)
    return _cache["every"]


def invalidate_cache() -> None:
    _cache["tiers"] = None


async def tier_by_id(tier_id: int) -> TierInfo:
    for tier in await every_tier():
        if tier.id == tier_id:
            return tier
    for tier in await every_tier(refresh=True):
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
    now = clock.now()
    statements = [
        (core_sql.GROWTH_UPDATE, (new_value, tier_id, now, member_id)),
        (core_sql.GROWTH_ENTRY, (member_id, applied, new_value, reason, source_type, source_ref, occurred_at)),
    ]
    if tier_id != current_tier_id:
        statements.append((core_sql.TIER_UPGRADE, (member_id, current.id, target.id, new_value,
                                                   f"growth value reached {target.growth_threshold}", occurred_at)))
        statements.append(outbox.statement(outbox.tier_changed(member_id, target.name, True,
                                                               f"{source_type}:{source_ref}:{target.id}"[:64])))
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
        due = clock.add_months(as_of, -months)
        rows = await Member.filter(tier_period_start__lte=due).order_by("id").limit(500).values("id")
        if not rows:
            break
        for row in rows:
            async with transaction() as tx:
                changed = await _close_period(tx, int(row["id"]), as_of, months, tiers)
            if changed is None:
                continue
            evaluated += 1
            downgraded += changed
            kept += 1 - changed
    return EvaluationResult(evaluated, downgraded, kept)


async def _close_period(tx: Tx, member_id: int, as_of: datetime, months: int, tiers: list[TierInfo]) -> int | None:
    member = await locks.row(locks.Rank.MEMBER, Member, member_id)
    assert member is not None  # the run found this member a moment ago; members are never deleted
    start = clock.to_utc(member.tier_period_start)
    period_end = clock.add_months(start, months)
    if period_end > as_of:
        return None  # another run closed it already
    current = next((t for t in tiers if t.id == member.tier_id), None) or await tier_by_id(member.tier_id)
    earned = qualifying(tiers, member.growth_value)
    # A deactivated tier is left for the best active one the period qualifies for.
    new_tier = earned if earned.growth_threshold < current.growth_threshold or not current.active else current
    direction = ("KEEP" if new_tier.id == current.id
                 else "DOWNGRADE" if new_tier.growth_threshold < current.growth_threshold else "UPGRADE")
    await TierChange.create(member_id=member_id, from_tier_id=current.id, to_tier_id=new_tier.id, direction=direction,
                            growth_value=member.growth_value, occurred_at=period_end,
                            reason=f"qualification period {start.date()} – {period_end.date()} closed")
    if member.growth_value:
        await GrowthEntry.create(member_id=member_id, delta=-member.growth_value, growth_after=0,
                                 reason="new qualification period", source_type="tier_period", source_ref=None,
                                 occurred_at=period_end)
    await Member.filter(id=member_id).update(tier_id=new_tier.id, growth_value=0, tier_period_start=period_end,
                                             updated_at=clock.now())
    if direction != "KEEP":
        await outbox.emit(tx, outbox.tier_changed(member_id, new_tier.name, direction == "UPGRADE",
                                                  f"period:{member_id}:{period_end.date()}"))
    return 1 if direction == "DOWNGRADE" else 0


# --- managed by operators ------------------------------------------------------------------------


def _benefits(values: list[str] | None) -> str | None:
    if values is None:
        return None
    items = [v.strip() for v in values if v and v.strip()]
    if len(items) > 20 or any(len(v) > 100 for v in items):
        raise DomainError(ErrorCode.INVALID_INPUT, "at most 20 benefits of at most 100 characters each",
                          ["input", "benefits"])
    for item in items:
        text.name(item, ["input", "benefits"], 100)  # no control characters
    return json.dumps(items, ensure_ascii=False)


def _fields(name: str | None, threshold: int | None, multiplier: int | None, benefits: list[str] | None) -> dict:
    changes: dict = {}
    if name is not None:
        changes["name"] = text.name(name, ["input", "name"], 64)
    if threshold is not None:
        if not 0 <= threshold <= 100_000_000:
            raise DomainError(ErrorCode.INVALID_INPUT, "growthThreshold must be 0 to 100000000",
                              ["input", "growthThreshold"])
        changes["growth_threshold"] = threshold
    if multiplier is not None:
        if not 1 <= multiplier <= 1000:
            raise DomainError(ErrorCode.INVALID_INPUT, "earnMultiplierPercent must be 1 to 1000",
                              ["input", "earnMultiplierPercent"])
        changes["earn_multiplier_percent"] = multiplier
    if benefits is not None:
        changes["benefits"] = _benefits(benefits)
    return changes


async def _threshold_free(threshold: int, tier_id: int | None) -> None:
    other = await Tier.filter(growth_threshold=threshold).exclude(id=tier_id or 0).first()
    if other is not None:
        raise DomainError(ErrorCode.TIER_THRESHOLD_TAKEN, f"tier {other.code} already has threshold {threshold}",
                          ["input", "growthThreshold"])


def _public(t: TierInfo) -> dict:
    return {**asdict(t), "benefits": list(t.benefits)}


async def _as_info(tier_id: int) -> TierInfo:
    return _info(await Tier.get(id=tier_id))


async def create(actor: Actor, code: str, name: str, growth_threshold: int, earn_multiplier_percent: int,
                 benefits: list[str] | None = None) -> TierInfo:
    """A new active tier; its threshold may not equal another tier's (TIER_THRESHOLD_TAKEN). Audited."""
    code = (code or "").strip().upper()
    if not CODE.match(code):
        raise DomainError(ErrorCode.INVALID_INPUT, "code: 1 to 32 of A-Z, 0-9, '_'", ["input", "code"])
    changes = _fields(name, growth_threshold, earn_multiplier_percent, benefits or [])
    try:
        async with transaction() as tx:
            if await Tier.filter(code=code).exists():
                raise DomainError(ErrorCode.CODE_TAKEN, f"tier code {code} is taken", ["input", "code"])
            await _threshold_free(growth_threshold, None)
            tier = await Tier.create(code=code, active=True, created_at=clock.now(), **changes)
            info = await _as_info(tier.id)
            await audit(tx, actor, "tier.create", "tier", str(tier.id), None, after=_public(info))
    except IntegrityError:  # a tier with this code or threshold created at the same moment
        if await Tier.filter(code=code).exists():
            raise DomainError(ErrorCode.CODE_TAKEN, f"tier code {code} is taken", ["input", "code"]) from None
        raise DomainError(ErrorCode.TIER_THRESHOLD_TAKEN, f"another tier has threshold {growth_threshold}",
                          ["input", "growthThreshold"]) from None
    invalidate_cache()
    return info


async def update(actor: Actor, tier_id: int, *, name: str | None = None, growth_threshold: int | None = None,
                 earn_multiplier_percent: int | None = None, benefits: list[str] | None = None,
                 active: bool | None = None) -> TierInfo:
    """Changes a tier from now on (see the module's notes); the base tier (threshold 0) stays active
    and at 0. Audited with before and after."""
    changes = _fields(name, growth_threshold, earn_multiplier_percent, benefits)
    if active is not None:
        changes["active"] = active
    try:
        return await _update(actor, tier_id, changes, growth_threshold)
    except IntegrityError:  # another tier took this threshold at the same moment
        raise DomainError(ErrorCode.TIER_THRESHOLD_TAKEN, f"another tier has threshold {growth_threshold}",
                          ["input", "growthThreshold"]) from None
    finally:
        invalidate_cache()


async def _update(actor: Actor, tier_id: int, changes: dict, growth_threshold: int | None) -> TierInfo:
    async with transaction() as tx:
        tier = await locks.row(locks.Rank.CONFIG, Tier, tier_id)
        if tier is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such tier", ["input", "tierId"])
        before = await _as_info(tier_id)
        if growth_threshold is not None:
            await _threshold_free(growth_threshold, tier_id)
        if before.growth_threshold == 0 and (changes.get("growth_threshold", 0) != 0 or changes.get("active") is False):
            raise DomainError(ErrorCode.INVALID_INPUT, "the base tier keeps threshold 0 and stays active",
                              ["input", "growthThreshold" if "growth_threshold" in changes else "active"])
        if changes:
            await Tier.filter(id=tier_id).update(**changes)
        after = await _as_info(tier_id)
        await audit(tx, actor, "tier.update", "tier", str(tier_id), None, before=_public(before), after=_public(after))
    return after
