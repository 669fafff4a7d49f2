"""The installation row (issue 11 finding 13): one row per database, whose random key namespaces the
Redis gates. Made by the first server start (api/services/installation.py), not here, so a database
restored from another one's dump keeps its own key only when the dump carried it. PostgreSQL keeps the
table to its one row with a CHECK (SQLite: the service only ever writes id 1). Also an index for the
tier evaluation's search of ended periods (issue 15)."""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script('ALTER TABLE "installation" ADD CONSTRAINT "installation_one_row" CHECK (id = 1)')
    # Scale (issue 15, bench/scale): the tier evaluation looks for members whose period has ended 500 at a
    # time; without an index each look scanned the whole member table.
    await client.execute_script('CREATE INDEX IF NOT EXISTS "member_tier_period_start" ON "member" ("tier_period_start")')


class Migration(migrations.Migration):
    dependencies = [('models', '0014_merchant_assistant')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Installation',
            fields=[
                ('id', fields.IntField(primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'installation', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(forward),
    ]
