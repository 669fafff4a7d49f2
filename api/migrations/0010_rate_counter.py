from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_car_park_key')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RateCounter',
            fields=[
                ('key_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('expires_at', fields.BigIntField()),
                ('hits', fields.IntField()),
            ],
            options={'table': 'rate_counter', 'app': 'models', 'pk_attr': 'key_hash'},
            bases=['Model'],
        ),
    ]
