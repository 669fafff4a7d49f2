"""Merchant assistant inputs and payloads (public endpoint: clerks, proposals; operators: decisions)."""
from __future__ import annotations

from typing import Optional

import strawberry

from api.schema.errors import UserError
from api.schema.merchant_assistant.types import MerchantVoucherProposal
from api.schema.staff import MerchantStaff


@strawberry.input
class MerchantClerkCreateInput:
    username: str = strawberry.field(description="3 to 64 of a-z, 0-9, '.', '_', '-' (stored in lower case).")
    display_name: str = strawberry.field(description="1 to 64 characters, no control characters.")
    password: str = strawberry.field(description="10 to 256 characters.")


@strawberry.type
class MerchantClerkCreatePayload:
    staff: Optional[MerchantStaff] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MerchantClerkDeactivateInput:
    staff_id: strawberry.ID = strawberry.field(description="A CLERK of the manager's own merchant.")


@strawberry.type
class MerchantClerkDeactivatePayload:
    staff: Optional[MerchantStaff] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MerchantVoucherProposeInput:
    name: str = strawberry.field(description="1 to 128 characters, no control characters.")
    face_value_fen: int = strawberry.field(description="1 to 10000000 (¥100,000).")
    quantity: int = strawberry.field(description="1 to 100000 vouchers.")
    validity_days: int = strawberry.field(description="1 to 366 days after each voucher is issued.")
    points_price: int = strawberry.field(description="1 to 100000000 points.")
    settlement_price_fen: int = strawberry.field(
        description="What the mall pays the merchant per voucher written off: 0 to faceValueFen.")
    idempotency_key: Optional[str] = strawberry.field(
        default=None, description="Optional: a repeat with the same key returns the first proposal.")


@strawberry.type
class MerchantVoucherProposePayload:
    proposal: Optional[MerchantVoucherProposal] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MerchantVoucherApproveInput:
    proposal_id: strawberry.ID
    approve: bool = strawberry.field(description="true: approve (creates the product, on sale at once); false: reject.")
    note: Optional[str] = strawberry.field(default=None, description="Up to 200 characters, shown to the merchant.")


@strawberry.type
class MerchantVoucherApprovePayload:
    proposal: Optional[MerchantVoucherProposal] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
