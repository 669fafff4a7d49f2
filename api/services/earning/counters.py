"""Caps and budgets: what each counted rule has given a member today and this month, and what is
left of its total budget. Counters are read and written under the member's account lock; a rule's
budget is shared by every member, so its rule row is locked too (`Rank.SHARED`), which keeps two
members from both taking the last of it."""
from __future__ import annotations

import json
from datetime import date, datetime

from api import locks
from api.db import Tx, fetch
from api.models import EarnBreakdown, EarnRule, PendingPoints, PointsEntry
from api.services import clock
from api.services.earning import rules as R
from api.services.earning import sql


def local_day(at: datetime) -> date:
    return at.astimezone(clock.SHANGHAI).date()


def periods(at: datetime) -> tuple[str, str]:
    d = local_day(at)
    return f"D{d.isoformat()}", f"M{d.year:04d}-{d.month:02d}"


async def lock_budgets(rules: list[R.Rule]) -> None:
    """Locks the rows of the rules whose total budget this move may draw on (in rule id order). A move
    without budgets records no lock: later locks of its transaction keep their whole range."""
    budgets = [r.id for r in rules if r.counted and r.budget_points]
    if budgets:
        await locks.rows(locks.Rank.SHARED, EarnRule, budgets)


async def usage(member_id: int, rules: list[R.Rule], at: datetime) -> dict[int, R.Usage]:
    """Counters of the counted rules for this member (on the open transaction's connection, if any).
    Inside a move, call `lock_budgets` first; a preview reads them without locks."""
    counted = [r for r in rules if r.counted]
    if not counted:
        return {}
    day, month = periods(at)
    rows = await fetch(sql.counters_of([r.id for r in counted]), member_id, day, month)
    found: dict[int, dict[str, int]] = {r.id: {} for r in counted}
    for row in rows:
        slot = found[row["rule_id"]]
        if row["member_id"] == 0:
            slot["budget_used"] = int(row["points"])
        elif row["period"] == day:
            slot["day_points"], slot["day_times"] = int(row["points"]), int(row["times"])
        else:
            slot["month_points"] = int(row["points"])
    return {r.id: _usage_of(r, found[r.id]) for r in counted}


def _usage_of(rule: R.Rule, slot: dict[str, int]) -> R.Usage:
    budget_left = None if rule.budget_points is None else max(0, rule.budget_points - slot.get("budget_used", 0))
    return R.Usage(slot.get("day_points", 0), slot.get("month_points", 0), slot.get("day_times", 0), budget_left)


async def count(tx: Tx, member_id: int, rules: list[R.Rule], outcome: R.Outcome, at: datetime) -> None:
    """Adds what `outcome` gave to the counters of its counted rules."""
    by_id = {r.id: r for r in rules}
    day, month = periods(at)
    for item in outcome.items:  # several statements may touch one row: one at a time
        rule = by_id.get(item.rule_id)
        if rule is None or not rule.counted or item.superseded or item.cap == "DAILY_TIMES":
            continue
        for period in (day, month):
            await tx.execute(sql.COUNTER_ADD, rule.id, member_id, period, item.points)
        if rule.budget_points and item.points:
            await tx.execute(sql.BUDGET_ADD, rule.id, item.points)


async def _purchase_breakdown(purchase_id: int) -> str | None:
    """The breakdown of a purchase's first EARN entry that has one, else of its pending points (every
    point of the purchase still pending: its breakdown waits with them)."""
    entry_ids = await PointsEntry.filter(source_type="purchase", source_ref=str(purchase_id), kind="EARN") \
        .order_by("id").values_list("id", flat=True)
    if entry_ids:
        found = dict(await EarnBreakdown.filter(entry_id__in=entry_ids).values_list("entry_id", "breakdown"))
        for entry_id in entry_ids:
            if entry_id in found:
                return found[entry_id]
    pending = await PendingPoints.filter(purchase_id=purchase_id).only("id", "breakdown").first()
    return None if pending is None else pending.breakdown


async def give_back_counters(tx: Tx, purchase_id: int, member_id: int, occurred_at: datetime, amount_fen: int,
                             refunded_before: int, refunded_after: int) -> None:
    """A refund returns, in proportion (cumulatively), the cap room and budget its purchase used, so
    that counters count points the member keeps. Runs under the member's account lock; the rules'
    rows are locked as an earn locks them before it touches a budget."""
    text = await _purchase_breakdown(purchase_id)
    if text is None:
        return
    day, month = periods(occurred_at)
    backs: dict[int, int] = {}
    for item in json.loads(text):
        points = int(item.get("points") or 0)
        back = points * refunded_after // amount_fen - points * refunded_before // amount_fen
        if back > 0 and item.get("ruleId") and not item.get("superseded"):
            backs[int(item["ruleId"])] = backs.get(int(item["ruleId"]), 0) + back
    if backs:
        await locks.rows(locks.Rank.SHARED, EarnRule, backs)
    for rule_id, back in sorted(backs.items()):
        await tx.execute(sql.COUNTER_GIVE_BACK, rule_id, back, member_id, day, month)
