"""What earning caches per process: the active rules, members' birth months, and who has purchased.

Rules are cached per process and reloaded every RULES_CACHE_SECONDS (and at once in the process that
changed them): with several servers a change takes effect everywhere within that bound.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import date
from typing import Any

from api.db import fetch, is_postgres
from api.models import EarnRule, Purchase
from api.services.earning import rules as R
from api.services.earning import sql
from api.services.segments import membership

RULES_CACHE_SECONDS = 5.0
_cache: dict[str, Any] = {"rules": None, "at": 0.0, "by_trigger": {}}


def rule_of(row: EarnRule) -> R.Rule:
    """The evaluation's frozen view of a stored rule (its conditions parsed once)."""
    return R.Rule(
        id=row.id, code=row.code, name=row.name, trigger=row.trigger, priority=row.priority,
        stacking=row.stacking, stack_group=row.stack_group,
        conditions=R.Conditions.from_json(json.loads(row.conditions or "{}")), action=row.action,
        action_value=int(row.action_value), apply_tier_multiplier=bool(row.apply_tier_multiplier),
        growth_action=row.growth_action, growth_value=int(row.growth_value),
        cap_daily_points=row.cap_daily_points, cap_monthly_points=row.cap_monthly_points,
        cap_daily_times=row.cap_daily_times,
        budget_points=None if row.budget_points is None else int(row.budget_points),
        return_days=int(row.return_days), starts_at=row.starts_at, ends_at=row.ends_at, status=row.status,
        segment_id=row.segment_id,
    )


async def active_rules(trigger: str) -> list[R.Rule]:
    """Active rules of a trigger, in evaluation order, from the process cache."""
    if _cache["rules"] is None or time.monotonic() - _cache["at"] > RULES_CACHE_SECONDS:
        rules = R.order([rule_of(r) for r in await EarnRule.filter(status="ACTIVE")])
        by_trigger: dict[str, list[R.Rule]] = {}
        for rule in rules:
            by_trigger.setdefault(rule.trigger, []).append(rule)
        _cache.update(rules=rules, at=time.monotonic(), by_trigger=by_trigger)
    return _cache["by_trigger"].get(trigger, [])


def invalidate_cache() -> None:
    _cache["rules"] = None


# --- member facts that rarely change (birthday) ------------------------------------------------
# Birthday rules need to know whether a member's birthday falls in a month. Instead of a lookup per
# receipt (members buy rarely, so a per-member cache mostly misses), each process keeps the members
# born in the months it is asked about: {member id: day of month}, read with one query per month and
# refreshed in the background every BIRTHDAY_CACHE_SECONDS (a changed birthday reaches the process
# that changed it at once, the others within that time).

_born_in: dict[int, tuple[dict[int, int], float]] = {}
_born_loading: dict[int, asyncio.Future] = {}
BIRTHDAY_CACHE_SECONDS = 60.0


async def _load_born_in(month: int) -> dict[int, int]:
    rows = await fetch(sql.born_in_month(is_postgres()), month)
    born = {int(r["id"]): int(r["day"]) for r in rows}
    _born_in[month] = (born, time.monotonic())
    return born


async def _born_in_month(month: int) -> dict[int, int]:
    cached = _born_in.get(month)
    stale = cached is None or time.monotonic() - cached[1] >= BIRTHDAY_CACHE_SECONDS
    if stale and month not in _born_loading:
        future = asyncio.ensure_future(_load_born_in(month))
        _born_loading[month] = future
        future.add_done_callback(lambda _f: _born_loading.pop(month, None))
    if cached is not None:
        return cached[0]  # a stale map is served while the fresh one loads
    return await asyncio.shield(_born_loading[month])


async def birthday_of(member_id: int, month: int) -> date | None:
    """The member's birthday if it falls in `month` (as a date in the leap year 2000, which is all the
    rules look at: month and day), else None."""
    day = (await _born_in_month(month)).get(member_id)
    return None if day is None else date(2000, month, day)


def forget_birthday(member_id: int) -> None:
    """The member changed their birthday: this process reads the months again."""
    _born_in.clear()


_purchased: set[int] = set()  # members known to have purchased: true once, true for ever


def reset_caches() -> None:
    """Forget everything cached about rules and members (a process that switches databases: tests)."""
    invalidate_cache()
    _born_in.clear()
    _purchased.clear()
    membership.reset_cache()


async def has_purchased(member_id: int) -> bool:
    """Whether the member has a purchase on record. Only a yes is cached (it never turns false), so
    a no is always asked of the database, and the caller then evaluates under the account lock."""
    if member_id in _purchased:
        return True
    found = await Purchase.exists(member_id=member_id)
    if found:
        if len(_purchased) > 1_000_000:
            _purchased.clear()
        _purchased.add(member_id)
    return found
