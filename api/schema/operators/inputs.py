"""Inputs of the operators' mutations (one per mutation)."""
from __future__ import annotations

from typing import Optional

import strawberry

ROLES = "Role names: ADMIN, MARKETING, SERVICE, FINANCE, AUDITOR (a wrong name is ROLE_INVALID)."


@strawberry.input
class OperatorCreateInput:
    username: str
    display_name: Optional[str] = strawberry.field(default=None, description="Default: the username.")
    password: str = strawberry.field(description="10 to 256 characters; stored as an argon2id hash.")
    roles: list[str] = strawberry.field(description=ROLES)


@strawberry.input
class OperatorUpdateInput:
    operator_id: strawberry.ID
    display_name: Optional[str] = None
    roles: Optional[list[str]] = strawberry.field(default=None, description=ROLES + " Replaces the roles.")
    active: Optional[bool] = strawberry.field(default=None, description="false: every token stops at once.")
    password: Optional[str] = None


@strawberry.input
class PointsAdjustInput:
    member_id: strawberry.ID
    points: int
    reason: str
    idempotency_key: str


@strawberry.input
class PointsAdjustApproveInput:
    approval_id: strawberry.ID
    approve: bool = strawberry.field(description="true books the adjustment (once); false rejects it.")
    note: Optional[str] = None


@strawberry.input
class MerchantCreateInput:
    code: str
    name: str
    category: Optional[str] = None


@strawberry.input
class MerchantUpdateInput:
    merchant_id: strawberry.ID
    code: Optional[str] = None
    name: Optional[str] = None
    category: Optional[str] = None
    active: Optional[bool] = strawberry.field(
        default=None, description="false: no new receipts or till payments (MERCHANT_INACTIVE); refunds still work.")


@strawberry.input
class TierCreateInput:
    code: str
    name: str
    growth_threshold: int
    earn_multiplier_percent: int = 100
    benefits: Optional[list[str]] = None


@strawberry.input(description="Changes apply from now on; booked entries and logged tier changes stay as they are.")
class TierUpdateInput:
    tier_id: strawberry.ID
    name: Optional[str] = None
    growth_threshold: Optional[int] = None
    earn_multiplier_percent: Optional[int] = None
    benefits: Optional[list[str]] = None
    active: Optional[bool] = strawberry.field(
        default=None, description="false: no longer reached; its members keep it until their period closes.")
