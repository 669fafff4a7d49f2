"""Segment restrictions (issue 13 item 3): an earning rule, a task, a draw game or a points-mall product may be
restricted to a saved segment. A nullable foreign key on each (RESTRICT: a segment in use cannot be deleted);
no segment means everyone, as before."""
from typing import Any

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


def _segment() -> Any:
    return fields.ForeignKeyField('models.Segment', source_field='segment_id', null=True, db_constraint=True,
                                  to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)


class Migration(migrations.Migration):
    dependencies = [('models', '0018_campaign_offers')]

    initial = False

    operations = [
        ops.AddField(model_name='EarnRule', name='segment', field=_segment()),
        ops.AddField(model_name='EarnTask', name='segment', field=_segment()),
        ops.AddField(model_name='DrawGame', name='segment', field=_segment()),
        ops.AddField(model_name='Product', name='segment', field=_segment()),
    ]
