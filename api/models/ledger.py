"""The points ledger. Rows of points_entry and points_lot_move are never updated or deleted."""
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.members import Member


class PointsAccount(Model):
    id = fields.BigIntField(primary_key=True)
    member: fields.OneToOneRelation["Member"] = fields.OneToOneField(
        "models.Member", related_name="account", on_delete=fields.RESTRICT)
    member_id: int
    # Cached: always the sum of the account's entries and of its lots' remainders.
    balance = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "points_account"


class PointsEntry(Model):
    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation["PointsAccount"] = fields.ForeignKeyField(
        "models.PointsAccount", related_name="entries", on_delete=fields.RESTRICT)
    account_id: int
    kind = fields.CharField(max_length=8)  # EARN SPEND EXPIRE REVERSE ADJUST
    points = fields.BigIntField()
    balance_after = fields.BigIntField()
    reason = fields.CharField(max_length=200)
    source_type = fields.CharField(max_length=32)  # purchase, till_payment, refund, operator, expiry_run, rule
    source_ref = fields.CharField(max_length=64, null=True)
    # Typed as Model: api.models.operators sits above the ledger (it imports this module), so naming
    # Operator here would close an import circle; services read operator_id.
    operator: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "models.Operator", related_name=False, on_delete=fields.RESTRICT, null=True)
    operator_id: int | None
    reverses: fields.ForeignKeyNullableRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    reverses_id: int | None
    occurred_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "points_entry"
        indexes = (("account_id", "id"), ("source_type", "source_ref"))
        constraints = (
            CheckConstraint(
                check="(kind = 'EARN' AND points > 0) OR (kind IN ('SPEND', 'EXPIRE', 'REVERSE') AND points < 0)"
                " OR (kind = 'ADJUST' AND points <> 0)",
                name="points_entry_sign",
            ),
        )


class PointsLot(Model):
    # Points that expire together. A DEBT lot (at most one per account) holds a refund claw-back
    # that could not be covered; it is paid off by later earnings before they become spendable.

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation["PointsAccount"] = fields.ForeignKeyField(
        "models.PointsAccount", related_name="lots", on_delete=fields.RESTRICT)
    account_id: int
    kind = fields.CharField(max_length=8, default="EARN")  # EARN or DEBT
    entry: fields.ForeignKeyNullableRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name="lots", on_delete=fields.RESTRICT, null=True)
    entry_id: int | None
    points = fields.BigIntField()
    remaining = fields.BigIntField()
    earned_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "points_lot"
        indexes = (("account_id", "expires_at"), ("expires_at",), ("entry_id",))
        constraints = (
            CheckConstraint(
                check="(kind = 'EARN' AND points > 0 AND remaining >= 0 AND remaining <= points)"
                " OR (kind = 'DEBT' AND points = 0 AND remaining <= 0)",
                name="points_lot_bounds",
            ),
        )


class PointsLotMove(Model):
    # What each entry did to each lot: lot.remaining = Σ delta of its moves, entry.points = Σ delta.

    id = fields.BigIntField(primary_key=True)
    entry: fields.ForeignKeyRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name="moves", on_delete=fields.RESTRICT)
    entry_id: int
    lot: fields.ForeignKeyRelation["PointsLot"] = fields.ForeignKeyField(
        "models.PointsLot", related_name="moves", on_delete=fields.RESTRICT)
    lot_id: int
    delta = fields.BigIntField()

    class Meta:
        table = "points_lot_move"
        indexes = (("entry_id",), ("lot_id",))
        constraints = (CheckConstraint(check="delta <> 0", name="points_lot_move_nonzero"),)


class IdempotencyRecord(Model):
    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=64)
    key = fields.CharField(max_length=128)
    request_hash = fields.CharField(max_length=64)
    result = fields.TextField(null=True)  # JSON of the first result
    created_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_record"
        unique_together = (("scope", "key"),)
