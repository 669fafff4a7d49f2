"""Operators configure earning: rules, tasks and events (create, update, pause, activate, archive),
each change validated and audited in its own transaction."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from api.db import fetch, transaction
from api.services import clock, earning, merchants, tasks
from api.services import rules as R
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode

MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class RuleInput:
    code: str | None = None
    name: str | None = None
    trigger: str | None = None
    priority: int | None = None
    stacking: str | None = None
    stack_group: str | None = None
    conditions: R.Conditions | None = None
    action: str | None = None
    action_value: int | None = None
    apply_tier_multiplier: bool | None = None
    growth_action: str | None = None
    growth_value: int | None = None
    cap_daily_points: int | None = None
    cap_monthly_points: int | None = None
    cap_daily_times: int | None = None
    budget_points: int | None = None
    return_days: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    clear: tuple[str, ...] = ()  # optional fields to set back to null on update (caps, budget, window, group)


def _bad(message: str, field: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> DomainError:
    return DomainError(code, message, ["input", field])


def _validate(rule: R.Rule) -> None:
    if not rule.code or len(rule.code) > 64 or not rule.code.replace("_", "").replace("-", "").isalnum():
        raise _bad("code must be 1 to 64 letters, digits, - or _", "code")
    if not rule.name or len(rule.name) > 128:
        raise _bad("name must be 1 to 128 characters", "name")
    if rule.trigger not in R.TRIGGERS:
        raise _bad(f"trigger must be one of {', '.join(R.TRIGGERS)}", "trigger")
    if rule.stacking not in R.STACKING:
        raise _bad("stacking must be ADD or BEST_OF", "stacking")
    if rule.action not in R.ACTIONS or rule.growth_action not in R.GROWTH_ACTIONS:
        raise _bad("unknown action", "action")
    per_yuan = rule.action in ("POINTS_PER_YUAN", "MULTIPLIER_PERCENT") or rule.growth_action == "GROWTH_PER_YUAN"
    if per_yuan and rule.trigger != "PURCHASE":
        raise _bad("per-yuan actions and multipliers apply to PURCHASE rules only", "action")
    if not 0 <= rule.action_value <= MAX_POINTS or not 0 <= rule.growth_value <= MAX_POINTS:
        raise _bad(f"values must be 0 to {MAX_POINTS}", "actionValue")
    if rule.action == "MULTIPLIER_PERCENT" and not 100 < rule.action_value <= 1000:
        raise _bad("a multiplier is a percentage above 100 and at most 1000 (200 = double points)", "actionValue")
    if rule.action == "NONE" and rule.growth_action == "NONE":
        raise _bad("a rule must give points or growth value", "action")
    for name in ("cap_daily_points", "cap_monthly_points", "cap_daily_times", "budget_points"):
        value = getattr(rule, name)
        if value is not None and value <= 0:
            raise DomainError(ErrorCode.CAP_INVALID, f"{name} must be positive (leave it unset for no cap)",
                              ["input", _camel(name)])
    if rule.return_days < 0 or rule.return_days > 90:
        raise _bad("returnDays must be 0 to 90", "returnDays")
    if rule.return_days and rule.trigger != "PURCHASE":
        raise _bad("a return window applies to PURCHASE rules only", "returnDays")
    if rule.starts_at and rule.ends_at and rule.ends_at <= rule.starts_at:
        raise _bad("endsAt must be after startsAt", "endsAt")
    c = rule.conditions
    if any(not 1 <= d <= 7 for d in c.weekdays):
        raise _bad("weekdays are 1 (Monday) to 7 (Sunday)", "conditions")
    if c.birthday not in (None, "DAY", "MONTH") or c.invite_role not in (None, "INVITER", "INVITEE"):
        raise _bad("birthday is DAY or MONTH; inviteRole is INVITER or INVITEE", "conditions")
    if c.member_day is not None and not 1 <= c.member_day <= 31:
        raise _bad("memberDay is a day of the month, 1 to 31", "conditions")
    if c.min_amount_fen is not None and c.min_amount_fen < 0:
        raise _bad("minAmountFen may not be negative", "conditions")
    if c.invite_role and rule.trigger != "INVITE_ACCEPTED":
        raise _bad("inviteRole applies to INVITE_ACCEPTED rules only", "conditions")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


async def _check_references(rule: R.Rule) -> None:
    from api.services import tiers

    known = {t.code for t in await tiers.all_tiers()}
    if unknown := set(rule.conditions.tier_codes) - known:
        raise _bad(f"unknown tiers: {', '.join(sorted(unknown))}", "conditions")
    for code in rule.conditions.merchant_codes:
        await merchants.by_code(code, ["input", "conditions", "merchantCodes"])


async def _all_rules() -> list[R.Rule]:
    rows = await fetch(f"SELECT {earning.RULE_COLUMNS} FROM earn_rule ORDER BY id")
    return [earning._parse_rule(r) for r in rows]


async def _check_overlap(rule: R.Rule) -> None:
    for other in await _all_rules():
        if R.overlaps(rule, other):
            raise DomainError(ErrorCode.RULE_CONFLICT, f"overlaps rule {other.code}: both would add the same points"
                              " for the same purchases; change one, or put both in a BEST_OF group", ["input"])
        if (rule.stack_group and rule.stack_group == other.stack_group and other.id != rule.id
                and other.stacking != rule.stacking and other.status != "ARCHIVED"):
            raise DomainError(ErrorCode.RULE_CONFLICT, f"group {rule.stack_group} mixes ADD and BEST_OF"
                              f" (rule {other.code})", ["input", "stacking"])


def _rule_json(rule: R.Rule) -> dict[str, Any]:
    out = asdict(rule)
    out["conditions"] = rule.conditions.to_json()
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in out.items()}


async def _write_rule(rule: R.Rule, actor: Actor, action: str, before: R.Rule | None) -> R.Rule:
    now = clock.now()
    values = (rule.code, rule.name, rule.trigger, rule.status, rule.priority, rule.stacking, rule.stack_group,
              json.dumps(rule.conditions.to_json(), ensure_ascii=False), rule.action, rule.action_value,
              rule.apply_tier_multiplier, rule.growth_action, rule.growth_value, rule.cap_daily_points,
              rule.cap_monthly_points, rule.cap_daily_times, rule.budget_points, rule.return_days,
              rule.starts_at, rule.ends_at, now)
    async with transaction() as tx:
        if before is None:
            exists = await tx.fetchval("SELECT id FROM earn_rule WHERE code = $1", rule.code)
            if exists is not None:
                raise _bad("a rule with this code exists", "code")
            rule_id = await tx.fetchval(
                "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions,"
                " action, action_value, apply_tier_multiplier, growth_action, growth_value, cap_daily_points,"
                " cap_monthly_points, cap_daily_times, budget_points, return_days, starts_at, ends_at, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
                " $18, $19, $20, $21, $21) RETURNING id", *values)
            rule = replace(rule, id=rule_id)
        else:
            await tx.execute(
                "UPDATE earn_rule SET code = $1, name = $2, trigger = $3, status = $4, priority = $5, stacking = $6,"
                " stack_group = $7, conditions = $8, action = $9, action_value = $10, apply_tier_multiplier = $11,"
                " growth_action = $12, growth_value = $13, cap_daily_points = $14, cap_monthly_points = $15,"
                " cap_daily_times = $16, budget_points = $17, return_days = $18, starts_at = $19, ends_at = $20,"
                " updated_at = $21 WHERE id = $22", *values, rule.id)
        if rule.budget_points:
            await tx.execute(
                "INSERT INTO earn_counter (rule_id, member_id, period, points, times) VALUES ($1, 0, 'TOTAL', 0, 0)"
                " ON CONFLICT (rule_id, member_id, period) DO NOTHING", rule.id)
        await audit(tx, actor, action, "earn_rule", str(rule.id),
                    {"before": before and _rule_json(before), "after": _rule_json(rule)})
    earning.invalidate_cache()
    return rule


async def get_rule(rule_id: int) -> R.Rule:
    rows = await fetch(f"SELECT {earning.RULE_COLUMNS} FROM earn_rule WHERE id = $1", rule_id)
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such rule", ["input", "ruleId"])
    return earning._parse_rule(rows[0])


def _merge(rule: R.Rule, data: RuleInput) -> R.Rule:
    changes = {f.name: getattr(data, f.name) for f in fields(RuleInput)
               if f.name != "clear" and getattr(data, f.name) is not None}
    for name in ("code", "name", "stack_group"):
        if isinstance(changes.get(name), str):
            changes[name] = changes[name].strip()
    for name in data.clear:
        if name in ("cap_daily_points", "cap_monthly_points", "cap_daily_times", "budget_points", "starts_at",
                    "ends_at", "stack_group"):
            changes[name] = None
    return replace(rule, **changes)


async def create_rule(actor: Actor, data: RuleInput) -> R.Rule:
    rule = _merge(R.Rule(id=0, code="", name="", trigger=""), data)
    if data.starts_at:
        rule = replace(rule, starts_at=clock.to_utc(data.starts_at))
    if data.ends_at:
        rule = replace(rule, ends_at=clock.to_utc(data.ends_at))
    _validate(rule)
    await _check_references(rule)
    await _check_overlap(rule)
    return await _write_rule(rule, actor, "earn_rule.create", None)


async def update_rule(actor: Actor, rule_id: int, data: RuleInput) -> R.Rule:
    before = await get_rule(rule_id)
    if before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived rule cannot change", ["input", "ruleId"])
    rule = _merge(before, data)
    if data.trigger and data.trigger != before.trigger:
        raise _bad("the trigger of a rule cannot change; create another rule", "trigger")
    _validate(rule)
    await _check_references(rule)
    await _check_overlap(rule)
    return await _write_rule(rule, actor, "earn_rule.update", before)


async def set_rule_status(actor: Actor, rule_id: int, status: str) -> R.Rule:
    before = await get_rule(rule_id)
    if before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived rule cannot change", ["input", "ruleId"])
    if before.status == status:
        raise DomainError(ErrorCode.NOT_ACTIVE, f"the rule is {status} already", ["input", "ruleId"])
    rule = replace(before, status=status)
    if status == "ACTIVE":
        await _check_overlap(rule)
    return await _write_rule(rule, actor, f"earn_rule.{status.lower()}", before)


async def rules_page(limit: int, after_id: int | None, status: str | None) -> list[R.Rule]:
    rows = await fetch(
        f"SELECT {earning.RULE_COLUMNS} FROM earn_rule WHERE id > $1 AND ($3 = '' OR status = $3) ORDER BY id LIMIT $2",
        after_id or 0, limit, status or "")
    return [earning._parse_rule(r) for r in rows]


# --- tasks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskInput:
    code: str | None = None
    name: str | None = None
    description: str | None = None
    period: str | None = None
    metric: str | None = None
    target: int | None = None
    reward_points: int | None = None
    reward_growth: int | None = None
    tier_codes: tuple[str, ...] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


async def _task(task_id: int) -> tasks.TaskInfo:
    rows = await fetch(f"SELECT {tasks.TASK_COLUMNS} FROM earn_task WHERE id = $1", task_id)
    if not rows:
        raise DomainError(ErrorCode.NOT_FOUND, "no such task", ["input", "taskId"])
    return tasks.task_of(rows[0])


def _validate_task(t: tasks.TaskInfo, tier_codes: set[str]) -> None:
    if not t.code or len(t.code) > 64 or not t.name or len(t.name) > 128:
        raise _bad("code (1 to 64) and name (1 to 128 characters) are required", "code")
    if t.period not in tasks.PERIODS:
        raise _bad(f"period must be one of {', '.join(tasks.PERIODS)}", "period")
    if t.metric not in tasks.METRICS:
        raise _bad(f"metric must be one of {', '.join(tasks.METRICS)}", "metric")
    if not 0 < t.target <= 10**10:
        raise _bad("target must be positive", "target")
    if not (0 <= t.reward_points <= MAX_POINTS and 0 <= t.reward_growth <= MAX_POINTS) or not (
            t.reward_points or t.reward_growth):
        raise _bad("a task rewards points and/or growth value (0 to 1,000,000)", "rewardPoints")
    if unknown := set(t.tier_codes) - tier_codes:
        raise _bad(f"unknown tiers: {', '.join(sorted(unknown))}", "tierCodes")
    if t.starts_at and t.ends_at and t.ends_at <= t.starts_at:
        raise _bad("endsAt must be after startsAt", "endsAt")


async def save_task(actor: Actor, task_id: int | None, data: TaskInput, status: str | None = None) -> tasks.TaskInfo:
    from api.services import tiers

    before = await _task(task_id) if task_id is not None else None
    if before is not None and before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived task cannot change", ["input", "taskId"])
    base = before or tasks.TaskInfo(0, "", "", None, "", "", 0, 0, 0, (), "ACTIVE", None, None)
    changes = {k: v for k, v in asdict(data).items() if v is not None}
    if "tier_codes" in changes:
        changes["tier_codes"] = tuple(changes["tier_codes"])
    for name in ("starts_at", "ends_at"):
        if name in changes:
            changes[name] = clock.to_utc(changes[name])
    task = replace(base, **changes, **({"status": status} if status else {}))
    if status and before is not None and before.status == status:
        raise DomainError(ErrorCode.NOT_ACTIVE, f"the task is {status} already", ["input", "taskId"])
    _validate_task(task, {t.code for t in await tiers.all_tiers()})
    now = clock.now()
    values = (task.code.strip(), task.name.strip(), task.description, task.period, task.metric, task.target,
              task.reward_points, task.reward_growth, ",".join(task.tier_codes) or None, task.status, task.starts_at,
              task.ends_at, now)
    async with transaction() as tx:
        clash = await tx.fetchval("SELECT id FROM earn_task WHERE code = $1 AND id <> $2", task.code.strip(),
                                  task.id)
        if clash is not None:
            raise _bad("a task with this code exists", "code")
        if before is None:
            new_id = await tx.fetchval(
                "INSERT INTO earn_task (code, name, description, period, metric, target, reward_points, reward_growth,"
                " tier_codes, status, starts_at, ends_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6,"
                " $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id", *values)
            task = replace(task, id=new_id)
        else:
            await tx.execute(
                "UPDATE earn_task SET code = $1, name = $2, description = $3, period = $4, metric = $5, target = $6,"
                " reward_points = $7, reward_growth = $8, tier_codes = $9, status = $10, starts_at = $11,"
                " ends_at = $12, updated_at = $13 WHERE id = $14", *values, task.id)
        action = "task.create" if before is None else (f"task.{status.lower()}" if status else "task.update")
        await audit(tx, actor, action, "earn_task", str(task.id),
                    {"before": before and asdict(before), "after": asdict(task)})
    return task


async def tasks_page(limit: int, after_id: int | None) -> list[tasks.TaskInfo]:
    rows = await fetch(f"SELECT {tasks.TASK_COLUMNS} FROM earn_task WHERE id > $1 ORDER BY id LIMIT $2",
                       after_id or 0, limit)
    return [tasks.task_of(r) for r in rows]


# --- events -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EventInfo:
    id: int
    code: str
    name: str
    merchant_code: str | None
    status: str
    starts_at: datetime
    ends_at: datetime


EVENT_SQL = ("SELECT e.id, e.code, e.name, m.code AS merchant_code, e.status, e.starts_at, e.ends_at FROM mall_event e"
             " LEFT JOIN merchant m ON m.id = e.merchant_id")


def _event_of(r) -> EventInfo:
    return EventInfo(r["id"], r["code"], r["name"], r["merchant_code"], r["status"],
                     clock.parse_db_time(r["starts_at"]), clock.parse_db_time(r["ends_at"]))


async def _event(event_id: int) -> EventInfo | None:
    rows = await fetch(EVENT_SQL + " WHERE e.id = $1", event_id)
    return _event_of(rows[0]) if rows else None


async def save_event(actor: Actor, event_id: int | None, code: str | None, name: str | None,
                     merchant_code: str | None, starts_at: datetime | None, ends_at: datetime | None,
                     status: str | None = None) -> EventInfo:
    before = await _event(event_id) if event_id is not None else None
    if event_id is not None and before is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such event", ["input", "eventId"])
    if before is not None and before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived event cannot change", ["input", "eventId"])
    code = (code if code is not None else before.code if before else "").strip()
    name = (name if name is not None else before.name if before else "").strip()
    starts = clock.to_utc(starts_at) if starts_at else (before.starts_at if before else None)
    ends = clock.to_utc(ends_at) if ends_at else (before.ends_at if before else None)
    if not code or len(code) > 64 or not name or len(name) > 128:
        raise _bad("code (1 to 64) and name (1 to 128 characters) are required", "code")
    if starts is None or ends is None or ends <= starts:
        raise _bad("startsAt and endsAt are required, endsAt after startsAt", "endsAt")
    merchant_id = None
    if merchant_code is not None or (before and before.merchant_code):
        mcode = merchant_code if merchant_code is not None else before.merchant_code  # type: ignore[union-attr]
        merchant_id = (await merchants.by_code(mcode, ["input", "merchantCode"])).id if mcode else None
    status = status or (before.status if before else "ACTIVE")
    now = clock.now()
    async with transaction() as tx:
        clash = await tx.fetchval("SELECT id FROM mall_event WHERE code = $1 AND id <> $2", code, event_id or 0)
        if clash is not None:
            raise _bad("an event with this code exists", "code")
        if before is None:
            event_id = await tx.fetchval(
                "INSERT INTO mall_event (code, name, merchant_id, status, starts_at, ends_at, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id", code, name, merchant_id, status, starts, ends,
                now)
        else:
            await tx.execute(
                "UPDATE mall_event SET code = $1, name = $2, merchant_id = $3, status = $4, starts_at = $5,"
                " ends_at = $6, updated_at = $7 WHERE id = $8", code, name, merchant_id, status, starts, ends, now,
                event_id)
        after = {"code": code, "name": name, "merchant_id": merchant_id, "status": status, "starts_at": starts,
                 "ends_at": ends}
        await audit(tx, actor, "event.create" if before is None else "event.update", "mall_event", str(event_id),
                    {"before": before and asdict(before), "after": after})
    event = await _event(event_id)  # type: ignore[arg-type]
    assert event is not None
    return event


async def events_page(limit: int, after_id: int | None) -> list[EventInfo]:
    rows = await fetch(EVENT_SQL + " WHERE e.id > $1 ORDER BY e.id LIMIT $2", after_id or 0, limit)
    return [_event_of(r) for r in rows]


async def find(type_name: str, pk: int):
    """A rule, task or event by id, or None."""
    try:
        if type_name == "EarnRule":
            return await get_rule(pk)
        if type_name == "Task":
            return await _task(pk)
    except DomainError:
        return None
    return await _event(pk) if type_name == "MallEvent" else None
