"""Merchant settlement (商户分账, issue 12): the money journal, merchant and product terms, statements.

The journal is double entry in its simplest form: every row moves `amount_fen` from one account (the
debit) to another (the credit), so each row, and so each posting (the rows of one event, sharing
`posting`), balances by construction; the CHECK keeps the amount positive and the two accounts apart.
Rows are never changed or deleted (append-only triggers); a refund is a reversing posting.

Accounts are a kind plus, for the two merchant kinds, the row's merchant:
MALL (the mall's own money), PROVIDER_CLEARING (cash the payment provider collected for us),
POINTS_LIABILITY (the value of points members hold), MERCHANT_PAYABLE (the mall owes the merchant),
MERCHANT_RECEIVABLE (the merchant owes the mall).
"""
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

if TYPE_CHECKING:
    from api.models.mall import Product
    from api.models.merchants import Merchant

ACCOUNTS_SQL = "('MALL', 'PROVIDER_CLEARING', 'POINTS_LIABILITY', 'MERCHANT_PAYABLE', 'MERCHANT_RECEIVABLE')"
KINDS_SQL = "('POINTS_ISSUED', 'POINTS_PAID', 'VOUCHER_WRITTEN_OFF', 'CASH_SALE', 'REFUND', 'ADJUSTMENT')"
ENTRY_CHECK = (f"amount_fen > 0 AND debit_account <> credit_account AND debit_account IN {ACCOUNTS_SQL}"
               f" AND credit_account IN {ACCOUNTS_SQL} AND kind IN {KINDS_SQL}")
STATEMENT_CHECK = ("status IN ('DRAFT', 'CONFIRMED', 'APPROVED', 'PAID') AND period_end >= period_start"
                   " AND period_kind IN ('DAY', 'WEEK', 'MONTH')")
TERMS_CHECK = ("point_cost_share_percent >= 0 AND point_cost_share_percent <= 100"
               " AND commission_percent >= 0 AND commission_percent <= 100")


class JournalEntry(Model):
    id = fields.BigIntField(primary_key=True)
    posting = fields.CharField(max_length=64)  # the event: "purchase:12", "purchase_refund:3", "voucher:9" …
    kind = fields.CharField(max_length=20)  # SettlementLineKind
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT)
    merchant_id: int
    debit_account = fields.CharField(max_length=20)
    credit_account = fields.CharField(max_length=20)
    amount_fen = fields.BigIntField()
    points = fields.BigIntField(default=0)  # the points behind the move, for the statement's lines
    reverses = fields.CharField(max_length=64, null=True)  # the posting a reversing posting undoes
    booked_at = fields.DatetimeField()

    class Meta:
        table = "journal_entry"
        unique_together = (("posting", "debit_account", "credit_account"),)
        indexes = (("merchant_id", "booked_at"),)
        constraints = (CheckConstraint(check=ENTRY_CHECK, name="journal_entry_valid"),)


class MerchantTerms(Model):
    # A merchant's settlement terms; a merchant without a row has the defaults (0 %, 0 %).
    merchant: fields.OneToOneRelation["Merchant"] = fields.OneToOneField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT, primary_key=True)
    merchant_id: int
    point_cost_share_percent = fields.IntField(default=0)
    commission_percent = fields.IntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "merchant_terms"
        constraints = (CheckConstraint(check=TERMS_CHECK, name="merchant_terms_bounds"),)


class ProductSettlement(Model):
    # A fixed price the mall pays the merchant per written-off voucher of this product (default without
    # a row: the value of the points the voucher was bought for).
    product: fields.OneToOneRelation["Product"] = fields.OneToOneField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT, primary_key=True)
    product_id: int
    settlement_price_fen = fields.BigIntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "product_settlement"
        constraints = (CheckConstraint(check="settlement_price_fen >= 0", name="product_settlement_nonneg"),)


class SettlementStatement(Model):
    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation["Merchant"] = fields.ForeignKeyField(
        "models.Merchant", related_name=False, on_delete=fields.RESTRICT)
    merchant_id: int
    period_kind = fields.CharField(max_length=8)  # DAY WEEK MONTH (Asia/Shanghai)
    period_start = fields.DateField()
    period_end = fields.DateField()  # inclusive
    status = fields.CharField(max_length=10, default="DRAFT")
    net_fen = fields.BigIntField(default=0)  # > 0: the mall pays the merchant
    totals = fields.TextField(default="[]")  # JSON [{kind, count, amountFen}], kept with the assignment
    generated_at = fields.DatetimeField()
    generated_by = fields.IntField(null=True)  # operator id (None: the schedule)
    confirmed_at = fields.DatetimeField(null=True)
    confirmed_by = fields.IntField(null=True)  # merchant staff id
    dispute_note = fields.CharField(max_length=500, null=True)
    disputed_at = fields.DatetimeField(null=True)
    approved_at = fields.DatetimeField(null=True)
    approved_by = fields.IntField(null=True)
    paid_at = fields.DatetimeField(null=True)
    paid_by = fields.IntField(null=True)
    payment_reference = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "settlement_statement"
        indexes = (("merchant_id", "period_start"), ("status", "id"))
        constraints = (CheckConstraint(check=STATEMENT_CHECK, name="settlement_statement_valid"),)


class SettlementStatementEntry(Model):
    # Which statement a journal row belongs to: each row to at most one (the unique entry), given by
    # the generation that took it; released only while its statement is a DRAFT (a trigger).
    id = fields.BigIntField(primary_key=True)
    statement: fields.ForeignKeyRelation["SettlementStatement"] = fields.ForeignKeyField(
        "models.SettlementStatement", related_name=False, on_delete=fields.RESTRICT)
    statement_id: int
    entry: fields.OneToOneRelation["JournalEntry"] = fields.OneToOneField(
        "models.JournalEntry", related_name=False, on_delete=fields.RESTRICT)
    entry_id: int

    class Meta:
        table = "settlement_statement_entry"
