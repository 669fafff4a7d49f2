"""An exit event id closes one stay per car park (a car park that reuses event ids is refused, not
allowed to close a second stay with it)."""
from tortoise import migrations
from tortoise.migrations import operations as ops

INDEX = ('CREATE UNIQUE INDEX IF NOT EXISTS "parking_session_exit_event" ON "parking_session" ("car_park_id", "exit_event")'
         " WHERE exit_event IS NOT NULL")


async def forward(apps, schema_editor) -> None:
    await schema_editor.client.execute_script(INDEX)


class Migration(migrations.Migration):
    dependencies = [("models", "0007_earning")]
    operations = [ops.RunPython(forward)]
