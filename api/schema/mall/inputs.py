"""Points mall inputs and payloads: redeem, checkout, payment notification, flash sales, operators' edits."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import strawberry

from api.schema.base import Money
from api.schema.errors import UserError
from api.schema.mall.types import (
    FlashSale,
    FlashSaleGate,
    MallOrder,
    PaymentRequest,
    PaymentStatus,
    Product,
    ProductKind,
    ProductStatus,
)


@strawberry.input
class PointsMallRedeemInput:
    product_id: strawberry.ID
    quantity: int = 1
    idempotency_key: str


@strawberry.type
class PointsMallRedeemPayload:
    order: Optional[MallOrder] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CheckoutCreateInput:
    product_id: strawberry.ID
    quantity: int = 1
    idempotency_key: str


@strawberry.type
class CheckoutCreatePayload:
    order: Optional[MallOrder] = None
    payment_request: Optional[PaymentRequest] = None
    points_balance: Optional[int] = strawberry.field(default=None, description="Spendable now (held points excluded).")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CheckoutCancelInput:
    order_id: strawberry.ID


@strawberry.type
class CheckoutCancelPayload:
    order: Optional[MallOrder] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class FlashSaleRedeemInput:
    flash_sale_id: strawberry.ID
    idempotency_key: str


@strawberry.type
class FlashSaleRedeemPayload:
    order: Optional[MallOrder] = None
    points_balance: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PaymentNotifyInput:
    out_trade_no: str
    transaction_id: str = strawberry.field(description="The provider's id of the payment; a repeat with the same id "
                                                       "returns the first answer (it is the idempotency key).")
    amount_fen: int
    paid_at: datetime
    provider: str = "dev"


@strawberry.type
class PaymentNotifyPayload:
    order: Optional[MallOrder] = None
    payment_status: Optional[PaymentStatus] = strawberry.field(
        default=None, description="PAID; LATE: the order had closed, the cash is being refunded.")
    refund_requested: Optional[Money] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ProductCreateInput:
    kind: ProductKind
    name: str
    description: Optional[str] = None
    image_urls: Optional[list[str]] = None
    merchant_code: Optional[str] = None
    face_value_fen: Optional[int] = None
    validity_days: Optional[int] = None
    points_price: int = 0
    cash_price_fen: int = 0
    stock: int
    limit_per_member: Optional[int] = None
    limit_per_member_daily: Optional[int] = None
    zone: Optional[str] = None
    min_tier_code: Optional[str] = None
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Only members of this segment may buy it; null: every member.")
    sale_starts_at: Optional[datetime] = None
    sale_ends_at: Optional[datetime] = None
    status: Optional[ProductStatus] = None


@strawberry.input(description="Fields left null stay as they are; `clear` names optional fields to set to null.")
class ProductUpdateInput:
    product_id: strawberry.ID
    name: Optional[str] = None
    description: Optional[str] = None
    image_urls: Optional[list[str]] = None
    merchant_code: Optional[str] = None
    face_value_fen: Optional[int] = None
    validity_days: Optional[int] = None
    points_price: Optional[int] = None
    cash_price_fen: Optional[int] = None
    stock_delta: int = strawberry.field(default=0, description="Adds (or with < 0 removes) stock; never below 0.")
    limit_per_member: Optional[int] = None
    limit_per_member_daily: Optional[int] = None
    zone: Optional[str] = None
    min_tier_code: Optional[str] = None
    segment_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Restricts it to the members of this segment (who may buy it); null leaves it "
                                  "as it is; segmentId in clear opens it to every member again.")
    sale_starts_at: Optional[datetime] = None
    sale_ends_at: Optional[datetime] = None
    status: Optional[ProductStatus] = strawberry.field(default=None, description="PAUSED stops sales; ARCHIVED hides.")
    clear: Optional[list[str]] = strawberry.field(
        default=None, description="Any of: description, merchantCode, faceValueFen, limitPerMember, "
                                  "limitPerMemberDaily, zone, minTierCode, segmentId, saleStartsAt, saleEndsAt.")


@strawberry.type
class ProductPayload:
    product: Optional[Product] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class FlashSaleCreateInput:
    product_id: strawberry.ID
    title: str
    points_price: int
    stock: int
    per_member_limit: int = 1
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class FlashSaleUpdateInput:
    flash_sale_id: strawberry.ID
    title: Optional[str] = None
    points_price: Optional[int] = None
    per_member_limit: Optional[int] = None
    starts_at: Optional[datetime] = None
    ends_at: Optional[datetime] = None
    status: Optional[ProductStatus] = None
    stock_delta: int = 0


@strawberry.type
class FlashSalePayload:
    flash_sale: Optional[FlashSale] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class FlashSaleGateRebuildInput:
    flash_sale_id: strawberry.ID


@strawberry.type
class FlashSaleGateRebuildPayload:
    gate: Optional[FlashSaleGate] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MallOrderRefundInput:
    order_id: strawberry.ID
    reason: str
    idempotency_key: str


@strawberry.type
class MallOrderRefundPayload:
    order: Optional[MallOrder] = None
    points_returned: Optional[int] = None
    cash_refund: Optional[Money] = strawberry.field(default=None, description="Requested back from the provider.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MallOrdersExpireRunInput:
    as_of: Optional[datetime] = None


@strawberry.type
class MallOrdersExpireRunPayload:
    orders_expired: Optional[int] = None
    points_released: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
