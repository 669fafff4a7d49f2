"""Operators configure earning: rules, tasks and events (create, update, pause, activate, archive),
each change validated and audited in its own transaction, through the models."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from api.db import transaction
from api.models import EarnRule, EarnTask, MallEvent, Merchant
from api.services import clock, merchants, tiers
from api.services.audit import Actor, audit
from api.services.earning import rules as R
from api.services.earning import sql
from api.services.earning.cache import invalidate_cache, rule_of
from api.services.earning.tasks import TaskInfo, get_task
from api.services.earning.validation import MAX_POINTS, bad, validate_rule, validate_task
from api.services.errors import DomainError, ErrorCode
from api.services.segments import membership

__all__ = ["MAX_POINTS", "RuleInput", "TaskInput", "EventInfo", "get_rule", "create_rule", "update_rule",
           "set_rule_status", "rules_page", "save_task", "tasks_page", "save_event", "events_page", "find"]


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
    clear: tuple[str, ...] = ()  # optional fields to set back to null on update (caps, budget, window, group, segment)
    segment_id: int | None = None  # only members of this segment earn by it (issue 13 item 3)


async def _check_references(rule: R.Rule, data: RuleInput) -> None:
    if data.segment_id is not None:
        await membership.require(data.segment_id, ["input", "segmentId"])
    known = {t.code for t in await tiers.all_tiers()}
    if unknown := set(rule.conditions.tier_codes) - known:
        raise bad(f"unknown tiers: {', '.join(sorted(unknown))}", "conditions")
    for code in rule.conditions.merchant_codes:
        await merchants.by_code(code, ["input", "conditions", "merchantCodes"])


async def _check_overlap(rule: R.Rule) -> None:
    for other in map(rule_of, await EarnRule.all().order_by("id")):
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


def _rule_row(rule: R.Rule) -> dict[str, Any]:
    """The rule's stored fields (the model's names are the dataclass's; conditions as JSON text)."""
    row = {f.name: getattr(rule, f.name) for f in fields(R.Rule) if f.name != "id"}
    row["conditions"] = json.dumps(rule.conditions.to_json(), ensure_ascii=False)
    return row


async def _write_rule(rule: R.Rule, actor: Actor, action: str, before: R.Rule | None) -> R.Rule:
    now = clock.now()
    async with transaction() as tx:
        if before is None:
            if await EarnRule.exists(code=rule.code):
                raise bad("a rule with this code exists", "code")
            created = await EarnRule.create(**_rule_row(rule), created_at=now, updated_at=now)
            rule = replace(rule, id=created.id)
        else:
            await EarnRule.filter(id=rule.id).update(**_rule_row(rule), updated_at=now)
        if rule.budget_points:
            await tx.execute(sql.BUDGET_ROW_ENSURE, rule.id)
        await audit(tx, actor, action, "earn_rule", str(rule.id),
                    {"before": before and _rule_json(before), "after": _rule_json(rule)})
    invalidate_cache()
    return rule


async def get_rule(rule_id: int) -> R.Rule:
    row = await EarnRule.get_or_none(id=rule_id)
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such rule", ["input", "ruleId"])
    return rule_of(row)


def _merge(rule: R.Rule, data: RuleInput) -> R.Rule:
    changes = {f.name: getattr(data, f.name) for f in fields(RuleInput)
               if f.name != "clear" and getattr(data, f.name) is not None}
    for name in ("code", "name", "stack_group"):
        if isinstance(changes.get(name), str):
            changes[name] = changes[name].strip()
    for name in data.clear:
        if name in ("cap_daily_points", "cap_monthly_points", "cap_daily_times", "budget_points", "starts_at",
                    "ends_at", "stack_group", "segment_id"):
            changes[name] = None
    return replace(rule, **changes)


async def create_rule(actor: Actor, data: RuleInput) -> R.Rule:
    rule = _merge(R.Rule(id=0, code="", name="", trigger=""), data)
    if data.starts_at:
        rule = replace(rule, starts_at=clock.to_utc(data.starts_at))
    if data.ends_at:
        rule = replace(rule, ends_at=clock.to_utc(data.ends_at))
    validate_rule(rule)
    await _check_references(rule, data)
    await _check_overlap(rule)
    return await _write_rule(rule, actor, "earn_rule.create", None)


async def update_rule(actor: Actor, rule_id: int, data: RuleInput) -> R.Rule:
    before = await get_rule(rule_id)
    if before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived rule cannot change", ["input", "ruleId"])
    rule = _merge(before, data)
    if data.trigger and data.trigger != before.trigger:
        raise bad("the trigger of a rule cannot change; create another rule", "trigger")
    validate_rule(rule)
    await _check_references(rule, data)
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
    query = EarnRule.filter(id__gt=after_id or 0)
    if status:
        query = query.filter(status=status)
    return [rule_of(r) for r in await query.order_by("id").limit(limit)]


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
    segment_id: int | None = None  # only members of this segment see and claim it (issue 13 item 3)
    clear: tuple[str, ...] = ()  # optional fields to set back to null on update ("segment_id")


def _task_changes(before: TaskInfo | None, data: TaskInput, status: str | None) -> TaskInfo:
    base = before or TaskInfo(0, "", "", None, "", "", 0, 0, 0, (), "ACTIVE", None, None)
    changes: dict[str, Any] = {k: v for k, v in asdict(data).items() if v is not None and k != "clear"}
    changes.update({name: None for name in data.clear if name == "segment_id"})
    if "tier_codes" in changes:
        changes["tier_codes"] = tuple(changes["tier_codes"])
    for name in ("starts_at", "ends_at"):
        if name in changes:
            changes[name] = clock.to_utc(changes[name])
    for name in ("code", "name"):
        if isinstance(changes.get(name), str):
            changes[name] = changes[name].strip()
    if status:
        changes["status"] = status
    return replace(base, **changes)


async def save_task(actor: Actor, task_id: int | None, data: TaskInput, status: str | None = None) -> TaskInfo:
    before = await get_task(task_id, ["input", "taskId"]) if task_id is not None else None
    if before is not None and before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived task cannot change", ["input", "taskId"])
    task = _task_changes(before, data, status)
    if status and before is not None and before.status == status:
        raise DomainError(ErrorCode.NOT_ACTIVE, f"the task is {status} already", ["input", "taskId"])
    validate_task(task, {t.code for t in await tiers.all_tiers()})
    if data.segment_id is not None:
        await membership.require(data.segment_id, ["input", "segmentId"])
    now = clock.now()
    row = {k: v for k, v in asdict(task).items() if k != "id"}
    row["tier_codes"] = ",".join(task.tier_codes) or None
    async with transaction() as tx:
        if await EarnTask.filter(code=task.code).exclude(id=task.id).exists():
            raise bad("a task with this code exists", "code")
        if before is None:
            task = replace(task, id=(await EarnTask.create(**row, created_at=now, updated_at=now)).id)
        else:
            await EarnTask.filter(id=task.id).update(**row, updated_at=now)
        action = "task.create" if before is None else (f"task.{status.lower()}" if status else "task.update")
        await audit(tx, actor, action, "earn_task", str(task.id),
                    {"before": before and asdict(before), "after": asdict(task)})
    return task


async def tasks_page(limit: int, after_id: int | None) -> list[TaskInfo]:
    return [TaskInfo.of(t) for t in await EarnTask.filter(id__gt=after_id or 0).order_by("id").limit(limit)]


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


async def _events(rows: list[MallEvent]) -> list[EventInfo]:
    """The events with their merchants' codes (one query for all of them)."""
    ids = {r.merchant_id for r in rows if r.merchant_id is not None}
    codes = dict(await Merchant.filter(id__in=ids).values_list("id", "code")) if ids else {}
    return [EventInfo(r.id, r.code, r.name, codes.get(r.merchant_id), r.status, r.starts_at, r.ends_at)
            for r in rows]


async def _event(event_id: int) -> EventInfo | None:
    row = await MallEvent.get_or_none(id=event_id)
    return None if row is None else (await _events([row]))[0]


async def _event_row(before: EventInfo | None, code: str | None, name: str | None, merchant_code: str | None,
                     starts_at: datetime | None, ends_at: datetime | None, status: str | None) -> dict[str, Any]:
    """The event's checked fields after the change (None keeps what it had)."""
    code = (code if code is not None else before.code if before else "").strip()
    name = (name if name is not None else before.name if before else "").strip()
    starts = clock.to_utc(starts_at) if starts_at else (before.starts_at if before else None)
    ends = clock.to_utc(ends_at) if ends_at else (before.ends_at if before else None)
    if not code or len(code) > 64 or not name or len(name) > 128:
        raise bad("code (1 to 64) and name (1 to 128 characters) are required", "code")
    if starts is None or ends is None or ends <= starts:
        raise bad("startsAt and endsAt are required, endsAt after startsAt", "endsAt")
    mcode = merchant_code if merchant_code is not None else (before.merchant_code if before else None)
    merchant_id = (await merchants.by_code(mcode, ["input", "merchantCode"])).id if mcode else None
    return {"code": code, "name": name, "merchant_id": merchant_id,
            "status": status or (before.status if before else "ACTIVE"), "starts_at": starts, "ends_at": ends}


async def save_event(actor: Actor, event_id: int | None, code: str | None, name: str | None,
                     merchant_code: str | None, starts_at: datetime | None, ends_at: datetime | None,
                     status: str | None = None) -> EventInfo:
    before = await _event(event_id) if event_id is not None else None
    if event_id is not None and before is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such event", ["input", "eventId"])
    if before is not None and before.status == "ARCHIVED":
        raise DomainError(ErrorCode.NOT_ACTIVE, "an archived event cannot change", ["input", "eventId"])
    after = await _event_row(before, code, name, merchant_code, starts_at, ends_at, status)
    now = clock.now()
    async with transaction() as tx:
        if await MallEvent.filter(code=after["code"]).exclude(id=event_id or 0).exists():
            raise bad("an event with this code exists", "code")
        if before is None:
            saved_id = (await MallEvent.create(**after, created_at=now, updated_at=now)).id
        else:
            saved_id = before.id
            await MallEvent.filter(id=saved_id).update(**after, updated_at=now)
        await audit(tx, actor, "event.create" if before is None else "event.update", "mall_event", str(saved_id),
                    {"before": before and asdict(before), "after": after})
    event = await _event(saved_id)
    assert event is not None
    return event


async def events_page(limit: int, after_id: int | None) -> list[EventInfo]:
    return await _events(list(await MallEvent.filter(id__gt=after_id or 0).order_by("id").limit(limit)))


async def find(type_name: str, pk: int) -> R.Rule | TaskInfo | EventInfo | None:
    """A rule, task or event by id, or None."""
    try:
        if type_name == "EarnRule":
            return await get_rule(pk)
        if type_name == "Task":
            return await get_task(pk, ["input", "taskId"])
    except DomainError:
        return None
    return await _event(pk) if type_name == "MallEvent" else None
