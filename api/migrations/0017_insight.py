"""Insight (issue 13): the KPI daily rollup, its job state, members' RFM scores and lifecycle stages, and the
append-only history of stage changes. Written in the style of 0011: the models' tables, then the explicit
guards (CHECK constraints again on both databases, the history's append-only triggers) and, on PostgreSQL,
the rollup's three `bit varying` member bitmaps (no ORM field type describes them)."""
import importlib

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import CheckConstraint

_guards = importlib.import_module("api.migrations.0002_money_guards")

SCORES = "r BETWEEN 0 AND 5 AND f BETWEEN 0 AND 5 AND m BETWEEN 0 AND 5"
STAGES = "lifecycle IN ('NEW', 'GROWING', 'STABLE', 'DECLINING', 'LOST')"
CHECKS = [
    ("member_insight", "insight_scores", SCORES),
    ("member_insight", "insight_lifecycle", STAGES),
    ("member_insight", "insight_values", "frequency >= 0 AND monetary_fen >= 0 AND recency_days >= 0"),
]
APPEND_ONLY = ["member_lifecycle_change"]


def _append_only(postgres: bool) -> list[str]:
    sql = []
    for table in APPEND_ONLY:
        if postgres:
            sql.append(f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"')
            sql.append(f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
                       "FOR EACH ROW EXECUTE FUNCTION mallpoints_append_only()")
            continue
        for event in ("UPDATE", "DELETE"):
            sql.append(f'CREATE TRIGGER IF NOT EXISTS "{table}_append_only_{event.lower()}" BEFORE {event} ON "{table}" '
                       f"BEGIN SELECT RAISE(ABORT, 'append-only table: {table}'); END")
    return sql


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    statements = _guards.postgres_checks(CHECKS) if postgres else _guards.sqlite_checks(CHECKS)
    statements += _append_only(postgres)
    if postgres:
        statements.append('ALTER TABLE "insight_kpi_day" ADD COLUMN IF NOT EXISTS "active_bits" bit varying,'
                          ' ADD COLUMN IF NOT EXISTS "buyer_bits" bit varying, ADD COLUMN IF NOT EXISTS "multi_bits" bit varying')
    # The rollup finds the days of rows that arrived late by id; new members' days by created_at.
    statements.append('CREATE INDEX IF NOT EXISTS "member_created_at" ON "member" ("created_at")')
    statements.append('CREATE INDEX IF NOT EXISTS "points_entry_occurred_at" ON "points_entry" ("occurred_at")')
    statements.append('CREATE INDEX IF NOT EXISTS "purchase_occurred_at" ON "purchase" ("occurred_at")')
    # A day's check-ins, task completions, paid orders and draw plays (the rollup's other sources).
    for table, column in (("member_behaviour", "occurred_at"), ("task_claim", "claimed_at"), ("mall_order", "paid_at"),
                          ("draw_play", "played_at")):
        statements.append(f'CREATE INDEX IF NOT EXISTS "{table}_{column}" ON "{table}" ("{column}")')
    for statement in statements:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('models', '0016_settlement')]

    initial = False

    operations = [
        ops.CreateModel(
            name='KpiDay',
            fields=[
                ('day', fields.DateField(primary_key=True, unique=True, db_index=True)),
                ('members_new', fields.IntField(default=0)),
                ('members_active', fields.IntField(default=0)),
                ('buyers', fields.IntField(default=0)),
                ('repeat_buyers', fields.IntField(default=0)),
                ('purchases', fields.IntField(default=0)),
                ('member_sales_fen', fields.BigIntField(default=0)),
                ('points_issued', fields.BigIntField(default=0)),
                ('points_redeemed', fields.BigIntField(default=0)),
                ('points_expired', fields.BigIntField(default=0)),
                ('points_net', fields.BigIntField(default=0)),
                ('check_ins', fields.IntField(default=0)),
                ('task_completions', fields.IntField(default=0)),
                ('redemptions', fields.IntField(default=0)),
                ('flash_sale_orders', fields.IntField(default=0)),
                ('draw_plays', fields.IntField(default=0)),
                ('rolled_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'insight_kpi_day', 'app': 'models', 'pk_attr': 'day'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InsightState',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=16)),
                ('entry_mark', fields.BigIntField(default=0)),
                ('entry_mark_prev', fields.BigIntField(default=0)),
                ('purchase_mark', fields.BigIntField(default=0)),
                ('purchase_mark_prev', fields.BigIntField(default=0)),
                ('member_mark', fields.BigIntField(default=0)),
                ('member_mark_prev', fields.BigIntField(default=0)),
                ('last_day', fields.DateField(null=True)),
                ('ran_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'insight_state', 'app': 'models', 'pk_attr': 'name'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberInsight',
            fields=[
                ('member_id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('recency_days', fields.IntField()),
                ('frequency', fields.IntField()),
                ('monetary_fen', fields.BigIntField()),
                ('r', fields.SmallIntField()),
                ('f', fields.SmallIntField()),
                ('m', fields.SmallIntField()),
                ('lifecycle', fields.CharField(max_length=10)),
                ('stage_since', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member_insight', 'app': 'models', 'constraints': [
                CheckConstraint(check=SCORES, name='insight_scores'), CheckConstraint(check=STAGES, name='insight_lifecycle')],
                'indexes': [Index(fields=['lifecycle'])], 'pk_attr': 'member_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LifecycleChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.BigIntField()),
                ('from_stage', fields.CharField(null=True, max_length=10)),
                ('to_stage', fields.CharField(max_length=10)),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member_lifecycle_change', 'app': 'models', 'indexes': [Index(fields=['member_id', 'id'])],
                     'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(forward),
    ]
