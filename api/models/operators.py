from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.ledger import PointsEntry
    from api.models.members import Member


class Operator(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    display_name = fields.CharField(max_length=64, null=True)
    is_active = fields.BooleanField(default=True)
    # Comma-separated role names (api/services/operators/roles.py): ADMIN MARKETING SERVICE FINANCE AUDITOR.
    roles = fields.CharField(max_length=128, db_default="")
    last_login_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "operator"


class AuditLog(Model):
    # One row for every operator action (and every key created or revoked from the command line).
    # Append-only: the database refuses UPDATE and DELETE (migrations 0002 and 0011).

    id = fields.BigIntField(primary_key=True)
    actor_type = fields.CharField(max_length=16)  # operator, cli, system
    actor_id = fields.CharField(max_length=64, null=True)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32, null=True)
    target_id = fields.CharField(max_length=64, null=True)
    detail = fields.TextField(null=True)  # JSON
    before = fields.TextField(null=True)  # JSON: the object before the change (null for a creation)
    after = fields.TextField(null=True)  # JSON: the object after the change
    created_at = fields.DatetimeField()

    class Meta:
        table = "audit_log"
        indexes = (("target_type", "target_id"), ("actor_type", "actor_id"), ("action",))


class PointsAdjustApproval(Model):
    # A SERVICE operator's adjustment above the threshold or the daily limit, waiting for a second
    # operator (FINANCE or ADMIN, never the requester). Approving books it once (entry set).

    id = fields.BigIntField(primary_key=True)
    requester: fields.ForeignKeyRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name=False, on_delete=fields.RESTRICT)
    requester_id: int
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    points = fields.BigIntField()
    reason = fields.CharField(max_length=200)
    status = fields.CharField(max_length=8, default="PENDING")  # PENDING APPROVED REJECTED
    decided_by: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name=False, on_delete=fields.RESTRICT, null=True)
    decided_by_id: int | None
    decided_at = fields.DatetimeField(null=True)
    note = fields.CharField(max_length=200, null=True)
    entry: fields.ForeignKeyNullableRelation["PointsEntry"] = fields.ForeignKeyField(
        "models.PointsEntry", related_name=False, on_delete=fields.RESTRICT, null=True)
    entry_id: int | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "points_adjust_approval"
        indexes = (("status", "id"),)
        constraints = (
            CheckConstraint(check="points <> 0", name="approval_points_nonzero"),
            CheckConstraint(check="status IN ('PENDING', 'APPROVED', 'REJECTED')", name="approval_status"),
        )
