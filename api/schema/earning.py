"""Earning (issue 3): types, inputs and payloads of rules, breakdowns, check-in, tasks, events,
invites and previews, on both endpoints."""
from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Optional

import strawberry

from api.schema.errors import UserError
from api.schema.ids import to_global_id
from api.schema.types import Node
from api.services.earning import admin as earning_admin
from api.services.earning import rules, tasks


@strawberry.enum
class EarnTrigger(Enum):
    PURCHASE = "PURCHASE"
    REGISTER = "REGISTER"
    CHECK_IN = "CHECK_IN"
    PROFILE_COMPLETED = "PROFILE_COMPLETED"
    REVIEW = "REVIEW"
    SHARE = "SHARE"
    INVITE_ACCEPTED = "INVITE_ACCEPTED"
    EVENT_ATTENDED = "EVENT_ATTENDED"
    TASK_COMPLETED = "TASK_COMPLETED"


@strawberry.enum
class EarnAction(Enum):
    POINTS_PER_YUAN = "POINTS_PER_YUAN"
    MULTIPLIER_PERCENT = "MULTIPLIER_PERCENT"
    FIXED_POINTS = "FIXED_POINTS"
    NONE = "NONE"


@strawberry.enum
class GrowthAction(Enum):
    GROWTH_PER_YUAN = "GROWTH_PER_YUAN"
    FIXED_GROWTH = "FIXED_GROWTH"
    NONE = "NONE"


@strawberry.enum
class StackingMode(Enum):
    ADD = "ADD"
    BEST_OF = "BEST_OF"


@strawberry.enum
class ConfigStatus(Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ARCHIVED = "ARCHIVED"


@strawberry.enum
class EarnCap(Enum):
    DAILY_POINTS = "DAILY_POINTS"
    MONTHLY_POINTS = "MONTHLY_POINTS"
    DAILY_TIMES = "DAILY_TIMES"
    BUDGET = "BUDGET"


@strawberry.enum
class BirthdayMatch(Enum):
    DAY = "DAY"
    MONTH = "MONTH"


@strawberry.enum
class InviteRole(Enum):
    INVITER = "INVITER"
    INVITEE = "INVITEE"


@strawberry.enum
class TaskPeriod(Enum):
    ONCE = "ONCE"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"


@strawberry.enum
class TaskMetric(Enum):
    CHECK_IN = "CHECK_IN"
    SHARE = "SHARE"
    REVIEW = "REVIEW"
    EVENT = "EVENT"
    PURCHASE_COUNT = "PURCHASE_COUNT"
    PURCHASE_AMOUNT = "PURCHASE_AMOUNT"


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


@strawberry.input
class PointsEarnPreviewInput:
    member_code: Optional[str] = strawberry.field(default=None, description="Integrations: the member's till code.")
    member_id: Optional[strawberry.ID] = strawberry.field(default=None, description="Operators: the member.")
    merchant_code: str = ""
    amount_fen: int = 0
    occurred_at: Optional[datetime] = None


@strawberry.type
class PointsEarnPreviewPayload:
    points: Optional[int] = None
    points_now: Optional[int] = None
    points_pending: Optional[int] = None
    growth_value: Optional[int] = None
    breakdown: Optional[list[EarnBreakdownItem]] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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


@strawberry.input
class MemberCheckInInput:
    idempotency_key: str


@strawberry.type
class MemberCheckInPayload:
    check_in: Optional[CheckInDay] = None
    points_earned: Optional[int] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ShareRecordInput:
    channel: str = strawberry.field(description="Where it was shared, e.g. WECHAT_MOMENTS.")
    idempotency_key: str
    target: Optional[str] = strawberry.field(default=None, description="What was shared (a page or product id).")


@strawberry.type
class ShareRecordPayload:
    points_earned: Optional[int] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ReviewRecordInput:
    merchant_code: str
    receipt_no: str
    rating: int
    idempotency_key: str


@strawberry.type
class ReviewRecordPayload:
    points_earned: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class EventCheckInInput:
    event_id: strawberry.ID
    idempotency_key: str
    member_code: Optional[str] = strawberry.field(default=None, description="Integrations: the member's till code.")
    member_id: Optional[strawberry.ID] = strawberry.field(default=None, description="Operators: the member.")


@strawberry.type
class EventCheckInPayload:
    points_earned: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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

    @classmethod
    def of(cls, t: tasks.TaskInfo) -> "Task":
        return cls(id=strawberry.ID(to_global_id("Task", t.id)), pk=t.id, code=t.code, name=t.name,
                   description=t.description, period=TaskPeriod(t.period), metric=TaskMetric(t.metric),
                   target=t.target, reward_points=t.reward_points, reward_growth_value=t.reward_growth,
                   tier_codes=list(t.tier_codes), status=ConfigStatus(t.status), starts_at=t.starts_at,
                   ends_at=t.ends_at)


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


@strawberry.input
class TaskClaimInput:
    task_id: strawberry.ID
    idempotency_key: str


@strawberry.type
class TaskClaimPayload:
    points_earned: Optional[int] = None
    growth_value_earned: Optional[int] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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


@strawberry.input
class EarnConditionsInput:
    merchant_codes: Optional[list[str]] = None
    merchant_categories: Optional[list[str]] = None
    tier_codes: Optional[list[str]] = None
    weekdays: Optional[list[int]] = None
    birthday: Optional[BirthdayMatch] = None
    member_day: Optional[int] = None
    min_amount_fen: Optional[int] = None
    first_purchase: Optional[bool] = None
    streak_days: Optional[list[int]] = None
    invite_role: Optional[InviteRole] = None
    event_codes: Optional[list[str]] = None

    def to_service(self) -> rules.Conditions:
        return rules.Conditions(
            tuple(self.merchant_codes or ()), tuple(self.merchant_categories or ()), tuple(self.tier_codes or ()),
            tuple(self.weekdays or ()), self.birthday.value if self.birthday else None, self.member_day,
            self.min_amount_fen, bool(self.first_purchase), tuple(self.streak_days or ()),
            self.invite_role.value if self.invite_role else None, tuple(self.event_codes or ()))


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

    @classmethod
    def of(cls, r: rules.Rule) -> "EarnRule":
        c = r.conditions
        return cls(
            id=strawberry.ID(to_global_id("EarnRule", r.id)), pk=r.id, code=r.code, name=r.name,
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
            starts_at=r.starts_at, ends_at=r.ends_at)


@strawberry.enum
class EarnRuleClearable(Enum):
    CAP_DAILY_POINTS = "cap_daily_points"
    CAP_MONTHLY_POINTS = "cap_monthly_points"
    CAP_DAILY_TIMES = "cap_daily_times"
    BUDGET_POINTS = "budget_points"
    STARTS_AT = "starts_at"
    ENDS_AT = "ends_at"
    STACK_GROUP = "stack_group"


@strawberry.input
class EarnRuleCreateInput:
    code: str
    name: str
    trigger: EarnTrigger
    action: EarnAction
    action_value: int = 0
    priority: int = 0
    stacking: StackingMode = StackingMode.ADD
    stack_group: Optional[str] = None
    conditions: Optional[EarnConditionsInput] = None
    apply_tier_multiplier: bool = False
    growth_action: GrowthAction = GrowthAction.NONE
    growth_value: int = 0
    cap_daily_points: Optional[int] = None
    cap_monthly_points: Optional[int] = None
    cap_daily_times: Optional[int] = None
    budget_points: Optional[int] = None
    return_days: int = 0
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None

    def to_service(self) -> earning_admin.RuleInput:
        return earning_admin.RuleInput(
            self.code, self.name, self.trigger.value, self.priority, self.stacking.value, self.stack_group,
            self.conditions.to_service() if self.conditions else rules.Conditions(), self.action.value,
            self.action_value, self.apply_tier_multiplier, self.growth_action.value, self.growth_value,
            self.cap_daily_points, self.cap_monthly_points, self.cap_daily_times, self.budget_points,
            self.return_days, self.starts_at, self.ends_at)


@strawberry.input(description="Fields left out keep their values; `clear` sets optional ones back to none.")
class EarnRuleUpdateInput:
    rule_id: strawberry.ID
    name: Optional[str] = None
    priority: Optional[int] = None
    stacking: Optional[StackingMode] = None
    stack_group: Optional[str] = None
    conditions: Optional[EarnConditionsInput] = None
    action: Optional[EarnAction] = None
    action_value: Optional[int] = None
    apply_tier_multiplier: Optional[bool] = None
    growth_action: Optional[GrowthAction] = None
    growth_value: Optional[int] = None
    cap_daily_points: Optional[int] = None
    cap_monthly_points: Optional[int] = None
    cap_daily_times: Optional[int] = None
    budget_points: Optional[int] = None
    return_days: Optional[int] = None
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None
    clear: Optional[list[EarnRuleClearable]] = None

    def to_service(self) -> earning_admin.RuleInput:
        return earning_admin.RuleInput(
            None, self.name, None, self.priority, self.stacking.value if self.stacking else None, self.stack_group,
            self.conditions.to_service() if self.conditions else None, self.action.value if self.action else None,
            self.action_value, self.apply_tier_multiplier, self.growth_action.value if self.growth_action else None,
            self.growth_value, self.cap_daily_points, self.cap_monthly_points, self.cap_daily_times,
            self.budget_points, self.return_days, self.starts_at, self.ends_at,
            tuple(c.value for c in self.clear or ()))


@strawberry.input
class EarnRuleStatusInput:
    rule_id: strawberry.ID


@strawberry.type
class EarnRulePayload:
    rule: Optional[EarnRule] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class TaskCreateInput:
    code: str
    name: str
    period: TaskPeriod
    metric: TaskMetric
    target: int
    reward_points: int = 0
    reward_growth_value: int = 0
    description: Optional[str] = None
    tier_codes: Optional[list[str]] = None
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None

    def to_service(self) -> earning_admin.TaskInput:
        return earning_admin.TaskInput(self.code, self.name, self.description, self.period.value, self.metric.value,
                                       self.target, self.reward_points, self.reward_growth_value,
                                       tuple(self.tier_codes or ()), self.starts_at, self.ends_at)


@strawberry.input
class TaskUpdateInput:
    task_id: strawberry.ID
    name: Optional[str] = None
    description: Optional[str] = None
    target: Optional[int] = None
    reward_points: Optional[int] = None
    reward_growth_value: Optional[int] = None
    tier_codes: Optional[list[str]] = None
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None

    def to_service(self) -> earning_admin.TaskInput:
        return earning_admin.TaskInput(None, self.name, self.description, None, None, self.target, self.reward_points,
                                       self.reward_growth_value,
                                       None if self.tier_codes is None else tuple(self.tier_codes), self.starts_at,
                                       self.ends_at)


@strawberry.input
class TaskStatusInput:
    task_id: strawberry.ID


@strawberry.type
class TaskPayload:
    task: Optional[Task] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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
        return cls(id=strawberry.ID(to_global_id("MallEvent", e.id)), pk=e.id, code=e.code, name=e.name,
                   merchant_code=e.merchant_code, status=ConfigStatus(e.status), starts_at=e.starts_at,
                   ends_at=e.ends_at)


@strawberry.input
class MallEventCreateInput:
    code: str
    name: str
    starts_at: datetime
    ends_at: datetime
    merchant_code: Optional[str] = strawberry.field(
        default=None, description="Integrations bound to this merchant may check members in.")


@strawberry.input
class MallEventUpdateInput:
    event_id: strawberry.ID
    name: Optional[str] = None
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None
    merchant_code: Optional[str] = None


@strawberry.input
class MallEventStatusInput:
    event_id: strawberry.ID


@strawberry.type
class MallEventPayload:
    event: Optional[MallEvent] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class EarningScheduleRunInput:
    as_of: Optional[datetime] = None


@strawberry.type
class EarningScheduleRunPayload:
    pending_released: Optional[int] = None
    pending_points_released: Optional[int] = None
    invites_rewarded: Optional[int] = None
    points_expired: Optional[int] = None
    tier_periods_closed: Optional[int] = None
    orders_expired: Optional[int] = strawberry.field(default=None, description="Unpaid points-mall orders lapsed.")
    stays_abandoned: Optional[int] = strawberry.field(default=None, description="Parking stays closed as abandoned.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# One input and one payload type per mutation (same shapes, own names).
@strawberry.type
class EarnRuleCreatePayload(EarnRulePayload):
    pass


@strawberry.type
class EarnRuleUpdatePayload(EarnRulePayload):
    pass


@strawberry.input
class EarnRulePauseInput(EarnRuleStatusInput):
    pass


@strawberry.type
class EarnRulePausePayload(EarnRulePayload):
    pass


@strawberry.input
class EarnRuleActivateInput(EarnRuleStatusInput):
    pass


@strawberry.type
class EarnRuleActivatePayload(EarnRulePayload):
    pass


@strawberry.input
class EarnRuleArchiveInput(EarnRuleStatusInput):
    pass


@strawberry.type
class EarnRuleArchivePayload(EarnRulePayload):
    pass


@strawberry.type
class TaskCreatePayload(TaskPayload):
    pass


@strawberry.type
class TaskUpdatePayload(TaskPayload):
    pass


@strawberry.input
class TaskPauseInput(TaskStatusInput):
    pass


@strawberry.type
class TaskPausePayload(TaskPayload):
    pass


@strawberry.input
class TaskActivateInput(TaskStatusInput):
    pass


@strawberry.type
class TaskActivatePayload(TaskPayload):
    pass


@strawberry.input
class TaskArchiveInput(TaskStatusInput):
    pass


@strawberry.type
class TaskArchivePayload(TaskPayload):
    pass


@strawberry.type
class MallEventCreatePayload(MallEventPayload):
    pass


@strawberry.type
class MallEventUpdatePayload(MallEventPayload):
    pass


@strawberry.input
class MallEventArchiveInput(MallEventStatusInput):
    pass


@strawberry.type
class MallEventArchivePayload(MallEventPayload):
    pass
