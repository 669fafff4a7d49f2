"""Reach (issue 13 items 3-5): member tags, segments, the notifications outbox/inbox with members'
preferences and WeChat openids, campaigns and their audiences. Generated from the models, plus the explicit
CHECK constraints (as 0002/0011 do: CreateModel records them without emitting them) and a partial index
for the dispatcher's due pushes."""
import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

_guards = importlib.import_module("api.migrations.0002_money_guards")

CHECKS = [
    ("notification", "notification_channel", "channel IN ('INBOX', 'SMS', 'WECHAT')"),
    ("notification", "notification_status", "status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')"),
    ("campaign", "campaign_holdout", "holdout_percent >= 0 AND holdout_percent <= 90"),
    ("campaign", "campaign_status", "status IN ('SCHEDULED', 'SENDING', 'SENT', 'CANCELLED')"),
    ("campaign", "campaign_channel", "channel IN ('INBOX', 'SMS', 'WECHAT')"),
]


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    statements = _guards.postgres_checks(CHECKS) if postgres else _guards.sqlite_checks(CHECKS)
    # The dispatcher's due pushes, found without scanning delivered ones.
    statements.append('CREATE INDEX IF NOT EXISTS "notification_due" ON "notification" ("next_attempt_at")'
                      " WHERE status = 'PENDING'")
    for statement in statements:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('models', '0017_installation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MemberTag',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('tag', fields.CharField(max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member_tag', 'app': 'models', 'unique_together': (('member_id', 'tag'),), 'indexes': [Index(fields=['tag', 'member_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberWechat',
            fields=[
                ('member', fields.OneToOneField('models.Member', source_field='member_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('openid', fields.CharField(unique=True, max_length=64)),
                ('bound_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'member_wechat', 'app': 'models', 'pk_attr': 'member_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('topic', fields.CharField(max_length=20)),
                ('channel', fields.CharField(max_length=8)),
                ('title', fields.CharField(max_length=64)),
                ('body', fields.CharField(max_length=500)),
                ('source_ref', fields.CharField(null=True, max_length=64)),
                ('campaign_id', fields.IntField(null=True)),
                ('status', fields.CharField(default='PENDING', max_length=10)),
                ('attempts', fields.SmallIntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('error', fields.CharField(null=True, max_length=120)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification', 'app': 'models', 'unique_together': (('topic', 'source_ref'),), 'constraints': [CheckConstraint(check="channel IN ('INBOX', 'SMS', 'WECHAT')", name='notification_channel'), CheckConstraint(check="status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')", name='notification_status')], 'indexes': [Index(fields=['member_id', 'id']), Index(fields=['status', 'next_attempt_at']), Index(fields=['campaign_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationPreference',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('topic', fields.CharField(max_length=20)),
                ('channel', fields.CharField(max_length=8)),
                ('enabled', fields.BooleanField()),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification_preference', 'app': 'models', 'unique_together': (('member_id', 'topic', 'channel'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Segment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('definition', fields.TextField(unique=False)),
                ('created_by', fields.ForeignKeyField('models.Operator', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'segment', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('segment', fields.ForeignKeyField('models.Segment', source_field='segment_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('channel', fields.CharField(max_length=8)),
                ('title', fields.CharField(max_length=64)),
                ('body', fields.CharField(max_length=500)),
                ('send_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('holdout_percent', fields.SmallIntField(default=0)),
                ('status', fields.CharField(default='SCHEDULED', max_length=10)),
                ('created_by', fields.ForeignKeyField('models.Operator', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'campaign', 'app': 'models', 'constraints': [CheckConstraint(check='holdout_percent >= 0 AND holdout_percent <= 90', name='campaign_holdout'), CheckConstraint(check="status IN ('SCHEDULED', 'SENDING', 'SENT', 'CANCELLED')", name='campaign_status'), CheckConstraint(check="channel IN ('INBOX', 'SMS', 'WECHAT')", name='campaign_channel')], 'indexes': [Index(fields=['status', 'send_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('holdout', fields.BooleanField()),
                ('notified', fields.BooleanField(default=False)),
            ],
            options={'table': 'campaign_member', 'app': 'models', 'unique_together': (('campaign_id', 'member_id'),), 'indexes': [Index(fields=['campaign_id', 'holdout', 'notified'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(forward),
    ]
