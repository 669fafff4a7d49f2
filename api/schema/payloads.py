"""Inputs and payloads: one input and one payload per mutation; result fields are nullable."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import strawberry

from api.schema.core import Gender, Purchase
from api.schema.errors import UserError
from api.schema.member import Member
from api.schema.operators.payloads import PointsAdjustInput, PointsAdjustPayload  # noqa: F401 - issue 10
from api.schema.operators.types import Operator  # noqa: F401 - issue 10

# --- public: members ---------------------------------------------------------------------------


@strawberry.input
class AuthSmsCodeRequestInput:
    phone: str


@strawberry.type
class AuthSmsCodeRequestPayload:
    code_expires_at: Optional[datetime] = None
    resend_after_seconds: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AuthSmsLoginInput:
    phone: str
    code: str
    invite_code: Optional[str] = strawberry.field(
        default=None, description="Another member's invite code; used when this login registers a new member.")


@strawberry.type
class AuthSmsLoginPayload:
    token: Optional[str] = None
    member: Optional[Member] = None
    registered: Optional[bool] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MemberProfileUpdateInput:
    nickname: Optional[str] = None
    gender: Optional[Gender] = None
    birthday: Optional[date] = None


@strawberry.type
class MemberProfileUpdatePayload:
    member: Optional[Member] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- public: integrations ----------------------------------------------------------------------


@strawberry.input
class PurchaseRecordInput:
    member_code: str
    merchant_code: str
    receipt_no: str
    amount_fen: int
    occurred_at: datetime
    idempotency_key: str


@strawberry.type
class PurchaseRecordPayload:
    purchase: Optional[Purchase] = None
    points_earned: Optional[int] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PurchaseRecordBatchInput:
    purchases: list[PurchaseRecordInput]


@strawberry.type
class PurchaseRecordBatchPayload:
    results: list[PurchaseRecordPayload] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PurchaseRefundInput:
    merchant_code: str
    receipt_no: str
    refund_amount_fen: int
    idempotency_key: str


@strawberry.type
class PurchaseRefundPayload:
    points_reversed: Optional[int] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PointsPayInput:
    member_code: str
    merchant_code: str
    receipt_no: str
    points: int
    idempotency_key: str


@strawberry.type
class PointsPayPayload:
    points_spent: Optional[int] = None
    cash_value_fen: Optional[int] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- operators ---------------------------------------------------------------------------------


@strawberry.input
class OperatorLoginInput:
    username: str
    password: str


@strawberry.type
class OperatorLoginPayload:
    token: Optional[str] = None
    operator: Optional[Operator] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PointsExpireRunInput:
    as_of: Optional[datetime] = None


@strawberry.type
class PointsExpireRunPayload:
    lots_expired: Optional[int] = None
    points_expired: Optional[int] = None
    members_affected: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class TierEvaluationRunInput:
    as_of: Optional[datetime] = None


@strawberry.type
class TierEvaluationRunPayload:
    members_evaluated: Optional[int] = None
    downgraded: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SmsMessage:
    id: strawberry.ID
    phone: str
    body: str
    created_at: datetime


@strawberry.type
class IntegrationKey:
    key_id: str
    name: str
    merchant_codes: list[str]
    created_at: datetime
    revoked_at: Optional[datetime]
    scopes: list[str] = strawberry.field(description="pos: till calls; payment: payment notifications; parking: the car park.")


@strawberry.input
class IntegrationKeyCreateInput:
    name: str
    merchant_codes: list[str]
    scopes: Optional[list[str]] = strawberry.field(default=None, description="Default [\"pos\"].")


@strawberry.type
class IntegrationKeyCreatePayload:
    integration_key: Optional[IntegrationKey] = None
    secret: Optional[str] = strawberry.field(default=None, description="Shown once; store it in the integration.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class IntegrationKeyRevokeInput:
    key_id: str


@strawberry.type
class IntegrationKeyRevokePayload:
    integration_key: Optional[IntegrationKey] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
