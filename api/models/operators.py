from tortoise import fields
from tortoise.models import Model


class Operator(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    display_name = fields.CharField(max_length=64, null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "operator"


class AuditLog(Model):
    # One row for every operator action (and every key created or revoked from the command line).

    id = fields.BigIntField(primary_key=True)
    actor_type = fields.CharField(max_length=16)  # operator, cli, system
    actor_id = fields.CharField(max_length=64, null=True)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32, null=True)
    target_id = fields.CharField(max_length=64, null=True)
    detail = fields.TextField(null=True)  # JSON
    created_at = fields.DatetimeField()

    class Meta:
        table = "audit_log"
        indexes = (("target_type", "target_id"),)
