"""The merchant assistant (issue 12): merchants' voucher proposals. Generated from the models, plus the
explicit guard at the end (as 0002/0004/0011 do): the proposal's CHECK constraints (terms within bounds,
a settlement price of 0 to the face value, the status, and a product exactly when APPROVED) on both
databases."""
import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

_guards = importlib.import_module("api.migrations.0002_money_guards")

TERMS = ("face_value_fen > 0 AND quantity > 0 AND validity_days > 0 AND points_price > 0"
         " AND settlement_price_fen >= 0 AND settlement_price_fen <= face_value_fen")
STATUS = "status IN ('PENDING', 'APPROVED', 'REJECTED')"
PRODUCT = "(status = 'APPROVED') = (product_id IS NOT NULL)"
CHECKS = [
    ("merchant_voucher_proposal", "voucher_proposal_terms", TERMS),
    ("merchant_voucher_proposal", "voucher_proposal_status", STATUS),
    ("merchant_voucher_proposal", "voucher_proposal_product", PRODUCT),
]


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    statements = _guards.postgres_checks(CHECKS) if postgres else _guards.sqlite_checks(CHECKS)
    for statement in statements:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('models', '0012_staff_role')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MerchantVoucherProposal',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('proposed_by', fields.ForeignKeyField('models.MerchantStaff', source_field='proposed_by_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=128)),
                ('face_value_fen', fields.BigIntField()),
                ('quantity', fields.IntField()),
                ('validity_days', fields.IntField()),
                ('points_price', fields.BigIntField()),
                ('settlement_price_fen', fields.BigIntField()),
                ('status', fields.CharField(default='PENDING', max_length=8)),
                ('decided_by', fields.ForeignKeyField('models.Operator', source_field='decided_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('note', fields.CharField(null=True, max_length=200)),
                ('product', fields.ForeignKeyField('models.Product', source_field='product_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'merchant_voucher_proposal', 'app': 'models', 'constraints': [CheckConstraint(check=TERMS, name='voucher_proposal_terms'), CheckConstraint(check=STATUS, name='voucher_proposal_status'), CheckConstraint(check=PRODUCT, name='voucher_proposal_product')], 'indexes': [Index(fields=['merchant_id', 'id']), Index(fields=['status', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(forward),
    ]
