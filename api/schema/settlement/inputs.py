"""Settlement inputs and payloads (one per mutation; result fields nullable)."""
from __future__ import annotations

from datetime import date
from typing import Optional

import strawberry

from api.schema.core import Merchant
from api.schema.errors import UserError
from api.schema.settlement.types import MerchantTerms, SettlementAdjustment, SettlementStatement


@strawberry.input
class SettlementStatementGenerateInput:
    merchant_code: str
    period_start: date = strawberry.field(description="A day, a Monday (week) or the 1st (month).")
    period_end: date = strawberry.field(description="The period's last day: start, the Sunday, or the month's last.")


@strawberry.input
class SettlementPeriodCloseInput:
    period_start: date = strawberry.field(description="A day, a Monday (week) or the 1st (month).")
    period_end: date = strawberry.field(description="The period's last day: start, the Sunday, or the month's last.")


@strawberry.input
class SettlementStatementApproveInput:
    statement_id: strawberry.ID


@strawberry.input
class SettlementStatementMarkPaidInput:
    statement_id: strawberry.ID
    payment_reference: str = strawberry.field(description="The bank's or provider's reference, 1 to 64 characters.")


@strawberry.input
class SettlementStatementConfirmInput:
    statement_id: strawberry.ID


@strawberry.input
class SettlementStatementDisputeInput:
    statement_id: strawberry.ID
    note: str = strawberry.field(description="What is wrong, 2 to 500 characters.")


@strawberry.input
class MerchantTermsUpdateInput:
    merchant_code: str
    point_cost_share_percent: Optional[int] = None
    commission_percent: Optional[int] = None


@strawberry.input
class ProductSettlementPriceUpdateInput:
    product_id: strawberry.ID
    settlement_price_fen: Optional[int] = strawberry.field(
        default=None, description="Paid per written-off voucher; null: the value of the points it was bought for.")


@strawberry.type
class SettlementStatementPayload:
    statement: Optional[SettlementStatement] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# One payload type per mutation (convention 2), all of the same shape.
@strawberry.type
class SettlementStatementGeneratePayload(SettlementStatementPayload):
    pass


@strawberry.type
class SettlementStatementApprovePayload(SettlementStatementPayload):
    pass


@strawberry.type
class SettlementStatementMarkPaidPayload(SettlementStatementPayload):
    pass


@strawberry.type
class SettlementStatementConfirmPayload(SettlementStatementPayload):
    pass


@strawberry.type
class SettlementStatementDisputePayload(SettlementStatementPayload):
    pass


@strawberry.type
class MerchantTermsUpdatePayload:
    merchant: Optional[Merchant] = None
    terms: Optional[MerchantTerms] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProductSettlementPriceUpdatePayload:
    product_id: Optional[strawberry.ID] = None
    settlement_price_fen: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SettlementSkip:
    """A merchant a period close left alone: its period is past DRAFT, or it has a later statement."""
    merchant_code: str
    code: str
    message: str


@strawberry.type
class SettlementPeriodClosePayload:
    statements: Optional[list[SettlementStatement]] = None
    skipped: Optional[list[SettlementSkip]] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SettlementAdjustmentPostInput:
    merchant_code: str
    amount_fen: int = strawberry.field(description="Non-zero, at most 100,000,000 either way: > 0 the mall owes the "
                                                   "merchant more, < 0 the merchant owes the mall.")
    reason: str = strawberry.field(description="2 to 200 characters, kept in the audit trail.")
    idempotency_key: str


@strawberry.type
class SettlementAdjustmentPostPayload:
    adjustment: Optional[SettlementAdjustment] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
