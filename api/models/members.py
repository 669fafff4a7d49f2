from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model


class Tier(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    growth_threshold = fields.IntField(unique=True)
    earn_multiplier_percent = fields.IntField(default=100)
    benefits = fields.TextField(null=True)  # JSON list of short texts shown to members
    # A deactivated tier is no longer reached; members on it keep it until their period closes.
    active = fields.BooleanField(db_default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tier"
        ordering = ["growth_threshold"]
        constraints = (
            CheckConstraint(check="growth_threshold >= 0", name="tier_threshold_nonneg"),
            CheckConstraint(check="earn_multiplier_percent > 0", name="tier_multiplier_pos"),
        )


class Member(Model):
    id = fields.BigIntField(primary_key=True)
    phone = fields.CharField(max_length=20, unique=True)  # E.164
    nickname = fields.CharField(max_length=64, null=True)
    gender = fields.CharField(max_length=8, null=True)
    birthday = fields.DateField(null=True)
    tier: fields.ForeignKeyRelation["Tier"] = fields.ForeignKeyField(
        "models.Tier", related_name="members", on_delete=fields.RESTRICT)
    tier_id: int
    # Growth value earned in the current qualification period (separate from spendable points).
    growth_value = fields.IntField(default=0)
    tier_period_start = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "member"
        constraints = (CheckConstraint(check="growth_value >= 0", name="member_growth_nonneg"),)


class GrowthEntry(Model):
    # Append-only history of growth value; member.growth_value is the current period's sum.

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name="growth_entries", on_delete=fields.RESTRICT)
    member_id: int
    delta = fields.IntField()
    growth_after = fields.IntField()
    reason = fields.CharField(max_length=200)
    source_type = fields.CharField(max_length=32)
    source_ref = fields.CharField(max_length=64, null=True)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "growth_entry"
        indexes = (("member_id", "occurred_at"),)


class TierChange(Model):
    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name="tier_changes", on_delete=fields.RESTRICT)
    member_id: int
    from_tier: fields.ForeignKeyNullableRelation["Tier"] = fields.ForeignKeyField(
        "models.Tier", related_name=False, on_delete=fields.RESTRICT, null=True)
    from_tier_id: int | None
    to_tier: fields.ForeignKeyRelation["Tier"] = fields.ForeignKeyField(
        "models.Tier", related_name=False, on_delete=fields.RESTRICT)
    to_tier_id: int
    direction = fields.CharField(max_length=16)  # JOIN, UPGRADE, DOWNGRADE, KEEP
    growth_value = fields.IntField()
    reason = fields.CharField(max_length=200)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "tier_change"


class SmsCode(Model):
    id = fields.BigIntField(primary_key=True)
    phone = fields.CharField(max_length=20, db_index=True)
    code_hash = fields.CharField(max_length=64)
    attempts = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    consumed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sms_code"


class SmsMessage(Model):
    # Outbox of the console SMS sender (development).

    id = fields.BigIntField(primary_key=True)
    phone = fields.CharField(max_length=20)
    body = fields.CharField(max_length=500)
    created_at = fields.DatetimeField()

    class Meta:
        table = "sms_message"
