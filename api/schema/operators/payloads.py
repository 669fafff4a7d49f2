"""Payloads of the operators' mutations (one per mutation); result fields are nullable."""
from __future__ import annotations

from typing import Optional

import strawberry

from api.schema.errors import UserError
from api.schema.operators.inputs import PointsAdjustInput
from api.schema.operators.types import Operator, PointsAdjustApproval
from api.schema.types import Member, Merchant, PointsEntry, Tier

__all__ = ["MerchantCreatePayload", "MerchantUpdatePayload", "OperatorCreatePayload", "OperatorUpdatePayload",
           "PointsAdjustApprovePayload", "PointsAdjustInput", "PointsAdjustPayload", "TierCreatePayload",
           "TierUpdatePayload"]


@strawberry.type
class OperatorCreatePayload:
    operator: Optional[Operator] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class OperatorUpdatePayload:
    operator: Optional[Operator] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PointsAdjustPayload:
    entry: Optional[PointsEntry] = None
    member: Optional[Member] = None
    approval: Optional[PointsAdjustApproval] = strawberry.field(
        default=None, description="Set when the adjustment waits for a second operator (nothing booked yet).")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PointsAdjustApprovePayload:
    approval: Optional[PointsAdjustApproval] = None
    entry: Optional[PointsEntry] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MerchantCreatePayload:
    merchant: Optional[Merchant] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MerchantUpdatePayload:
    merchant: Optional[Merchant] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TierCreatePayload:
    tier: Optional[Tier] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TierUpdatePayload:
    tier: Optional[Tier] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
