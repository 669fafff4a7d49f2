"""Operators (issue 10): roles and last sign-in, approvals of large adjustments, before/after in the
audit trail, merchant and tier status. Generated from the models, plus the explicit guard at the end
(as 0002/0004 do): the approvals' CHECK constraints, the audit trail's append-only rule asserted again
on both databases (UPDATE and DELETE refused), and the operators who existed before roles (each could
do everything) made ADMIN, so nobody loses what they could do."""
import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

_guards = importlib.import_module("api.migrations.0002_money_guards")

CHECKS = [
    ("points_adjust_approval", "approval_points_nonzero", "points <> 0"),
    ("points_adjust_approval", "approval_status", "status IN ('PENDING', 'APPROVED', 'REJECTED')"),
]
APPEND_ONLY = ["audit_log"]


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
    # One SERVICE operator's adjustments of the day, summed before each of their adjustments.
    statements.append('CREATE INDEX IF NOT EXISTS "points_entry_operator_day" ON "points_entry" ("operator_id",'
                      ' "occurred_at") WHERE operator_id IS NOT NULL')
    statements.append("UPDATE operator SET roles = 'ADMIN' WHERE roles = ''")
    for statement in statements:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('models', '0010_rate_counter')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PointsAdjustApproval',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('requester', fields.ForeignKeyField('models.Operator', source_field='requester_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('points', fields.BigIntField()),
                ('reason', fields.CharField(max_length=200)),
                ('status', fields.CharField(default='PENDING', max_length=8)),
                ('decided_by', fields.ForeignKeyField('models.Operator', source_field='decided_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('note', fields.CharField(null=True, max_length=200)),
                ('entry', fields.ForeignKeyField('models.PointsEntry', source_field='entry_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'points_adjust_approval', 'app': 'models', 'constraints': [CheckConstraint(check='points <> 0', name='approval_points_nonzero'), CheckConstraint(check="status IN ('PENDING', 'APPROVED', 'REJECTED')", name='approval_status')], 'indexes': [Index(fields=['status', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AuditLog',
            name='after',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='AuditLog',
            name='before',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddIndex(
            model_name='AuditLog',
            index=Index(fields=['actor_type', 'actor_id']),
        ),
        ops.AddIndex(
            model_name='AuditLog',
            index=Index(fields=['action']),
        ),
        ops.AddField(
            model_name='Merchant',
            name='active',
            field=fields.BooleanField(db_default=True),
        ),
        ops.AddField(
            model_name='Operator',
            name='last_login_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Operator',
            name='roles',
            field=fields.CharField(db_default='', max_length=128),
        ),
        ops.AddField(
            model_name='Tier',
            name='active',
            field=fields.BooleanField(db_default=True),
        ),
        ops.AddField(
            model_name='Tier',
            name='benefits',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.RunPython(forward),
    ]
