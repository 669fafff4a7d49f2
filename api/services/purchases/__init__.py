"""Earning at the till (purchaseRecord, purchaseRecordBatch), refunds, and paying with points.

Modules: `checks` (input checks before any transaction), `earn` (booking one receipt: the
one-statement earn on PostgreSQL, the general earn), `group` (batches and group commit), `refunds`,
`pay`, `batch` (the set-based booking of a group of receipts) and `sql` (the raw SQL, each statement with why it is SQL).
"""
from api.services import merchants
from api.services.integrations import IntegrationIdentity
from api.services.purchases import batch, checks, earn, group, pay, refunds, sql
from api.services.purchases.checks import (
    CLOCK_SKEW,
    MAX_BATCH,
    MAX_PAY_POINTS,
    RECEIPT_MAX_AGE,
    Checked,
    PurchaseInput,
    PurchaseResult,
    check_purchase,
    scope_of,
    yuan,
)
from api.services.purchases.earn import import_purchase
from api.services.purchases.group import BatchItem, record_batch, record_purchase
from api.services.purchases.pay import PayResult, pay_with_points
from api.services.purchases.refunds import RefundResult, refund_purchase

# The names of the module this package was (tests and tools reach for them).
_Checked = Checked
_check_purchase = check_purchase
_book = earn.book
_book_together = group.book_together
_earn = earn.earn
_group_commit = group.group_commit

__all__ = [
    "CLOCK_SKEW", "MAX_BATCH", "MAX_PAY_POINTS", "RECEIPT_MAX_AGE", "BatchItem", "batch", "Checked", "IntegrationIdentity",
    "PayResult", "PurchaseInput", "PurchaseResult", "RefundResult", "check_purchase", "checks", "earn", "group",
    "import_purchase", "merchants", "pay", "pay_with_points", "record_batch", "record_purchase", "refund_purchase",
    "refunds", "scope_of", "sql", "yuan",
]
