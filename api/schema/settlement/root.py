"""Settlement root fields (issue 12): the operators' (mixed into the operators' Query and Mutation) and
the merchant assistant's mutations (mixed into the public Mutation)."""
from __future__ import annotations

from typing import Optional

import strawberry

from api.resolvers import settlement as st
from api.schema.base import Connection
from api.schema.settlement import inputs as i
from api.schema.settlement.types import LiabilityReport, MerchantTerms, SettlementReconciliation, SettlementStatement


@strawberry.type
class SettlementQuery:
    settlement_statements: Connection[SettlementStatement] = strawberry.field(
        resolver=st.settlement_statements, description="Statements, newest first (optionally one merchant's, one status).")
    settlement_statement: Optional[SettlementStatement] = strawberry.field(
        resolver=st.settlement_statement, description="One statement (its lines, totals and files).")
    liability_report: LiabilityReport = strawberry.field(
        resolver=st.liability_report, description="Points outstanding and their value, breakage, flows per merchant.")
    settlement_reconciliation: SettlementReconciliation = strawberry.field(
        resolver=st.settlement_reconciliation, description="Statements against their postings; accounts sum to zero.")
    merchant_terms: Optional[MerchantTerms] = strawberry.field(resolver=st.merchant_terms)


@strawberry.type
class SettlementMutation:
    settlement_statement_generate: i.SettlementStatementGeneratePayload = strawberry.mutation(
        resolver=st.settlement_statement_generate,
        description="A merchant's DRAFT for a closed day, week or month (again while it is a DRAFT); audited.")
    settlement_period_close: i.SettlementPeriodClosePayload = strawberry.mutation(
        resolver=st.settlement_period_close,
        description="Every active merchant's DRAFT for a closed day, week or month; merchants past DRAFT are skipped.")
    settlement_statement_approve: i.SettlementStatementApprovePayload = strawberry.mutation(
        resolver=st.settlement_statement_approve, description="Approves a CONFIRMED statement; audited.")
    settlement_statement_mark_paid: i.SettlementStatementMarkPaidPayload = strawberry.mutation(
        resolver=st.settlement_statement_mark_paid, description="Records the payment of an APPROVED one; audited.")
    settlement_adjustment_post: i.SettlementAdjustmentPostPayload = strawberry.mutation(
        resolver=st.settlement_adjustment_post,
        description="Finance's correction between the mall and a merchant (an ADJUSTMENT posting, in the merchant's "
                    "next statement); idempotent; audited with the reason.")
    merchant_terms_update: i.MerchantTermsUpdatePayload = strawberry.mutation(
        resolver=st.merchant_terms_update, description="A merchant's settlement terms, from now on; audited.")
    product_settlement_price_update: i.ProductSettlementPriceUpdatePayload = strawberry.mutation(
        resolver=st.product_settlement_price_update,
        description="A merchant product's fixed price per written-off voucher (null: the points' value); audited.")


@strawberry.type
class SettlementStaffMutation:
    settlement_statement_confirm: i.SettlementStatementConfirmPayload = strawberry.mutation(
        resolver=st.settlement_statement_confirm, description="The merchant's manager confirms a DRAFT statement.")
    settlement_statement_dispute: i.SettlementStatementDisputePayload = strawberry.mutation(
        resolver=st.settlement_statement_dispute, description="The merchant's manager disputes a DRAFT with a note.")
