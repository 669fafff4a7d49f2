"""Merchant staff roles (issue 12): MANAGER or CLERK. Staff who existed before roles could do everything
their merchant's account allowed, so they become MANAGER. On PostgreSQL a CHECK keeps the column to the two
roles (SQLite cannot add one to an existing table; the service checks the role it writes)."""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script(
            'ALTER TABLE "merchant_staff" ADD CONSTRAINT "merchant_staff_role" '
            "CHECK (role IN ('MANAGER', 'CLERK'))")


class Migration(migrations.Migration):
    dependencies = [('models', '0011_operators')]

    initial = False

    operations = [
        ops.AddField(
            model_name='MerchantStaff',
            name='role',
            field=fields.CharField(db_default='MANAGER', max_length=16),
        ),
        ops.RunPython(forward),
    ]
