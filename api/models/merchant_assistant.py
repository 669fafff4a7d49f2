"""The merchant assistant (商户助手, issue 12): vouchers a merchant proposes for the points mall, which an
operator with MARKETING approves (creating the product) or rejects."""
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.mall import MerchantStaff, Product
    from api.models.merchants import Merchant
    from api.models.operators import Operator


class MerchantVoucherProposal(Model):
    # A merchant's voucher as its manager proposes it. status: PENDING -> APPROVED (product set: the
    # MERCHANT_VOUCHER product created on approval) or REJECTED; a decided proposal never changes again.
    # settlement_price_fen: what the mall pays the merchant per voucher written off (0 .. face value).

    id = fields.IntField(primary_key=True)
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT)
    merchant_id: int
    proposed_by: fields.ForeignKeyRelation["MerchantStaff"] = fields.ForeignKeyField(
        "models.MerchantStaff", related_name=False, on_delete=fields.RESTRICT)
    proposed_by_id: int
    name = fields.CharField(max_length=128)
    face_value_fen = fields.BigIntField()
    quantity = fields.IntField()
    validity_days = fields.IntField()
    points_price = fields.BigIntField()
    settlement_price_fen = fields.BigIntField()
    status = fields.CharField(max_length=8, default="PENDING")
    decided_by: fields.ForeignKeyNullableRelation["Operator"] = fields.ForeignKeyField(
        "models.Operator", related_name=False, on_delete=fields.RESTRICT, null=True)
    decided_by_id: int | None
    decided_at = fields.DatetimeField(null=True)
    note = fields.CharField(max_length=200, null=True)
    product: fields.ForeignKeyNullableRelation["Product"] = fields.ForeignKeyField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT, null=True)
    product_id: int | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "merchant_voucher_proposal"
        indexes = (("merchant_id", "id"), ("status", "id"))
        constraints = (
            CheckConstraint(
                check="face_value_fen > 0 AND quantity > 0 AND validity_days > 0 AND points_price > 0"
                " AND settlement_price_fen >= 0 AND settlement_price_fen <= face_value_fen",
                name="voucher_proposal_terms",
            ),
            CheckConstraint(check="status IN ('PENDING', 'APPROVED', 'REJECTED')", name="voucher_proposal_status"),
            CheckConstraint(check="(status = 'APPROVED') = (product_id IS NOT NULL)",
                            name="voucher_proposal_product"),
        )
