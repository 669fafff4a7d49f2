"""Merchant assistant types: staff roles, a merchant's day, voucher proposals. A leaf of the schema layer
but for the shared types (base, core, mall types), so that the staff viewer can use it."""
from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Money, Node, global_id
from api.schema.core import Merchant
from api.schema.mall.types import Product
from api.services.merchant_assistant import day as days
from api.services.merchant_assistant import proposals


@strawberry.enum(name="MerchantStaffRole", description="MANAGER: everything in the merchant assistant, "
                 "clerks and voucher proposals included; CLERK: looks up and writes off vouchers, sees the day.")
class MerchantStaffRole(Enum):
    MANAGER = "MANAGER"
    CLERK = "CLERK"


@strawberry.enum
class MerchantVoucherProposalStatus(Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


@strawberry.type(description="A merchant's Asia/Shanghai business day as its staff see it (docs/merchant-assistant.md).")
class MerchantDay:
    day: date
    write_offs: int = strawberry.field(description="Vouchers written off at this merchant.")
    write_off_face_value: Money = strawberry.field(description="Their face values summed.")
    points_issued: int = strawberry.field(description="Points earned on this merchant's receipts of the day.")
    receipts: int = strawberry.field(description="Receipts of the day recorded for members.")
    sales: Money = strawberry.field(description="The amounts of those receipts.")
    refunds: int = strawberry.field(description="Refunds of this merchant's receipts recorded today.")
    points_reversed: int = strawberry.field(description="Points the refunds took back.")
    points_paid: int = strawberry.field(description="Points members paid with at this merchant's tills (pointsPay).")
    points_payments: int = strawberry.field(description="How many such payments.")
    points_paid_cash_value: Money = strawberry.field(description="The cash value of the points paid.")
    orders: int = strawberry.field(description="Points-mall orders of this merchant's goods, paid today.")
    order_units: int
    order_points: int
    order_cash: Money = strawberry.field(description="The cash part of those orders (points plus cash).")
    orders_refunded: int = strawberry.field(description="Orders of this merchant's goods refunded today.")

    @classmethod
    def of(cls, d: days.MerchantDay) -> "MerchantDay":
        return cls(
            day=d.day, write_offs=d.write_offs, write_off_face_value=Money(amount_fen=d.write_off_face_value_fen),
            points_issued=d.points_issued, receipts=d.receipts, sales=Money(amount_fen=d.sales_fen),
            refunds=d.refunds, points_reversed=d.points_reversed, points_paid=d.points_paid,
            points_payments=d.points_payments, points_paid_cash_value=Money(amount_fen=d.points_paid_cash_value_fen),
            orders=d.orders, order_units=d.order_units, order_points=d.order_points,
            order_cash=Money(amount_fen=d.order_cash_fen), orders_refunded=d.orders_refunded,
        )


@strawberry.type(description="A voucher a merchant's manager proposed for the points mall; an operator with "
                 "MARKETING approves it (creating the product) or rejects it.")
class MerchantVoucherProposal(Node):
    pk: strawberry.Private[int]
    merchant_pk: strawberry.Private[int]
    product_pk: strawberry.Private[Optional[int]]
    name: str
    face_value: Money
    quantity: int = strawberry.field(description="Vouchers to sell: the product's stock on approval.")
    validity_days: int = strawberry.field(description="A voucher is valid this many days after it is issued.")
    points_price: int
    settlement_price: Money = strawberry.field(
        description="What the mall pays the merchant for each voucher written off (0 to the face value).")
    status: MerchantVoucherProposalStatus
    proposed_by_id: strawberry.ID = strawberry.field(description="The MerchantStaff who proposed it.")
    decided_at: Optional[datetime]
    note: Optional[str] = strawberry.field(description="The operator's note on the decision.")
    created_at: datetime

    @classmethod
    def of(cls, p: proposals.ProposalInfo) -> "MerchantVoucherProposal":
        return cls(
            id=global_id("MerchantVoucherProposal", p.id), pk=p.id, merchant_pk=p.merchant_id,
            product_pk=p.product_id, name=p.name, face_value=Money(amount_fen=p.face_value_fen), quantity=p.quantity,
            validity_days=p.validity_days, points_price=p.points_price,
            settlement_price=Money(amount_fen=p.settlement_price_fen), status=MerchantVoucherProposalStatus(p.status),
            proposed_by_id=global_id("MerchantStaff", p.proposed_by_id), decided_at=p.decided_at, note=p.note,
            created_at=p.created_at,
        )

    @strawberry.field
    async def merchant(self, info: Info) -> Merchant:
        found = await info.context.loaders.merchant.load(self.merchant_pk)
        return Merchant.of(found)

    @strawberry.field(description="The points-mall product, once approved.")
    async def product(self, info: Info) -> Optional[Product]:
        if self.product_pk is None:
            return None
        found = await info.context.loaders.product.load(self.product_pk)
        return Product.of(found) if found is not None else None
