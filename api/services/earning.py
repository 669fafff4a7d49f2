"""The earning engine's I/O: the in-process rule cache, applying rules inside a points move (counters,
budgets, breakdowns, pending points, growth value), previews, and releasing pending points.

Rules are cached per process and reloaded every RULES_CACHE_SECONDS (and at once in the process that
changed them): with several servers a change takes effect everywhere within that bound.
"""
from __future__ import annotations

import asyncio

import json
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from api.db import Tx, fetch, transaction
from api.services import clock, ledger, tiers
from api.services import rules as R

RULES_CACHE_SECONDS = 5.0
_cache: dict[str, Any] = {"rules": None, "at": 0.0, "by_trigger": {}}


def _parse_rule(row) -> R.Rule:
    return R.Rule(
        id=row["id"], code=row["code"], name=row["name"], trigger=row["trigger"], priority=row["priority"],
        stacking=row["stacking"], stack_group=row["stack_group"],
        conditions=R.Conditions.from_json(json.loads(row["conditions"] or "{}")), action=row["action"],
        action_value=int(row["action_value"]), apply_tier_multiplier=bool(row["apply_tier_multiplier"]),
        growth_action=row["growth_action"], growth_value=int(row["growth_value"]),
        cap_daily_points=row["cap_daily_points"], cap_monthly_points=row["cap_monthly_points"],
        cap_daily_times=row["cap_daily_times"],
        budget_points=None if row["budget_points"] is None else int(row["budget_points"]),
        return_days=int(row["return_days"]), starts_at=clock.parse_db_time(row["starts_at"]),
        ends_at=clock.parse_db_time(row["ends_at"]), status=row["status"],
    )


RULE_COLUMNS = (
    "id, code, name, trigger, status, priority, stacking, stack_group, conditions, action, action_value,"
    " apply_tier_multiplier, growth_action, growth_value, cap_daily_points, cap_monthly_points, cap_daily_times,"
    " budget_points, return_days, starts_at, ends_at"
)


async def active_rules(trigger: str) -> list[R.Rule]:
    """Active rules of a trigger, in evaluation order, from the process cache."""
    if _cache["rules"] is None or time.monotonic() - _cache["at"] > RULES_CACHE_SECONDS:
        rows = await fetch(f"SELECT {RULE_COLUMNS} FROM earn_rule WHERE status = 'ACTIVE'")
        rules = R.order([_parse_rule(r) for r in rows])
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
    from api.db import is_postgres

    month_of = "EXTRACT(MONTH FROM birthday)" if is_postgres() else "CAST(strftime('%m', birthday) AS INTEGER)"
    day_of = "EXTRACT(DAY FROM birthday)" if is_postgres() else "CAST(strftime('%d', birthday) AS INTEGER)"
    rows = await fetch(f"SELECT id, {day_of} AS day FROM member WHERE birthday IS NOT NULL AND {month_of} = $1", month)
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


async def has_purchased(member_id: int) -> bool:
    """Whether the member has a purchase on record. Only a yes is cached (it never turns false), so
    a no is always asked of the database, and the caller then evaluates under the account lock."""
    if member_id in _purchased:
        return True
    rows = await fetch("SELECT 1 AS one FROM purchase WHERE member_id = $1 LIMIT 1", member_id)
    if rows:
        if len(_purchased) > 1_000_000:
            _purchased.clear()
        _purchased.add(member_id)
    return bool(rows)


# --- periods and counters --------------------------------------------------------------------

def local_day(at: datetime) -> date:
    return at.astimezone(clock.SHANGHAI).date()


def periods(at: datetime) -> tuple[str, str]:
    d = local_day(at)
    return f"D{d.isoformat()}", f"M{d.year:04d}-{d.month:02d}"


async def _usage(tx: Tx | None, member_id: int, rules: list[R.Rule], at: datetime) -> dict[int, R.Usage]:
    """Counters of the counted rules for this member (read under the account lock when `tx` is
    given; budget rows are locked too, so two members cannot both take the last of a budget)."""
    counted = [r for r in rules if r.counted]
    if not counted:
        return {}
    day, month = periods(at)
    ids = ", ".join(str(int(r.id)) for r in counted)
    sql = (f"SELECT rule_id, member_id, period, points, times FROM earn_counter WHERE rule_id IN ({ids})"
           " AND ((member_id = $1 AND period IN ($2, $3)) OR (member_id = 0 AND period = 'TOTAL'))")
    if tx is not None:
        if tx.postgres and any(r.budget_points for r in counted):
            await tx.execute(
                f"SELECT id FROM earn_counter WHERE rule_id IN ({ids}) AND member_id = 0 AND period = 'TOTAL'"
                " ORDER BY rule_id FOR UPDATE")
        rows = await tx.fetch(sql, member_id, day, month)
    else:
        rows = await fetch(sql, member_id, day, month)
    found: dict[int, dict[str, int]] = {r.id: {} for r in counted}
    for row in rows:
        slot = found[row["rule_id"]]
        if row["member_id"] == 0:
            slot["budget_used"] = int(row["points"])
        elif row["period"] == day:
            slot["day_points"], slot["day_times"] = int(row["points"]), int(row["times"])
        else:
            slot["month_points"] = int(row["points"])
    return {
        r.id: R.Usage(found[r.id].get("day_points", 0), found[r.id].get("month_points", 0),
                      found[r.id].get("day_times", 0),
                      None if r.budget_points is None else max(0, r.budget_points - found[r.id].get("budget_used", 0)))
        for r in counted
    }


async def _count(tx: Tx, member_id: int, rules: list[R.Rule], outcome: R.Outcome, at: datetime) -> None:
    by_id = {r.id: r for r in rules}
    day, month = periods(at)
    statements = []
    for item in outcome.items:
        rule = by_id.get(item.rule_id)
        if rule is None or not rule.counted or item.superseded or item.cap == "DAILY_TIMES":
            continue
        for period, owner in ((day, member_id), (month, member_id)):
            statements.append((
                "INSERT INTO earn_counter (rule_id, member_id, period, points, times) VALUES ($1, $2, $3, $4, 1)"
                " ON CONFLICT (rule_id, member_id, period) DO UPDATE SET points = earn_counter.points + $4,"
                " times = earn_counter.times + 1", (rule.id, owner, period, item.points)))
        if rule.budget_points and item.points:
            statements.append((
                "INSERT INTO earn_counter (rule_id, member_id, period, points, times) VALUES ($1, 0, 'TOTAL', $2, 1)"
                " ON CONFLICT (rule_id, member_id, period) DO UPDATE SET points = earn_counter.points + $2,"
                " times = earn_counter.times + 1", (rule.id, item.points)))
    for sql, args in statements:  # several statements may touch one row: not execute_many
        await tx.execute(sql, *args)


# --- applying rules inside a move ---------------------------------------------------------------

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


async def apply(
    tx: Tx, acct: ledger.LockedAccount, facts: R.Facts, *, reason: str, source_type: str, source_ref: str | None,
    occurred_at: datetime, now: datetime, extra: tuple[R.Item, ...] = (), purchase_id: int | None = None,
    member_birthday: bool = True,
) -> Applied:
    """Evaluates the trigger's rules for a member whose account `acct` is locked, and books the
    result: an EARN entry with its breakdown, pending points, counters, growth value. `extra` items
    (a task's own reward) are booked with the rules' points."""
    rules = await active_rules(facts.trigger)
    if member_birthday and any(r.conditions.birthday for r in rules) and facts.birthday is None:
        birthday = await tx.fetchval("SELECT birthday FROM member WHERE id = $1", acct.member_id)
        if isinstance(birthday, str):
            birthday = date.fromisoformat(birthday)
        facts = replace(facts, birthday=birthday)
    candidates = [r for r in rules if R.matches(r, facts)]
    usage = await _usage(tx, acct.member_id, candidates, facts.at)
    outcome = R.evaluate(candidates, facts, usage)
    outcome = R.Outcome(tuple(extra) + outcome.items)
    pending = outcome.pending_points if purchase_id is not None else 0
    points = outcome.points - pending
    entry_id = None
    if points > 0:
        entry = await ledger.credit(tx, acct, points=points, kind="EARN", reason=reason, source_type=source_type,
                                    source_ref=source_ref, occurred_at=occurred_at)
        entry_id = entry.id
    if outcome.items and entry_id is not None:
        await tx.execute("INSERT INTO earn_breakdown (entry_id, breakdown) VALUES ($1, $2)", entry_id,
                         json.dumps(outcome.to_json(), ensure_ascii=False, separators=(",", ":")))
    if pending:
        await tx.execute(
            "INSERT INTO points_pending (member_id, purchase_id, points, points_cancelled, status, release_at,"
            " breakdown, created_at) VALUES ($1, $2, $3, 0, 'PENDING', $4, $5, $6)",
            acct.member_id, purchase_id, pending, occurred_at + timedelta(days=outcome.pending_days),
            json.dumps([i.to_json() for i in outcome.items if i.pending_days], ensure_ascii=False), now,
        )
    await _count(tx, acct.member_id, candidates, outcome, facts.at)
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
    birthday = (await birthday_of(member_id, occurred_at.astimezone(clock.SHANGHAI).month)
                if any(r.conditions.birthday for r in rules) else None)
    plan = PurchasePlan([], [], [], [])
    all_tiers = await tiers.all_tiers()
    facts = R.Facts("PURCHASE", occurred_at, "", 100, amount_fen, merchant_code, category, birthday)
    outcomes = R.evaluate_tiers(rules, facts, [(t.code, t.earn_multiplier_percent) for t in all_tiers])
    for tier, outcome in zip(all_tiers, outcomes, strict=True):
        plan.tier_ids.append(tier.id)
        plan.points.append(outcome.points)
        plan.growth.append(outcome.growth)
        plan.breakdowns.append(outcome.to_json_text())
    return plan


# --- previews -------------------------------------------------------------------------------

async def preview_receipt(member_id: int, merchant_code: str, amount_fen: int, at: datetime | None,
                          identity=None) -> R.Outcome:
    """pointsEarnPreview: checks the input (and, for an integration, that it may act for the merchant),
    then evaluates the receipt without booking anything."""
    from api.config import settings
    from api.services import merchants
    from api.services.errors import DomainError, ErrorCode
    from api.services.integrations import require_merchant

    if not 0 < amount_fen <= settings().max_receipt_fen:
        raise DomainError(ErrorCode.INVALID_INPUT, "amountFen must be positive and below the ceiling", ["amountFen"])
    merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    if identity is not None:
        require_merchant(identity, merchant.id, ["merchantCode"])
    outcome = await preview_purchase(member_id, merchant.code, merchant.category, amount_fen,
                                     clock.to_utc(at) if at else clock.now())
    if outcome is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such member", ["memberId"])
    return outcome


async def preview_purchase(member_id: int, merchant_code: str, category: str | None, amount_fen: int,
                           at: datetime) -> R.Outcome | None:
    """What a receipt would earn now, with the member's current counters; books nothing."""
    rows = await fetch(
        "SELECT m.tier_id, m.birthday, EXISTS (SELECT 1 FROM purchase p WHERE p.member_id = m.id) AS bought"
        " FROM member m WHERE m.id = $1", member_id)
    if not rows:
        return None
    tier = await tiers.tier_by_id(rows[0]["tier_id"])
    birthday = rows[0]["birthday"]
    if isinstance(birthday, str):
        birthday = date.fromisoformat(birthday)
    facts = R.Facts("PURCHASE", at, tier.code, tier.earn_multiplier_percent, amount_fen, merchant_code, category,
                    birthday, first_purchase=not rows[0]["bought"])
    candidates = [r for r in await active_rules("PURCHASE") if R.matches(r, facts)]
    return R.evaluate(candidates, facts, await _usage(None, member_id, candidates, at))


# --- reads ------------------------------------------------------------------------------------

async def breakdowns(entry_ids: list[int]) -> dict[int, list[dict]]:
    if not entry_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in entry_ids)
    rows = await fetch(f"SELECT entry_id, breakdown FROM earn_breakdown WHERE entry_id IN ({ids})")
    return {r["entry_id"]: json.loads(r["breakdown"]) for r in rows}


async def pending_totals(member_ids: list[int]) -> dict[int, int]:
    if not member_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in member_ids)
    rows = await fetch(
        f"SELECT member_id, SUM(points - points_cancelled) AS pending FROM points_pending"
        f" WHERE status = 'PENDING' AND member_id IN ({ids}) GROUP BY member_id")
    return {r["member_id"]: int(r["pending"]) for r in rows}


# --- refunds give back what the purchase took from caps and budgets ---------------------------------

async def give_back_counters(tx: Tx, purchase_id: int, member_id: int, occurred_at: datetime, amount_fen: int,
                             refunded_before: int, refunded_after: int) -> None:
    """A refund returns, in proportion (cumulatively), the cap room and budget its purchase used, so
    that counters count points the member keeps. Runs under the member's account lock."""
    row = await tx.fetchrow(
        "SELECT b.breakdown FROM earn_breakdown b JOIN points_entry e ON e.id = b.entry_id"
        " WHERE e.source_type = 'purchase' AND e.source_ref = $1 AND e.kind = 'EARN' ORDER BY e.id LIMIT 1",
        str(purchase_id))
    if row is None:  # every point of the purchase was pending: its breakdown waits with them
        row = await tx.fetchrow("SELECT breakdown FROM points_pending WHERE purchase_id = $1", purchase_id)
    if row is None:
        return
    day, month = periods(occurred_at)
    for item in json.loads(row["breakdown"]):
        points = int(item.get("points") or 0)
        back = points * refunded_after // amount_fen - points * refunded_before // amount_fen
        if back <= 0 or not item.get("ruleId") or item.get("superseded"):
            continue
        await tx.execute(
            "UPDATE earn_counter SET points = CASE WHEN points > $2 THEN points - $2 ELSE 0 END WHERE rule_id = $1"
            " AND ((member_id = $3 AND period IN ($4, $5)) OR (member_id = 0 AND period = 'TOTAL'))",
            int(item["ruleId"]), back, member_id, day, month)


# --- pending points: refunds cancel, the scheduled run releases ----------------------------------

async def cancel_pending(tx: Tx, purchase_id: int, refunded_fen: int, amount_fen: int, now: datetime) -> int:
    """A refund before release cancels pending points in proportion (cumulatively) to what has been
    refunded; the spendable balance is not touched. Returns the points cancelled now."""
    row = await tx.fetchrow(
        "SELECT id, points, points_cancelled FROM points_pending WHERE purchase_id = $1 AND status = 'PENDING'"
        + (" FOR UPDATE" if tx.postgres else ""), purchase_id)
    if row is None:
        return 0
    cancelled = int(row["points"]) * refunded_fen // amount_fen
    status = "CANCELLED" if cancelled >= int(row["points"]) else "PENDING"
    await tx.execute(
        "UPDATE points_pending SET points_cancelled = $1, status = $2, settled_at = $3 WHERE id = $4",
        cancelled, status, now if status == "CANCELLED" else None, row["id"])
    return cancelled - int(row["points_cancelled"])


@dataclass(frozen=True)
class ReleaseResult:
    released: int
    points: int


async def release_pending(as_of: datetime) -> ReleaseResult:
    """Books every pending row whose window closed by `as_of` as an EARN entry. Each row in its own
    transaction after locking the account, and only if it is still PENDING: safe to repeat and to
    run on two servers at once."""
    released = points = 0
    last_id = 0
    while True:
        rows = await fetch(
            "SELECT id, member_id FROM points_pending WHERE status = 'PENDING' AND release_at <= $1 AND id > $2"
            " ORDER BY id LIMIT 500", as_of, last_id)
        if not rows:
            break
        for row in rows:
            last_id = row["id"]
            async with transaction() as tx:
                got = await _release_one(tx, row["id"], row["member_id"], as_of)
            if got is not None:
                released, points = released + 1, points + got
    return ReleaseResult(released, points)


async def _release_one(tx: Tx, pending_id: int, member_id: int, as_of: datetime) -> int | None:
    acct = await ledger.lock_account(tx, member_id)
    assert acct is not None
    row = await tx.fetchrow(
        "SELECT p.purchase_id, p.points, p.points_cancelled, p.release_at, p.breakdown, u.receipt_no, u.amount_fen,"
        " m.name FROM points_pending p JOIN purchase u ON u.id = p.purchase_id JOIN merchant m ON m.id = u.merchant_id"
        " WHERE p.id = $1 AND p.status = 'PENDING'", pending_id)
    if row is None:
        return None  # another run released it
    net = int(row["points"]) - int(row["points_cancelled"])
    now = clock.now()
    entry_id = None
    await ledger.expire_account(tx, acct, now)
    if net > 0:
        entry = await ledger.credit(
            tx, acct, points=net, kind="EARN", reason=f"{row['name']} 消费积分到账（退货期满）",
            source_type="purchase", source_ref=str(row["purchase_id"]), occurred_at=clock.parse_db_time(row["release_at"]),
        )
        entry_id = entry.id
        await tx.execute("INSERT INTO earn_breakdown (entry_id, breakdown) VALUES ($1, $2)", entry_id, row["breakdown"])
    # The purchase now owns all of its points; what refunds cancelled counts as settled already.
    await tx.execute(
        "UPDATE purchase SET points_earned = points_earned + $1, points_reversed = points_reversed + $2 WHERE id = $3",
        int(row["points"]), int(row["points_cancelled"]), row["purchase_id"])
    await tx.execute("UPDATE points_pending SET status = 'RELEASED', entry_id = $1, settled_at = $2 WHERE id = $3",
                     entry_id, now, pending_id)
    return net
