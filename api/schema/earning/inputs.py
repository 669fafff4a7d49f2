"""Earning inputs and payloads of the public endpoint: check-in, share, review, event check-in, task
claims and earn previews."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import strawberry

from api.schema.earning.types import CheckInDay, EarnBreakdownItem
from api.schema.errors import UserError


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
