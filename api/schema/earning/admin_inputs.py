"""Earning inputs and payloads of the operators' endpoint: rules, tasks, events and the scheduled run.
One input and one payload type per mutation (same shapes, own names)."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry

from api.schema.earning.enums import (
    BirthdayMatch,
    EarnAction,
    EarnTrigger,
    GrowthAction,
    InviteRole,
    StackingMode,
    TaskMetric,
    TaskPeriod,
)
from api.schema.earning.types import EarnRule, MallEvent, Task
from api.schema.errors import UserError
from api.services.earning import admin as earning_admin
from api.services.earning import rules


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


@strawberry.enum
class EarnRuleClearable(Enum):
    CAP_DAILY_POINTS = "cap_daily_points"
    CAP_MONTHLY_POINTS = "cap_monthly_points"
    CAP_DAILY_TIMES = "cap_daily_times"
    BUDGET_POINTS = "budget_points"
    STARTS_AT = "starts_at"
    ENDS_AT = "ends_at"
    STACK_GROUP = "stack_group"
    SEGMENT_ID = "segment_id"


@strawberry.enum
class TaskClearable(Enum):
    SEGMENT_ID = "segment_id"


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
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Only members of this segment may earn by it; null: every member.")

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
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Restricts it to the members of this segment (who may earn by it); null leaves it "
                                  "as it is; SEGMENT_ID in clear opens it to every member again.")
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
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Only members of this segment may see and claim it; null: every member.")

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
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Restricts it to the members of this segment (who may see and claim it); null leaves it "
                                  "as it is; SEGMENT_ID in clear opens it to every member again.")
    clear: Optional[list[TaskClearable]] = None

    def to_service(self) -> earning_admin.TaskInput:
        return earning_admin.TaskInput(None, self.name, self.description, None, None, self.target, self.reward_points,
                                       self.reward_growth_value,
                                       None if self.tier_codes is None else tuple(self.tier_codes), self.starts_at,
                                       self.ends_at, clear=tuple(c.value for c in self.clear or ()))


@strawberry.input
class TaskStatusInput:
    task_id: strawberry.ID


@strawberry.type
class TaskPayload:
    task: Optional[Task] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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
