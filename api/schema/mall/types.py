"""Points mall types: products, orders, payment requests, vouchers, flash sales."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Money, Node, global_id, money
from api.schema.core import Merchant, Tier
from api.services import clock, mall
from api.services.mall import flash_sales, payments, vouchers


@strawberry.enum(description="What a product is. Every sale issues a voucher code that is written off once.")
class ProductKind(Enum):
    GOODS = "GOODS"
    COUPON = "COUPON"
    MERCHANT_VOUCHER = "MERCHANT_VOUCHER"
    PARKING_COUPON = "PARKING_COUPON"


@strawberry.enum
class VoucherStatus(Enum):
    ISSUED = "ISSUED"
    USED = "USED"
    EXPIRED = "EXPIRED"
    VOID = "VOID"


@strawberry.type(description="A code issued by the points mall: shown as a QR code, written off (核销) once.")
class Voucher(Node):
    pk: strawberry.Private[int]
    code: str
    qr_payload: str = strawberry.field(description="What the QR code encodes (MPV1:<code>).")
    kind: ProductKind
    product_name: str
    merchant_code: Optional[str] = strawberry.field(description="Where it can be used; null: anywhere in the mall.")
    face_value: Optional[Money]
    status: VoucherStatus
    valid_from: datetime
    valid_until: datetime
    used_at: Optional[datetime]

    @classmethod
    def of(cls, v: vouchers.VoucherInfo, merchant_code: str | None) -> "Voucher":
        return cls(
            id=global_id("Voucher", v.id), pk=v.id, code=v.code, qr_payload=vouchers.qr_payload(v.code),
            kind=ProductKind(v.kind), product_name=v.product_name, merchant_code=merchant_code,
            face_value=money(v.face_value_fen), status=VoucherStatus(vouchers.status_at(v.status, v.valid_until)),
            valid_from=v.valid_from, valid_until=v.valid_until, used_at=v.used_at,
        )


@strawberry.enum
class ProductStatus(Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ARCHIVED = "ARCHIVED"


@strawberry.type(description="Something the points mall sells, for points or points plus cash.")
class Product(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    info: strawberry.Private[mall.ProductInfo]
    kind: ProductKind
    name: str
    description: Optional[str]
    image_urls: list[str]
    points_price: int
    cash_price: Money = strawberry.field(description="0 for points alone.")
    face_value: Optional[Money]
    validity_days: int = strawberry.field(description="A voucher is valid this many days after it is issued.")
    stock: int
    limit_per_member: Optional[int]
    limit_per_member_daily: Optional[int] = strawberry.field(description="Per Asia/Shanghai day.")
    zone: Optional[str] = strawberry.field(description="An exclusive zone's code (e.g. GOLD), shown to minTier and above.")
    sale_starts_at: Optional[datetime]
    sale_ends_at: Optional[datetime]
    status: ProductStatus
    segment_pk: strawberry.Private[Optional[int]] = None  # the `segment` field of the operators' schema only

    @classmethod
    def of(cls, p: mall.ProductInfo) -> "Product":
        return cls(
            id=global_id("Product", p.id), pk=p.id, info=p, kind=ProductKind(p.kind), name=p.name,
            description=p.description, image_urls=p.image_urls, points_price=p.points_price,
            cash_price=Money(amount_fen=p.cash_price_fen), face_value=money(p.face_value_fen),
            validity_days=p.validity_days, stock=p.stock, limit_per_member=p.limit_per_member,
            limit_per_member_daily=p.limit_per_member_daily, zone=p.zone, sale_starts_at=p.sale_starts_at,
            sale_ends_at=p.sale_ends_at, status=ProductStatus(p.status), segment_pk=p.segment_id,
        )

    @strawberry.field(description="On sale now: active and inside its sale window.")
    def on_sale(self) -> bool:
        return self.info.on_sale(clock.now())

    @strawberry.field
    async def merchant(self, info: Info) -> Optional[Merchant]:
        found = await info.context.loaders.merchant.load(self.info.merchant_id) if self.info.merchant_id else None
        return Merchant.of(found) if found else None

    @strawberry.field(description="The lowest tier that sees and may buy it; null: everyone.")
    async def min_tier(self, info: Info) -> Optional[Tier]:
        return Tier.of(await info.context.loaders.tier.load(self.info.min_tier_id)) if self.info.min_tier_id else None


@strawberry.enum
class OrderChannel(Enum):
    REDEEM = "REDEEM"
    CHECKOUT = "CHECKOUT"
    FLASH_SALE = "FLASH_SALE"
    DRAW = "DRAW"


@strawberry.enum(description="PENDING_PAYMENT holds stock and points until expiresAt; then PAID, or EXPIRED/"
                 "CANCELLED (holds released); a PAID order may be REFUNDED.")
class OrderStatus(Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


@strawberry.enum
class PaymentStatus(Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    LATE = "LATE"


@strawberry.type(description="The cash part of a checkout: what the client hands to the payment provider.")
class PaymentRequest:
    provider: str
    out_trade_no: str
    amount: Money
    status: PaymentStatus
    expires_at: Optional[datetime] = strawberry.field(description="Pay before this; a later payment is refunded.")
    pay_params: str = strawberry.field(description="JSON for the provider's client SDK (dev: a payUrl).")
    refund_requested: Money = strawberry.field(description="Cash asked back from the provider so far.")

    @classmethod
    def of(cls, p: mall.PaymentInfo) -> "PaymentRequest":
        return cls(provider=p.provider, out_trade_no=p.out_trade_no, amount=Money(amount_fen=p.amount_fen),
                   status=PaymentStatus(p.status), expires_at=p.expires_at, pay_params=payments.pay_params(p),
                   refund_requested=Money(amount_fen=p.refund_requested_fen))


@strawberry.type(description="An order in the points mall.")
class MallOrder(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    info: strawberry.Private[mall.OrderInfo]
    order_no: str
    channel: OrderChannel
    status: OrderStatus
    quantity: int
    points: int
    cash: Money
    created_at: datetime
    expires_at: Optional[datetime]
    paid_at: Optional[datetime]
    closed_at: Optional[datetime]

    @classmethod
    def of(cls, o: mall.OrderInfo) -> "MallOrder":
        return cls(id=global_id("MallOrder", o.id), pk=o.id, info=o, order_no=o.order_no,
                   channel=OrderChannel(o.channel), status=OrderStatus(o.status), quantity=o.quantity, points=o.points,
                   cash=Money(amount_fen=o.cash_fen), created_at=o.created_at, expires_at=o.expires_at,
                   paid_at=o.paid_at, closed_at=o.closed_at)

    @strawberry.field
    async def product(self, info: Info) -> Product:
        return Product.of(await info.context.loaders.product.load(self.info.product_id))

    @strawberry.field
    async def vouchers(self, info: Info) -> list[Voucher]:
        found = await info.context.loaders.order_vouchers.load(self.pk)
        return [Voucher.of(v.info, v.merchant_code) for v in found or []]

    @strawberry.field(description="The payment of a points-plus-cash order; null otherwise.")
    async def payment(self, info: Info) -> Optional[PaymentRequest]:
        found = await info.context.loaders.payment.load(self.pk) if self.info.channel == "CHECKOUT" else None
        return PaymentRequest.of(found) if found else None


@strawberry.type(description="积分秒杀: a product for points in a window, from a stock of its own.")
class FlashSale(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    info: strawberry.Private[flash_sales.SaleInfo]
    title: str
    points_price: int
    stock: int
    stock_total: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    status: ProductStatus

    @classmethod
    def of(cls, s: flash_sales.SaleInfo) -> "FlashSale":
        return cls(id=global_id("FlashSale", s.id), pk=s.id, info=s, title=s.title,
                   points_price=s.points_price, stock=s.stock, stock_total=s.stock_total,
                   per_member_limit=s.per_member_limit, starts_at=s.starts_at, ends_at=s.ends_at,
                   status=ProductStatus(s.status))

    @strawberry.field
    def on_sale(self) -> bool:
        return self.info.on_sale(clock.now())

    @strawberry.field
    async def product(self, info: Info) -> Product:
        return Product.of(await info.context.loaders.product.load(self.info.product_id))


@strawberry.type
class FlashSaleGate:
    loaded: bool
    stock: Optional[int]
    buyers: int
