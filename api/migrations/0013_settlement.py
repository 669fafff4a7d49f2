"""Merchant settlement (issue 12): the money journal, merchant and product terms, statements and which
journal rows each statement holds. Generated from the models, plus the explicit guards at the end (as
0011 does): the CHECK constraints (Tortoise records but does not emit them), the journal append-only
(UPDATE and DELETE refused on both databases), a statement's money and period frozen once it left DRAFT,
and its rows released only while it is a DRAFT."""
import importlib

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint

_guards = importlib.import_module("api.migrations.0002_money_guards")
_models = importlib.import_module("api.models.settlement")

CHECKS = [
    ("journal_entry", "journal_entry_valid", _models.ENTRY_CHECK),
    ("merchant_terms", "merchant_terms_bounds", _models.TERMS_CHECK),
    ("product_settlement", "product_settlement_nonneg", "settlement_price_fen >= 0"),
    ("settlement_statement", "settlement_statement_valid", _models.STATEMENT_CHECK),
]
FROZEN = ("OLD.status <> 'DRAFT' AND (NEW.net_fen <> OLD.net_fen OR NEW.totals <> OLD.totals"
          " OR NEW.period_start <> OLD.period_start OR NEW.period_end <> OLD.period_end"
          " OR NEW.merchant_id <> OLD.merchant_id OR NEW.status = 'DRAFT')")
HELD = "(SELECT status FROM settlement_statement WHERE id = OLD.statement_id) <> 'DRAFT'"


def _postgres() -> list[str]:
    sql = _guards.postgres_checks(CHECKS)
    sql += [
        'DROP TRIGGER IF EXISTS "journal_entry_append_only" ON "journal_entry"',
        'CREATE TRIGGER "journal_entry_append_only" BEFORE UPDATE OR DELETE ON "journal_entry" '
        "FOR EACH ROW EXECUTE FUNCTION mallpoints_append_only()",
        "CREATE OR REPLACE FUNCTION mallpoints_statement_frozen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP = 'DELETE' THEN IF OLD.status <> 'DRAFT' THEN RAISE EXCEPTION 'statement % is not a draft', OLD.id;"
        f" END IF; RETURN OLD; END IF; IF {FROZEN} THEN RAISE EXCEPTION 'statement % is frozen', OLD.id; END IF;"
        " RETURN NEW; END $$",
        'CREATE TRIGGER "settlement_statement_frozen" BEFORE UPDATE OR DELETE ON "settlement_statement" '
        "FOR EACH ROW EXECUTE FUNCTION mallpoints_statement_frozen()",
        "CREATE OR REPLACE FUNCTION mallpoints_statement_entry_held() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF {HELD} THEN RAISE EXCEPTION 'statement % is not a draft', OLD.statement_id; END IF;"
        " IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$",
        'CREATE TRIGGER "settlement_statement_entry_held" BEFORE UPDATE OR DELETE ON "settlement_statement_entry" '
        "FOR EACH ROW EXECUTE FUNCTION mallpoints_statement_entry_held()",
    ]
    return sql


def _sqlite() -> list[str]:
    sql = _guards.sqlite_checks(CHECKS)
    for event in ("UPDATE", "DELETE"):
        sql.append(f'CREATE TRIGGER IF NOT EXISTS "journal_entry_append_only_{event.lower()}" BEFORE {event} ON '
                   "\"journal_entry\" BEGIN SELECT RAISE(ABORT, 'append-only table: journal_entry'); END")
        sql.append(f'CREATE TRIGGER IF NOT EXISTS "settlement_statement_entry_held_{event.lower()}" BEFORE {event} ON '
                   f'"settlement_statement_entry" WHEN {HELD} '
                   "BEGIN SELECT RAISE(ABORT, 'statement is not a draft'); END")
    sql.append('CREATE TRIGGER IF NOT EXISTS "settlement_statement_frozen_update" BEFORE UPDATE ON '
               f'"settlement_statement" WHEN {FROZEN} BEGIN SELECT RAISE(ABORT, \'statement is frozen\'); END')
    sql.append('CREATE TRIGGER IF NOT EXISTS "settlement_statement_frozen_delete" BEFORE DELETE ON '
               "\"settlement_statement\" WHEN OLD.status <> 'DRAFT' "
               "BEGIN SELECT RAISE(ABORT, 'statement is not a draft'); END")
    return sql


async def forward(apps, schema_editor) -> None:
    client = schema_editor.client
    for statement in _postgres() if client.capabilities.dialect == "postgres" else _sqlite():
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('models', '0016_reach')]

    initial = False

    operations = [
        ops.CreateModel(
            name='JournalEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('posting', fields.CharField(max_length=64)),
                ('kind', fields.CharField(max_length=20)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('debit_account', fields.CharField(max_length=20)),
                ('credit_account', fields.CharField(max_length=20)),
                ('amount_fen', fields.BigIntField()),
                ('points', fields.BigIntField(default=0)),
                ('reverses', fields.CharField(null=True, max_length=64)),
                ('booked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'journal_entry', 'app': 'models', 'unique_together': (('posting', 'debit_account', 'credit_account'),), 'constraints': [CheckConstraint(check="amount_fen > 0 AND debit_account <> credit_account AND debit_account IN ('MALL', 'PROVIDER_CLEARING', 'POINTS_LIABILITY', 'MERCHANT_PAYABLE', 'MERCHANT_RECEIVABLE') AND credit_account IN ('MALL', 'PROVIDER_CLEARING', 'POINTS_LIABILITY', 'MERCHANT_PAYABLE', 'MERCHANT_RECEIVABLE') AND kind IN ('POINTS_ISSUED', 'POINTS_PAID', 'VOUCHER_WRITTEN_OFF', 'CASH_SALE', 'REFUND', 'ADJUSTMENT')", name='journal_entry_valid')], 'indexes': [Index(fields=['merchant_id', 'booked_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MerchantTerms',
            fields=[
                ('merchant', fields.OneToOneField('models.Merchant', source_field='merchant_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('point_cost_share_percent', fields.IntField(default=0)),
                ('commission_percent', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'merchant_terms', 'app': 'models', 'constraints': [CheckConstraint(check='point_cost_share_percent >= 0 AND point_cost_share_percent <= 100 AND commission_percent >= 0 AND commission_percent <= 100', name='merchant_terms_bounds')], 'pk_attr': 'merchant_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProductSettlement',
            fields=[
                ('product', fields.OneToOneField('models.Product', source_field='product_id', primary_key=True, db_index=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('settlement_price_fen', fields.BigIntField()),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'product_settlement', 'app': 'models', 'constraints': [CheckConstraint(check='settlement_price_fen >= 0', name='product_settlement_nonneg')], 'pk_attr': 'product_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementStatement',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('period_kind', fields.CharField(max_length=8)),
                ('period_start', fields.DateField()),
                ('period_end', fields.DateField()),
                ('status', fields.CharField(default='DRAFT', max_length=10)),
                ('net_fen', fields.BigIntField(default=0)),
                ('totals', fields.TextField(default='[]', unique=False)),
                ('generated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('generated_by', fields.IntField(null=True)),
                ('confirmed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('confirmed_by', fields.IntField(null=True)),
                ('dispute_note', fields.CharField(null=True, max_length=500)),
                ('disputed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('approved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('approved_by', fields.IntField(null=True)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paid_by', fields.IntField(null=True)),
                ('payment_reference', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'settlement_statement', 'app': 'models', 'constraints': [CheckConstraint(check="status IN ('DRAFT', 'CONFIRMED', 'APPROVED', 'PAID') AND period_end >= period_start AND period_kind IN ('DAY', 'WEEK', 'MONTH')", name='settlement_statement_valid')], 'indexes': [Index(fields=['merchant_id', 'period_start']), Index(fields=['status', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementStatementEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('statement', fields.ForeignKeyField('models.SettlementStatement', source_field='statement_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('entry', fields.OneToOneField('models.JournalEntry', source_field='entry_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'settlement_statement_entry', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(forward),
    ]
