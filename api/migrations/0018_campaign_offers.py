"""Campaign offers and the parking KPI (issue 13 items 5 and 1): a campaign may give each target member
points and a voucher of a COUPON product with its message; the KPI rollup counts members' parking exits
whose fee the programme reduced, and by how much (an index on the exit time serves the day's aggregate).
The grant's bounds are a CHECK on PostgreSQL (SQLite cannot add one to an existing table; the service
checks what it writes). The rollup's rows are a cache of the base tables: they are emptied, so that no
rolled day answers 0 for the new counts (or counts draws' prizes as redemptions, as it did); days not
rolled are answered live, and the scheduled run rolls them again (docs/insight.md)."""
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    await client.execute_script('DELETE FROM "insight_kpi_day"')
    if client.capabilities.dialect == "postgres":
        await client.execute_script(
            'ALTER TABLE "campaign" ADD CONSTRAINT "campaign_grant" CHECK (grant_points >= 0 AND grant_points <= 10000)')


class Migration(migrations.Migration):
    dependencies = [('models', '0017_insight')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Campaign',
            name='grant_points',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Campaign',
            name='coupon_product',
            field=fields.ForeignKeyField('models.Product', source_field='coupon_product_id', null=True,
                                         db_constraint=True, to_field='id', related_name=False,
                                         on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='KpiDay',
            name='parking_offsets',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='KpiDay',
            name='parking_offset_fen',
            field=fields.BigIntField(default=0),
        ),
        ops.AddIndex(
            model_name='ParkingSession',
            index=Index(fields=['exited_at']),
        ),
        ops.RunPython(forward),
    ]
