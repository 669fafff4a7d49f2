"""Merchant settlement (商户分账, issue 12): a double-entry money journal fed by the events in their own
transactions, statements per merchant and period with their state machine, exports for finance, the
points liability, and the merchants' terms.

Modules: `journal` (the postings, one statement each, called from the event sites), `terms`, `periods`,
`statements` (generate, confirm, dispute, approve, mark paid), `reads` (statements, lines,
reconciliation), `exports` (XLSX and CSV), `liability`, and `sql` (the raw SQL, each with why).
"""
from api.services.settlement.journal import (
    cash_sale,
    cash_sale_refunded,
    points_issued,
    points_issued_many,
    points_paid,
    points_value_fen,
    purchase_refunded,
    voucher_written_off,
)

__all__ = ["cash_sale", "cash_sale_refunded", "points_issued", "points_issued_many", "points_paid", "points_value_fen",
           "purchase_refunded", "voucher_written_off"]
