"""An index on the prize a play won (issue 14): a limited prize's Redis counter is reloaded from the prize's
stock and the plays that won it (every few seconds while its game is on, `draws.reload_prize_gate`), which
without it read every play of every game."""
from tortoise.indexes import Index
from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0019_segment_restrictions')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='DrawPlay',
            index=Index(fields=['prize_id']),
        ),
    ]
