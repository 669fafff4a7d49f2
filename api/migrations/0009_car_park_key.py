from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_parking_exit_event')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CarParkKey',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('car_park', fields.ForeignKeyField('models.CarPark', source_field='car_park_id', db_constraint=True, to_field='id', related_name='keys', on_delete=OnDelete.CASCADE)),
                ('key', fields.ForeignKeyField('models.IntegrationKey', source_field='key_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'car_park_key', 'app': 'models', 'unique_together': (('car_park_id', 'key_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
