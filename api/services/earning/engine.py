"""Earning inside a points move: evaluate a trigger's rules for a member whose account is locked and
book the result (an EARN entry with its breakdown, pending points, counters, growth value); and the
purchase fast path's plan, which computes every tier's outcome before the one-statement earn."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from api.db import Tx
from api.models import EarnBreakdown, Member, PendingPoints
from api.services import clock, ledger, tiers
from api.services.earning import counters
from api.services.earning import rules as R
from api.services.earning.cache import active_rules, birthday_of, has_purchased
from api.services.segments import membership


@dataclass(frozen=True)
class Applied:
    outcome: R.Outcome
    points: int  # booked now (spendable)
    pending: int  # waiting for a return window
    growth: int
    entry_id: int | None


async def facts_for(acct: ledger.LockedAccount, trigger: str, at: datetime, **extra: Any) -> R.Facts:
    tier = await tiers.tier_by_id(acct.tier_id)
    return R.Facts(trigger=trigger, at=at, tier_code=tier.code, tier_multiplier_percent=tier.earn_multiplier_percent,
                   **extra)


async def with_segments(member_id: int, rules: list[R.Rule], facts: R.Facts) -> R.Facts:
    """The facts with the segments the member is in, of the segments of the rules that otherwise match:
    one membership query per distinct segment, none when no rule has a segment (the common case)."""
    if facts.segments is not None or all(r.segment_id is None for r in rules):
        return facts
    day = facts.at.astimezone(clock.SHANGHAI).date()
    wanted = {r.segment_id for r in rules if r.segment_id is not None and R.matches(r, facts, day, check_segment=False)}
    return replace(facts, segments=await membership.member_segments(member_id, wanted))


async def _evaluate(acct: ledger.LockedAccount, facts: R.Facts, extra: tuple[R.Item, ...],
                    member_birthday: bool) -> tuple[list[R.Rule], R.Outcome]:
    """The matching rules and their outcome (plus `extra` items), with the member's counters read
    after the budgets they draw on are locked."""
    rules = await active_rules(facts.trigger)
    if member_birthday and facts.birthday is None and any(r.conditions.birthday for r in rules):
        member = await Member.filter(id=acct.member_id).only("id", "birthday").first()
        facts = replace(facts, birthday=member.birthday if member is not None else None)
    facts = await with_segments(acct.member_id, rules, facts)
    candidates = [r for r in rules if R.matches(r, facts)]
    await counters.lock_budgets(candidates)
    outcome = R.evaluate(candidates, facts, await counters.usage(acct.member_id, candidates, facts.at))
    return candidates, R.Outcome(tuple(extra) + outcome.items)


async def apply(
    tx: Tx, acct: ledger.LockedAccount, facts: R.Facts, *, reason: str, source_type: str, source_ref: str | None,
    occurred_at: datetime, now: datetime, extra: tuple[R.Item, ...] = (), purchase_id: int | None = None,
    member_birthday: bool = True,
) -> Applied:
    """Evaluates the trigger's rules for a member whose account `acct` is locked, and books the
    result: an EARN entry with its breakdown, pending points, counters, growth value. `extra` items
    (a task's own reward) are booked with the rules' points."""
    candidates, outcome = await _evaluate(acct, facts, extra, member_birthday)
    pending = outcome.pending_points if purchase_id is not None else 0
    points = outcome.points - pending
    entry_id = None
    if points > 0:
        entry = await ledger.credit(tx, acct, points=points, kind="EARN", reason=reason, source_type=source_type,
                                    source_ref=source_ref, occurred_at=occurred_at)
        entry_id = entry.id
        if outcome.items:
            await EarnBreakdown.create(entry_id=entry_id, breakdown=json.dumps(
                outcome.to_json(), ensure_ascii=False, separators=(",", ":")))
    if pending:
        await PendingPoints.create(
            member_id=acct.member_id, purchase_id=purchase_id, points=pending, points_cancelled=0, status="PENDING",
            release_at=occurred_at + timedelta(days=outcome.pending_days), created_at=now,
            breakdown=json.dumps([i.to_json() for i in outcome.items if i.pending_days], ensure_ascii=False))
    await counters.count(tx, acct.member_id, candidates, outcome, facts.at)
    growth = outcome.growth
    if growth:
        acct.growth_value, acct.tier_id = await tiers.add_growth(
            tx, acct.member_id, acct.tier_id, acct.growth_value, growth, reason, source_type, source_ref, occurred_at)
    return Applied(outcome, points, pending, growth, entry_id)


# --- the purchase fast path: every tier's outcome, computed before the statement -----------------

@dataclass(frozen=True)
class PurchasePlan:
    tier_ids: list[int]
    points: list[int]
    growth: list[int]
    breakdowns: list[str]
    # The segments of the receipt's rules that the member is in (None: no rule has one); the general path
    # (SQLite) evaluates with them too, so that a receipt asks about each segment once.
    segments: frozenset[int] | None = None


def _prefilter(rules: list[R.Rule], merchant_code: str, category: str | None, amount_fen: int,
               at: datetime) -> list[R.Rule]:
    out = []
    for r in rules:
        c = r.conditions
        if (r.starts_at is not None and at < r.starts_at) or (r.ends_at is not None and at >= r.ends_at):
            continue
        if (c.merchant_codes and merchant_code not in c.merchant_codes) or (
                c.merchant_categories and category not in c.merchant_categories):
            continue
        if c.min_amount_fen is not None and amount_fen < c.min_amount_fen:
            continue
        out.append(r)
    return out


async def purchase_plan(member_id: int, merchant_code: str, category: str | None, amount_fen: int,
                        occurred_at: datetime) -> PurchasePlan | None:
    """The outcome of a receipt for each tier the member might have when the account is locked, or
    None when a matching rule needs state (counters, first purchase, a return window): then the
    general path evaluates under the lock."""
    rules = _prefilter(await active_rules("PURCHASE"), merchant_code, category, amount_fen, occurred_at)
    if any(r.conditions.first_purchase for r in rules):
        if not await has_purchased(member_id):
            return None  # perhaps the first purchase: decided under the lock
        rules = [r for r in rules if not r.conditions.first_purchase]
    if any(r.stateful for r in rules):
        return None
    segments = None
    if any(r.segment_id is not None for r in rules):  # a rule for a segment: is the member in it now?
        segments = await membership.member_segments(member_id, {r.segment_id for r in rules})
        rules = [r for r in rules if r.segment_id is None or r.segment_id in segments]
    birthday = (await birthday_of(member_id, occurred_at.astimezone(clock.SHANGHAI).month)
                if any(r.conditions.birthday for r in rules) else None)
    plan = PurchasePlan([], [], [], [], segments)
    all_tiers = await tiers.all_tiers()
    facts = R.Facts("PURCHASE", occurred_at, "", 100, amount_fen, merchant_code, category, birthday,
                    segments=segments)
    outcomes = R.evaluate_tiers(rules, facts, [(t.code, t.earn_multiplier_percent) for t in all_tiers])
    for tier, outcome in zip(all_tiers, outcomes, strict=True):
        plan.tier_ids.append(tier.id)
        plan.points.append(outcome.points)
        plan.growth.append(outcome.growth)
        plan.breakdowns.append(outcome.to_json_text())
    return plan
