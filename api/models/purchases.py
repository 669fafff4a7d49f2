from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.members import Member
    from api.models.merchants import Merchant


class Purchase(Model):
    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name="purchases", on_delete=fields.RESTRICT)
    merchant_id: int
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name="purchases", on_delete=fields.RESTRICT)
    member_id: int
    receipt_no = fields.CharField(max_length=64)
    amount_fen = fields.BigIntField()
    refunded_fen = fields.BigIntField(default=0)
    points_earned = fields.BigIntField()
    # Cumulative floor(points_earned × refunded / amount): what refunds have settled so far, of which
    # points_forgiven had expired before the refund (never clawed back again).
    points_reversed = fields.BigIntField(default=0)
    points_forgiven = fields.BigIntField(default=0)
    growth_earned = fields.BigIntField()
    growth_reversed = fields.BigIntField(default=0)
    occurred_at = fields.DatetimeField()
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "purchase"
        unique_together = (("merchant_id", "receipt_no"),)
        indexes = (("member_id", "occurred_at"),)
        constraints = (
            CheckConstraint(check="amount_fen > 0", name="purchase_amount_pos"),
            CheckConstraint(check="refunded_fen >= 0 AND refunded_fen <= amount_fen", name="purchase_refund_bounds"),
            CheckConstraint(
                check="points_earned >= 0 AND points_reversed >= 0 AND points_reversed <= points_earned"
                " AND points_forgiven >= 0 AND points_forgiven <= points_reversed",
                name="purchase_points_bounds",
            ),
        )


class PurchaseRefund(Model):
    id = fields.BigIntField(primary_key=True)
    purchase: fields.ForeignKeyRelation["Purchase"] = fields.ForeignKeyField(
        "models.Purchase", related_name="refunds", on_delete=fields.RESTRICT)
    purchase_id: int
    amount_fen = fields.BigIntField()
    points_reversed = fields.BigIntField()  # taken from the member by this refund
    points_forgiven = fields.BigIntField(default=0)  # settled by points of the purchase that had expired
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "purchase_refund"
        constraints = (CheckConstraint(
            check="amount_fen > 0 AND points_reversed >= 0 AND points_forgiven >= 0", name="refund_amounts"),)


class TillPayment(Model):
    # Points used as cash at a till (pointsPay).

    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name="till_payments", on_delete=fields.RESTRICT)
    merchant_id: int
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name="till_payments", on_delete=fields.RESTRICT)
    member_id: int
    receipt_no = fields.CharField(max_length=64)
    points = fields.BigIntField()
    cash_value_fen = fields.BigIntField()
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "till_payment"
        unique_together = (("merchant_id", "receipt_no"),)
        constraints = (CheckConstraint(check="points > 0 AND cash_value_fen > 0", name="till_payment_pos"),)
