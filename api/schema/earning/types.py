"""Earning output types: breakdowns, check-in calendars, tasks and their progress, rules, events."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import strawberry

from api.schema.base import Node, global_id
from api.schema.earning.enums import (
    BirthdayMatch,
    ConfigStatus,
    EarnAction,
    EarnCap,
    EarnTrigger,
    GrowthAction,
    InviteRole,
    StackingMode,
    TaskMetric,
    TaskPeriod,
)
from api.services.earning import admin as earning_admin
from api.services.earning import rules, tasks

# --- breakdowns and previews -------------------------------------------------------------------

@strawberry.type(description="One rule's part of an earn: why a receipt gave the points it gave.")
class EarnBreakdownItem:
    rule_code: str
    rule_name: str
    points: int = strawberry.field(description="Points this rule gave, after caps (0 when superseded).")
    growth_value: int
    uncapped_points: int = strawberry.field(description="What the rule would have given without caps.")
    capped_by: Optional[EarnCap] = strawberry.field(description="The cap that cut the points, if any.")
    superseded: bool = strawberry.field(description="A better rule of the same BEST_OF group applied instead.")
    pending_days: int = strawberry.field(description="Return window: the points are pending for this many days.")

    @classmethod
    def of(cls, item: dict) -> "EarnBreakdownItem":
        return cls(rule_code=item["rule"], rule_name=item["name"], points=item["points"], growth_value=item["growth"],
                   uncapped_points=item["uncapped"], capped_by=EarnCap(item["cap"]) if item.get("cap") else None,
                   superseded=item["superseded"], pending_days=item.get("pendingDays", 0))

    @classmethod
    def list_of(cls, outcome: rules.Outcome) -> list["EarnBreakdownItem"]:
        return [cls.of(i.to_json()) for i in outcome.items]


# --- check-in, share, review, events --------------------------------------------------------------

@strawberry.type
class CheckInDay:
    date: date
    streak: int
    points: int


@strawberry.type(description="A month of daily check-ins (Asia/Shanghai days).")
class CheckInCalendar:
    month: str
    days: list[CheckInDay]
    streak: int = strawberry.field(description="The current streak (0 once a day was missed).")


# --- tasks ------------------------------------------------------------------------------------

@strawberry.type(description="A growth task (成长任务).")
class Task(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    description: Optional[str]
    period: TaskPeriod
    metric: TaskMetric
    target: int
    reward_points: int
    reward_growth_value: int
    tier_codes: list[str]
    status: ConfigStatus
    starts_at: Optional[datetime]
    ends_at: Optional[datetime]
    segment_pk: strawberry.Private[Optional[int]] = None  # the `segment` field of the operators' schema only

    @classmethod
    def of(cls, t: tasks.TaskInfo) -> "Task":
        return cls(id=global_id("Task", t.id), pk=t.id, code=t.code, name=t.name,
                   description=t.description, period=TaskPeriod(t.period), metric=TaskMetric(t.metric),
                   target=t.target, reward_points=t.reward_points, reward_growth_value=t.reward_growth,
                   tier_codes=list(t.tier_codes), status=ConfigStatus(t.status), starts_at=t.starts_at,
                   ends_at=t.ends_at, segment_pk=t.segment_id)


@strawberry.type
class TaskProgress:
    task: Task
    period: str
    progress: int
    completed: bool
    claimed: bool
    period_ends_at: datetime

    @classmethod
    def of(cls, p: tasks.TaskProgress) -> "TaskProgress":
        return cls(task=Task.of(p.task), period=p.period, progress=p.progress, completed=p.completed,
                   claimed=p.claimed, period_ends_at=p.period_ends_at)


# --- operators: rules, tasks, events --------------------------------------------------------------

@strawberry.type
class EarnConditions:
    merchant_codes: list[str]
    merchant_categories: list[str]
    tier_codes: list[str]
    weekdays: list[int] = strawberry.field(description="ISO weekdays in Asia/Shanghai: 1 Monday … 7 Sunday.")
    birthday: Optional[BirthdayMatch]
    member_day: Optional[int] = strawberry.field(description="The mall's member day: a day of the month.")
    min_amount_fen: Optional[int]
    first_purchase: bool
    streak_days: list[int] = strawberry.field(description="Check-in: only on these days of a streak.")
    invite_role: Optional[InviteRole]
    event_codes: list[str]


@strawberry.type(description="An earning rule: a trigger, conditions, an action, caps and stacking.")
class EarnRule(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    trigger: EarnTrigger
    status: ConfigStatus
    priority: int
    stacking: StackingMode
    stack_group: Optional[str]
    conditions: EarnConditions
    action: EarnAction
    action_value: int
    apply_tier_multiplier: bool
    growth_action: GrowthAction
    growth_value: int
    cap_daily_points: Optional[int]
    cap_monthly_points: Optional[int]
    cap_daily_times: Optional[int]
    budget_points: Optional[int]
    return_days: int
    starts_at: Optional[datetime]
    ends_at: Optional[datetime]
    segment_pk: strawberry.Private[Optional[int]] = None  # the `segment` field of the operators' schema only

    @classmethod
    def of(cls, r: rules.Rule) -> "EarnRule":
        c = r.conditions
        return cls(
            id=global_id("EarnRule", r.id), pk=r.id, code=r.code, name=r.name,
            trigger=EarnTrigger(r.trigger), status=ConfigStatus(r.status), priority=r.priority,
            stacking=StackingMode(r.stacking), stack_group=r.stack_group,
            conditions=EarnConditions(
                merchant_codes=list(c.merchant_codes), merchant_categories=list(c.merchant_categories),
                tier_codes=list(c.tier_codes), weekdays=list(c.weekdays),
                birthday=BirthdayMatch(c.birthday) if c.birthday else None, member_day=c.member_day,
                min_amount_fen=c.min_amount_fen, first_purchase=c.first_purchase, streak_days=list(c.streak_days),
                invite_role=InviteRole(c.invite_role) if c.invite_role else None, event_codes=list(c.event_codes)),
            action=EarnAction(r.action), action_value=r.action_value, apply_tier_multiplier=r.apply_tier_multiplier,
            growth_action=GrowthAction(r.growth_action), growth_value=r.growth_value,
            cap_daily_points=r.cap_daily_points, cap_monthly_points=r.cap_monthly_points,
            cap_daily_times=r.cap_daily_times, budget_points=r.budget_points, return_days=r.return_days,
            starts_at=r.starts_at, ends_at=r.ends_at, segment_pk=r.segment_id)


@strawberry.type(description="A mall event members can be checked in to (once each).")
class MallEvent(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    merchant_code: Optional[str]
    status: ConfigStatus
    starts_at: datetime
    ends_at: datetime

    @classmethod
    def of(cls, e: earning_admin.EventInfo) -> "MallEvent":
        return cls(id=global_id("MallEvent", e.id), pk=e.id, code=e.code, name=e.name,
                   merchant_code=e.merchant_code, status=ConfigStatus(e.status), starts_at=e.starts_at,
                   ends_at=e.ends_at)
