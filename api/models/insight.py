"""Insight (issue 13): the KPI daily rollup, members' RFM scores and lifecycle stages, and the history of
stage changes. The rollup and the scores are derived from the ledger and the domain tables and can be
rebuilt from them at any time; the history is append-only."""
from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

STAGES = ("NEW", "GROWING", "STABLE", "DECLINING", "LOST")


class KpiDay(Model):
    # One closed Asia/Shanghai day of KPI counts, written set-based by the scheduled run (and rewritten
    # when rows of that day arrive late). On PostgreSQL the migration adds three `bit varying` columns
    # that no ORM field describes: active_bits, buyer_bits, multi_bits (bit i = member id i), OR-ed over
    # a range for its distinct members (api/services/insight/sql.py).
    day = fields.DateField(primary_key=True)
    members_new = fields.IntField(default=0)
    members_active = fields.IntField(default=0)
    buyers = fields.IntField(default=0)
    repeat_buyers = fields.IntField(default=0)
    purchases = fields.IntField(default=0)
    member_sales_fen = fields.BigIntField(default=0)
    points_issued = fields.BigIntField(default=0)
    points_redeemed = fields.BigIntField(default=0)
    points_expired = fields.BigIntField(default=0)
    points_net = fields.BigIntField(default=0)  # Σ of every entry of the day (outstanding = running sum)
    check_ins = fields.IntField(default=0)
    task_completions = fields.IntField(default=0)
    redemptions = fields.IntField(default=0)
    flash_sale_orders = fields.IntField(default=0)
    draw_plays = fields.IntField(default=0)
    parking_offsets = fields.IntField(default=0)  # members' exits whose fee the programme reduced
    parking_offset_fen = fields.BigIntField(default=0)  # by how much: tier, purchase, coupon and points
    rolled_at = fields.DatetimeField()

    class Meta:
        table = "insight_kpi_day"


class InsightState(Model):
    # One row per job ("rollup", "rfm"): the id watermarks of the rollup (rows above them may belong to
    # days already rolled) and when each job last ran.
    name = fields.CharField(max_length=16, primary_key=True)
    entry_mark = fields.BigIntField(default=0)
    entry_mark_prev = fields.BigIntField(default=0)
    purchase_mark = fields.BigIntField(default=0)
    purchase_mark_prev = fields.BigIntField(default=0)
    member_mark = fields.BigIntField(default=0)
    member_mark_prev = fields.BigIntField(default=0)
    last_day = fields.DateField(null=True)  # rfm: the Shanghai day of the last scheduled recompute
    ran_at = fields.DatetimeField(null=True)

    class Meta:
        table = "insight_state"


class MemberInsight(Model):
    # A member's RFM values over the configured window, quintile scores (1..5; 0 when no purchase in the
    # window) and lifecycle stage, as of computed_at.
    member_id = fields.BigIntField(primary_key=True)
    recency_days = fields.IntField()
    frequency = fields.IntField()
    monetary_fen = fields.BigIntField()
    r = fields.SmallIntField()
    f = fields.SmallIntField()
    m = fields.SmallIntField()
    lifecycle = fields.CharField(max_length=10)
    stage_since = fields.DatetimeField()
    computed_at = fields.DatetimeField()

    class Meta:
        table = "member_insight"
        indexes = (("lifecycle",),)
        constraints = (
            CheckConstraint(check="r BETWEEN 0 AND 5 AND f BETWEEN 0 AND 5 AND m BETWEEN 0 AND 5", name="insight_scores"),
            CheckConstraint(check="lifecycle IN ('NEW', 'GROWING', 'STABLE', 'DECLINING', 'LOST')",
                            name="insight_lifecycle"),
        )


class LifecycleChange(Model):
    # Append-only: a member's stage moved (from_stage null: the first computation).
    id = fields.BigIntField(primary_key=True)
    member_id = fields.BigIntField()
    from_stage = fields.CharField(max_length=10, null=True)
    to_stage = fields.CharField(max_length=10)
    changed_at = fields.DatetimeField()

    class Meta:
        table = "member_lifecycle_change"
        indexes = (("member_id", "id"),)
