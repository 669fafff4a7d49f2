"""Reach (issue 13 items 3-5): member tags, saved segments, the notifications outbox and inbox, members'
channel preferences, and campaigns to a segment with their audience (target and holdout)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.mall import Product
    from api.models.members import Member
    from api.models.operators import Operator


class MemberTag(Model):
    # A label an operator put on a member (by hand, from a segment or from an uploaded list).
    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    tag = fields.CharField(max_length=32)
    created_at = fields.DatetimeField()

    class Meta:
        table = "member_tag"
        unique_together = (("member_id", "tag"),)
        indexes = (("tag", "member_id"),)


class Segment(Model):
    # A saved filter over members (JSON, validated by api/services/segments/filters.py); counted live.
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    definition = fields.TextField()  # the filter as JSON
    created_by: fields.ForeignKeyNullableRelation["Operator"] = fields.ForeignKeyField(
        "models.Operator", related_name=False, on_delete=fields.RESTRICT, null=True)
    created_by_id: int | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "segment"


class Notification(Model):
    # The outbox and the member's inbox in one row: written in the transaction of the event that causes
    # it (api/services/notifications/outbox.py), pushed after commit by the dispatcher when its channel
    # is SMS or WECHAT (status PENDING -> DELIVERED, FAILED or SKIPPED), read in the inbox (read_at).
    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    topic = fields.CharField(max_length=20)
    channel = fields.CharField(max_length=8)  # INBOX (no push), SMS, WECHAT
    title = fields.CharField(max_length=64)
    body = fields.CharField(max_length=500)
    # What caused it, and for reminders "lot:<id>:<days>" / "voucher:<id>:<days>": once per lot and threshold.
    source_ref = fields.CharField(max_length=64, null=True)
    campaign_id = fields.IntField(null=True)
    status = fields.CharField(max_length=10, default="PENDING")  # PENDING DELIVERED FAILED SKIPPED
    attempts = fields.SmallIntField(default=0)
    next_attempt_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    error = fields.CharField(max_length=120, null=True)  # the channel's code, never a phone number or secret
    created_at = fields.DatetimeField()
    read_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notification"
        unique_together = (("topic", "source_ref"),)
        indexes = (("member_id", "id"), ("status", "next_attempt_at"), ("campaign_id", "status"))
        constraints = (
            CheckConstraint(check="channel IN ('INBOX', 'SMS', 'WECHAT')", name="notification_channel"),
            CheckConstraint(check="status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')",
                            name="notification_status"),
        )


class NotificationPreference(Model):
    # A member's choice per topic and channel; no row means enabled.
    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    topic = fields.CharField(max_length=20)
    channel = fields.CharField(max_length=8)
    enabled = fields.BooleanField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "notification_preference"
        unique_together = (("member_id", "topic", "channel"),)


class MemberWechat(Model):
    # The member's openid for WeChat subscribe messages (bound by the mini-program's sign-in).
    member: fields.OneToOneRelation["Member"] = fields.OneToOneField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT, primary_key=True)
    member_id: int
    openid = fields.CharField(max_length=64, unique=True)
    bound_at = fields.DatetimeField()

    class Meta:
        table = "member_wechat"


class Campaign(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    segment: fields.ForeignKeyRelation[Segment] = fields.ForeignKeyField(
        "models.Segment", related_name=False, on_delete=fields.RESTRICT)
    segment_id: int
    channel = fields.CharField(max_length=8)
    title = fields.CharField(max_length=64)
    body = fields.CharField(max_length=500)  # template: {nickname} {tier} {points}
    send_at = fields.DatetimeField()
    holdout_percent = fields.SmallIntField(default=0)
    # The offer each target member receives with the message, in the transaction that writes it: points
    # (0: none; 0 to 10,000, a CHECK on PostgreSQL added by 0018) and a voucher of a COUPON product (null: none).
    grant_points = fields.IntField(default=0)
    coupon_product: fields.ForeignKeyNullableRelation["Product"] = fields.ForeignKeyField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT, null=True)
    coupon_product_id: int | None
    status = fields.CharField(max_length=10, default="SCHEDULED")  # SCHEDULED SENDING SENT CANCELLED
    created_by: fields.ForeignKeyNullableRelation["Operator"] = fields.ForeignKeyField(
        "models.Operator", related_name=False, on_delete=fields.RESTRICT, null=True)
    created_by_id: int | None
    created_at = fields.DatetimeField()
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "campaign"
        indexes = (("status", "send_at"),)
        constraints = (
            CheckConstraint(check="holdout_percent >= 0 AND holdout_percent <= 90", name="campaign_holdout"),
            CheckConstraint(check="status IN ('SCHEDULED', 'SENDING', 'SENT', 'CANCELLED')", name="campaign_status"),
            CheckConstraint(check="channel IN ('INBOX', 'SMS', 'WECHAT')", name="campaign_channel"),
        )


class CampaignMember(Model):
    # The audience as it was when sending began: every member of the segment, a holdout share marked
    # (they receive nothing, to measure the effect against).
    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", related_name=False, on_delete=fields.RESTRICT)
    campaign_id: int
    member: fields.ForeignKeyRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name=False, on_delete=fields.RESTRICT)
    member_id: int
    holdout = fields.BooleanField()
    notified = fields.BooleanField(default=False)

    class Meta:
        table = "campaign_member"
        unique_together = (("campaign_id", "member_id"),)
        indexes = (("campaign_id", "holdout", "notified"),)
