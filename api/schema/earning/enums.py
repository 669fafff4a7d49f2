"""Earning enums: triggers, actions, caps, statuses, task periods and metrics."""
from __future__ import annotations

from enum import Enum

import strawberry


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
