"""The earning engine: rules as data, their counters and budgets, breakdowns, pending points,
behaviours (check-in, share, review, event, profile), invites, tasks and events, and job leases."""
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.reach import Segment


class EarnRule(Model):
    # One earning rule. `conditions` is JSON (see api/services/earning/rules.py); amounts are integers.

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    trigger = fields.CharField(max_length=32)  # PURCHASE, REGISTER, CHECK_IN, PROFILE_COMPLETED, REVIEW, ...
    status = fields.CharField(max_length=16, default="ACTIVE")  # ACTIVE, PAUSED, ARCHIVED
    priority = fields.IntField(default=0)
    stacking = fields.CharField(max_length=8, default="ADD")  # ADD or BEST_OF
    stack_group = fields.CharField(max_length=64, null=True)
    conditions = fields.TextField()
    action = fields.CharField(max_length=24)  # POINTS_PER_YUAN, MULTIPLIER_PERCENT, FIXED_POINTS, NONE
    action_value = fields.IntField(default=0)
    apply_tier_multiplier = fields.BooleanField(default=False)
    growth_action = fields.CharField(max_length=24, default="NONE")  # GROWTH_PER_YUAN, FIXED_GROWTH, NONE
    growth_value = fields.IntField(default=0)
    cap_daily_points = fields.IntField(null=True)
    cap_monthly_points = fields.IntField(null=True)
    cap_daily_times = fields.IntField(null=True)
    budget_points = fields.BigIntField(null=True)
    return_days = fields.IntField(default=0)
    starts_at = fields.DatetimeField(null=True)
    ends_at = fields.DatetimeField(null=True)
    # Only members of this segment (issue 13 item 3); null = everyone.
    segment: fields.ForeignKeyNullableRelation["Segment"] = fields.ForeignKeyField(
        "models.Segment", related_name=False, on_delete=fields.RESTRICT, null=True)
    segment_id: int | None
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "earn_rule"
        indexes = (("status", "trigger"),)
        constraints = (
            CheckConstraint(
                check="(cap_daily_points IS NULL OR cap_daily_points > 0)"
                " AND (cap_monthly_points IS NULL OR cap_monthly_points > 0)"
                " AND (cap_daily_times IS NULL OR cap_daily_times > 0)"
                " AND (budget_points IS NULL OR budget_points > 0) AND return_days >= 0 AND action_value >= 0"
                " AND growth_value >= 0",
                name="earn_rule_caps",
            ),
        )


class EarnCounter(Model):
    # What a rule has given: per member and period ('D2026-11-23', 'M2026-11'), or, with member_id 0
    # and period 'TOTAL', against the rule's budget. Written under the member's account lock.

    id = fields.BigIntField(primary_key=True)
    rule_id = fields.IntField()
    member_id = fields.BigIntField()
    period = fields.CharField(max_length=16)
    points = fields.BigIntField(default=0)
    times = fields.IntField(default=0)

    class Meta:
        table = "earn_counter"
        unique_together = (("rule_id", "member_id", "period"),)
        constraints = (CheckConstraint(check="points >= 0 AND times >= 0", name="earn_counter_nonneg"),)


class EarnBreakdown(Model):
    # Why an earn entry has its points: JSON list of the rules applied, each one's points and cuts.

    id = fields.BigIntField(primary_key=True)
    entry_id = fields.BigIntField(unique=True)
    breakdown = fields.TextField()

    class Meta:
        table = "earn_breakdown"


class PendingPoints(Model):
    # Points waiting for a return window to close: not in the balance, not in any lot. Released as an
    # EARN entry by the scheduled run; a refund inside the window cancels (part of) them.

    id = fields.BigIntField(primary_key=True)
    member_id = fields.BigIntField()
    purchase_id = fields.BigIntField(unique=True)
    points = fields.BigIntField()
    points_cancelled = fields.BigIntField(default=0)
    status = fields.CharField(max_length=12, default="PENDING")  # PENDING, RELEASED, CANCELLED
    release_at = fields.DatetimeField()
    breakdown = fields.TextField()
    entry_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "points_pending"
        indexes = (("member_id", "status"), ("status", "release_at"))
        constraints = (
            CheckConstraint(check="points > 0 AND points_cancelled >= 0 AND points_cancelled <= points",
                            name="points_pending_bounds"),
        )


class MemberBehaviour(Model):
    # One thing a member did that may earn: CHECK_IN (ref = Shanghai day), SHARE, REVIEW (ref =
    # purchase id), EVENT (ref = event id), PROFILE (ref = 'profile'), REGISTER. Unique per (member,
    # kind, ref): a check-in once a day, a review once per purchase, an event once.

    id = fields.BigIntField(primary_key=True)
    member_id = fields.BigIntField()
    kind = fields.CharField(max_length=16)
    ref = fields.CharField(max_length=64)
    day = fields.CharField(max_length=10)  # Asia/Shanghai business day, YYYY-MM-DD
    streak = fields.IntField(default=0)
    points = fields.BigIntField(default=0)
    entry_id = fields.BigIntField(null=True)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "member_behaviour"
        unique_together = (("member_id", "kind", "ref"),)
        indexes = (("member_id", "kind", "day"),)


class MemberInvite(Model):
    # A member's invite code, and (for invitees) who invited them and when the invite paid out.

    id = fields.BigIntField(primary_key=True)
    member_id = fields.BigIntField(unique=True)
    code = fields.CharField(max_length=16, unique=True)
    inviter_id = fields.BigIntField(null=True)
    purchase_id = fields.BigIntField(null=True)  # the invitee's first purchase
    qualified_at = fields.DatetimeField(null=True)
    rewarded_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "member_invite"
        indexes = (("inviter_id",),)


class EarnTask(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    description = fields.CharField(max_length=500, null=True)
    period = fields.CharField(max_length=8)  # ONCE, DAILY, WEEKLY
    metric = fields.CharField(max_length=24)  # CHECK_IN, SHARE, REVIEW, EVENT, PURCHASE_COUNT, PURCHASE_AMOUNT
    target = fields.BigIntField()
    reward_points = fields.IntField(default=0)
    reward_growth = fields.IntField(default=0)
    tier_codes = fields.CharField(max_length=200, null=True)  # comma-separated; null = every tier
    status = fields.CharField(max_length=16, default="ACTIVE")
    starts_at = fields.DatetimeField(null=True)
    ends_at = fields.DatetimeField(null=True)
    # Only members of this segment (issue 13 item 3); null = everyone.
    segment: fields.ForeignKeyNullableRelation["Segment"] = fields.ForeignKeyField(
        "models.Segment", related_name=False, on_delete=fields.RESTRICT, null=True)
    segment_id: int | None
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "earn_task"
        constraints = (
            CheckConstraint(check="target > 0 AND reward_points >= 0 AND reward_growth >= 0"
                            " AND reward_points + reward_growth > 0", name="earn_task_reward"),
        )


class TaskClaim(Model):
    id = fields.BigIntField(primary_key=True)
    task_id = fields.IntField()
    member_id = fields.BigIntField()
    period = fields.CharField(max_length=16)  # 'ONCE', 'D2026-11-23', 'W2026-11-23' (Monday)
    points = fields.BigIntField()
    growth = fields.BigIntField()
    entry_id = fields.BigIntField(null=True)
    claimed_at = fields.DatetimeField()

    class Meta:
        table = "task_claim"
        unique_together = (("task_id", "member_id", "period"),)


class MallEvent(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    merchant_id = fields.IntField(null=True)  # integrations bound to this merchant may check members in
    status = fields.CharField(max_length=16, default="ACTIVE")
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "mall_event"


class JobLease(Model):
    # One row per scheduled job: a server runs it only while it holds the lease.

    name = fields.CharField(max_length=32, primary_key=True)
    holder = fields.CharField(max_length=64, null=True)
    expires_at = fields.DatetimeField(null=True)
    last_run_at = fields.DatetimeField(null=True)

    class Meta:
        table = "job_lease"
