from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

GUARDS = [
    # earn_rule_caps etc. are declared on the models; CreateModel does not emit them.
    ("earn_rule", "earn_rule_caps",
     "(cap_daily_points IS NULL OR cap_daily_points > 0) AND (cap_monthly_points IS NULL OR cap_monthly_points > 0)"
     " AND (cap_daily_times IS NULL OR cap_daily_times > 0) AND (budget_points IS NULL OR budget_points > 0)"
     " AND return_days >= 0 AND action_value >= 0 AND growth_value >= 0"),
    ("earn_rule", "earn_rule_enums",
     "status IN ('ACTIVE', 'PAUSED', 'ARCHIVED') AND stacking IN ('ADD', 'BEST_OF')"),
    ("earn_counter", "earn_counter_nonneg", "points >= 0 AND times >= 0"),
    ("points_pending", "points_pending_bounds", "points > 0 AND points_cancelled >= 0 AND points_cancelled <= points"),
    ("points_pending", "points_pending_status",
     "status IN ('PENDING', 'RELEASED', 'CANCELLED') AND (status <> 'RELEASED' OR entry_id IS NOT NULL"
     " OR points_cancelled = points)"),
    ("earn_task", "earn_task_reward",
     "target > 0 AND reward_points >= 0 AND reward_growth >= 0 AND reward_points + reward_growth > 0"),
    ("task_claim", "task_claim_pos", "points >= 0 AND growth >= 0"),
    ("member_invite", "member_invite_not_self", "inviter_id IS NULL OR inviter_id <> member_id"),
    ("mall_event", "mall_event_window", "ends_at > starts_at"),
]
APPEND_ONLY = ["earn_breakdown", "task_claim"]


def _guard_sql(postgres: bool) -> list[str]:
    import re

    sql = []
    if postgres:
        sql += [f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" CHECK ({c})' for t, n, c in GUARDS]
        sql += [f'CREATE TRIGGER "{t}_append_only" BEFORE UPDATE OR DELETE ON "{t}" '
                "FOR EACH ROW EXECUTE FUNCTION mallpoints_append_only()" for t in APPEND_ONLY]
        return sql
    for table, name, check in GUARDS:
        new_check = re.sub(r"\b([a-z_][a-z_0-9]*)\b", r"NEW.\1", check)  # SQL words are upper case
        for event in ("INSERT", "UPDATE"):
            sql.append(
                f'CREATE TRIGGER IF NOT EXISTS "{name}_{event.lower()}" BEFORE {event} ON "{table}" '
                f"FOR EACH ROW WHEN NOT ({new_check}) "
                f"BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {name}'); END"
            )
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            sql.append(
                f'CREATE TRIGGER IF NOT EXISTS "{table}_append_only_{event.lower()}" BEFORE {event} ON "{table}" '
                f"BEGIN SELECT RAISE(ABORT, 'append-only table: {table}'); END"
            )
    return sql


async def forward(apps, schema_editor) -> None:
    """Guards, and the foundation's purchase earning as the default rule (values from the settings
    of the time: MALLPOINTS_POINTS_PER_YUAN and MALLPOINTS_GROWTH_PER_YUAN)."""
    from datetime import datetime, timezone

    from api.config import settings

    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    for statement in _guard_sql(postgres):
        await client.execute_script(statement)
    cfg = settings()
    now = datetime.now(timezone.utc)
    ph = (lambda i: f"${i}") if postgres else (lambda i: f"?{i}")
    await client.execute_query(
        "INSERT INTO earn_rule (code, name, trigger, status, priority, stacking, stack_group, conditions, action,"
        " action_value, apply_tier_multiplier, growth_action, growth_value, return_days, created_at, updated_at)"
        f" VALUES ('DEFAULT_PURCHASE', '消费积分', 'PURCHASE', 'ACTIVE', 0, 'ADD', NULL, '{{}}', 'POINTS_PER_YUAN',"
        f" {ph(1)}, TRUE, 'GROWTH_PER_YUAN', {ph(2)}, 0, {ph(3)}, {ph(3)})",
        [cfg.points_per_yuan, cfg.growth_per_yuan, now],
    )
    await client.execute_script(
        "INSERT INTO job_lease (name, holder, expires_at, last_run_at) VALUES ('earning', NULL, NULL, NULL)"
    )


class Migration(migrations.Migration):
    dependencies = [('models', '0006_parking_draws_guards')]

    initial = False

    operations = [
        ops.CreateModel(
            name='EarnBreakdown',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('entry_id', fields.BigIntField(unique=True)),
                ('breakdown', fields.TextField(unique=False)),
            ],
            options={'table': 'earn_breakdown', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EarnCounter',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('rule_id', fields.IntField()),
                ('member_id', fields.BigIntField()),
                ('period', fields.CharField(max_length=16)),
                ('points', fields.BigIntField(default=0)),
                ('times', fields.IntField(default=0)),
            ],
            options={'table': 'earn_counter', 'app': 'models', 'unique_together': (('rule_id', 'member_id', 'period'),), 'constraints': [CheckConstraint(check='points >= 0 AND times >= 0', name='earn_counter_nonneg')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EarnRule',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('trigger', fields.CharField(max_length=32)),
                ('status', fields.CharField(default='ACTIVE', max_length=16)),
                ('priority', fields.IntField(default=0)),
                ('stacking', fields.CharField(default='ADD', max_length=8)),
                ('stack_group', fields.CharField(null=True, max_length=64)),
                ('conditions', fields.TextField(unique=False)),
                ('action', fields.CharField(max_length=24)),
                ('action_value', fields.IntField(default=0)),
                ('apply_tier_multiplier', fields.BooleanField(default=False)),
                ('growth_action', fields.CharField(default='NONE', max_length=24)),
                ('growth_value', fields.IntField(default=0)),
                ('cap_daily_points', fields.IntField(null=True)),
                ('cap_monthly_points', fields.IntField(null=True)),
                ('cap_daily_times', fields.IntField(null=True)),
                ('budget_points', fields.BigIntField(null=True)),
                ('return_days', fields.IntField(default=0)),
                ('starts_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'earn_rule', 'app': 'models', 'constraints': [CheckConstraint(check='(cap_daily_points IS NULL OR cap_daily_points > 0) AND (cap_monthly_points IS NULL OR cap_monthly_points > 0) AND (cap_daily_times IS NULL OR cap_daily_times > 0) AND (budget_points IS NULL OR budget_points > 0) AND return_days >= 0 AND action_value >= 0 AND growth_value >= 0', name='earn_rule_caps')], 'indexes': [Index(fields=['status', 'trigger'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EarnTask',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('description', fields.CharField(null=True, max_length=500)),
                ('period', fields.CharField(max_length=8)),
                ('metric', fields.CharField(max_length=24)),
                ('target', fields.BigIntField()),
                ('reward_points', fields.IntField(default=0)),
                ('reward_growth', fields.IntField(default=0)),
                ('tier_codes', fields.CharField(null=True, max_length=200)),
                ('status', fields.CharField(default='ACTIVE', max_length=16)),
                ('starts_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'earn_task', 'app': 'models', 'constraints': [CheckConstraint(check='target > 0 AND reward_points >= 0 AND reward_growth >= 0 AND reward_points + reward_growth > 0', name='earn_task_reward')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobLease',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('holder', fields.CharField(null=True, max_length=64)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'job_lease', 'app': 'models', 'pk_attr': 'name'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MallEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('merchant_id', fields.IntField(null=True)),
                ('status', fields.CharField(default='ACTIVE', max_length=16)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mall_event', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberBehaviour',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.BigIntField()),
                ('kind', fields.CharField(max_length=16)),
                ('ref', fields.CharField(max_length=64)),
                ('day', fields.CharField(max_length=10)),
                ('streak', fields.IntField(default=0)),
                ('points', fields.BigIntField(default=0)),
                ('entry_id', fields.BigIntField(null=True)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member_behaviour', 'app': 'models', 'unique_together': (('member_id', 'kind', 'ref'),), 'indexes': [Index(fields=['member_id', 'kind', 'day'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberInvite',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.BigIntField(unique=True)),
                ('code', fields.CharField(unique=True, max_length=16)),
                ('inviter_id', fields.BigIntField(null=True)),
                ('purchase_id', fields.BigIntField(null=True)),
                ('qualified_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('rewarded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member_invite', 'app': 'models', 'indexes': [Index(fields=['inviter_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PendingPoints',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.BigIntField()),
                ('purchase_id', fields.BigIntField(unique=True)),
                ('points', fields.BigIntField()),
                ('points_cancelled', fields.BigIntField(default=0)),
                ('status', fields.CharField(default='PENDING', max_length=12)),
                ('release_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('breakdown', fields.TextField(unique=False)),
                ('entry_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'points_pending', 'app': 'models', 'constraints': [CheckConstraint(check='points > 0 AND points_cancelled >= 0 AND points_cancelled <= points', name='points_pending_bounds')], 'indexes': [Index(fields=['member_id', 'status']), Index(fields=['status', 'release_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TaskClaim',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('task_id', fields.IntField()),
                ('member_id', fields.BigIntField()),
                ('period', fields.CharField(max_length=16)),
                ('points', fields.BigIntField()),
                ('growth', fields.BigIntField()),
                ('entry_id', fields.BigIntField(null=True)),
                ('claimed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'task_claim', 'app': 'models', 'unique_together': (('task_id', 'member_id', 'period'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(forward),
    ]
