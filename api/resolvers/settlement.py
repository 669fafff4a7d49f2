"""Settlement (issue 12): the operators' statements, terms, reports and file downloads, and the merchant
assistant's statements. Roles are checked per root field (api/schema/operators/permissions.py); the
downloads check the same table for `settlementStatements`."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import strawberry
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from strawberry.types import Info

from api.auth import caller_for
from api.resolvers import input_pk, user_errors
from api.schema.base import Connection, Money, check_first, from_cursor, from_global_id
from api.schema.core import Merchant
from api.schema.errors import ApiError
from api.schema.settlement import inputs as i
from api.schema.settlement.types import (
    LiabilityReport,
    MerchantTerms,
    SettlementAdjustment,
    SettlementReconciliation,
    SettlementStatement,
    SettlementStatus,
)
from api.services import merchants
from api.services.errors import AuthError, DomainError
from api.services.operators import roles
from api.services.settlement import adjustments, exports, liability, reads, statements, terms

STATEMENT = "SettlementStatement"


def _statement_pk(global_id: str) -> int:
    return input_pk(global_id, STATEMENT, "statementId")


async def settlement_statements(info: Info, first: int, after: Optional[str] = None,
                                merchant_code: Optional[str] = None,
                                status: Optional[SettlementStatus] = None) -> Connection[SettlementStatement]:
    check_first(first)
    merchant_id = None
    if merchant_code is not None:
        try:
            merchant_id = (await merchants.by_code(merchant_code, ["merchantCode"])).id
        except DomainError:
            return Connection.of([], first, after)  # no such merchant: no statements
    rows = await reads.page(first + 1, from_cursor(after), merchant_id=merchant_id,
                            status=status.value if status else None)
    return Connection.of([SettlementStatement.of(s) for s in rows], first, after)


async def settlement_statement(info: Info, id: strawberry.ID) -> Optional[SettlementStatement]:
    parsed = from_global_id(id, STATEMENT)
    found = await reads.get(parsed[1]) if parsed else None
    return SettlementStatement.of(found) if found else None


async def _statement_node(info: Info, pk: int) -> Optional[SettlementStatement]:
    """node(id:) of a statement: operators whose roles read statements, or staff of its own merchant."""
    found = await reads.get(pk)
    if found is None:
        return None
    caller = info.context.caller
    if info.context.is_operator:
        return SettlementStatement.of(found) if roles.may(caller.operator_roles, "settlementStatements") else None
    return SettlementStatement.of(found) if caller.staff_merchant_id == found.merchant_id else None


NODES = {STATEMENT: _statement_node}


async def liability_report(info: Info, as_of: Optional[datetime] = None) -> LiabilityReport:
    try:
        return LiabilityReport.of(await liability.report(as_of))
    except DomainError as err:  # a query has no userErrors: a coded top-level error, as check_first does
        raise ApiError(err.message, err.code.value) from err


async def settlement_reconciliation(info: Info) -> SettlementReconciliation:
    return SettlementReconciliation.of(await reads.reconcile())


async def merchant_terms(info: Info, merchant_code: str) -> Optional[MerchantTerms]:
    try:
        merchant = await merchants.by_code(merchant_code, ["merchantCode"])
    except DomainError:
        return None
    t = await terms.of_merchant(merchant.id)
    return MerchantTerms(point_cost_share_percent=t.point_cost_share_percent, commission_percent=t.commission_percent)


@user_errors(i.SettlementStatementGeneratePayload)
async def settlement_statement_generate(info: Info, input: i.SettlementStatementGenerateInput
                                        ) -> i.SettlementStatementGeneratePayload:
    s = await statements.generate(info.context.operator_actor(), info.context.operator_id(), input.merchant_code,
                                  input.period_start, input.period_end)
    return i.SettlementStatementGeneratePayload(statement=SettlementStatement.of(s))


@user_errors(i.SettlementPeriodClosePayload)
async def settlement_period_close(info: Info, input: i.SettlementPeriodCloseInput) -> i.SettlementPeriodClosePayload:
    made, skipped = await statements.close_period(info.context.operator_actor(), info.context.operator_id(),
                                                  input.period_start, input.period_end)
    return i.SettlementPeriodClosePayload(
        statements=[SettlementStatement.of(s) for s in made],
        skipped=[i.SettlementSkip(merchant_code=k.merchant_code, code=k.code.value, message=k.message) for k in skipped])


@user_errors(i.SettlementStatementApprovePayload)
async def settlement_statement_approve(info: Info, input: i.SettlementStatementApproveInput
                                       ) -> i.SettlementStatementApprovePayload:
    s = await statements.approve(info.context.operator_actor(), info.context.operator_id(),
                                 _statement_pk(input.statement_id))
    return i.SettlementStatementApprovePayload(statement=SettlementStatement.of(s))


@user_errors(i.SettlementStatementMarkPaidPayload)
async def settlement_statement_mark_paid(info: Info, input: i.SettlementStatementMarkPaidInput
                                         ) -> i.SettlementStatementMarkPaidPayload:
    s = await statements.mark_paid(info.context.operator_actor(), info.context.operator_id(),
                                   _statement_pk(input.statement_id), input.payment_reference)
    return i.SettlementStatementMarkPaidPayload(statement=SettlementStatement.of(s))


@user_errors(i.MerchantTermsUpdatePayload)
async def merchant_terms_update(info: Info, input: i.MerchantTermsUpdateInput) -> i.MerchantTermsUpdatePayload:
    merchant = await terms.update(info.context.operator_actor(), input.merchant_code, input.point_cost_share_percent,
                                  input.commission_percent)
    t = await terms.of_merchant(merchant.id)
    return i.MerchantTermsUpdatePayload(merchant=Merchant.of(merchant), terms=MerchantTerms(
        point_cost_share_percent=t.point_cost_share_percent, commission_percent=t.commission_percent))


@user_errors(i.SettlementAdjustmentPostPayload)
async def settlement_adjustment_post(info: Info, input: i.SettlementAdjustmentPostInput
                                     ) -> i.SettlementAdjustmentPostPayload:
    made = await adjustments.post(info.context.operator_actor(), input.merchant_code, input.amount_fen, input.reason,
                                  input.idempotency_key)
    merchant = await merchants.by_id(made.merchant_id)
    assert merchant is not None  # merchants are never deleted
    return i.SettlementAdjustmentPostPayload(adjustment=SettlementAdjustment(
        posting=made.posting, merchant=Merchant.of(merchant), amount=Money(amount_fen=made.amount_fen),
        reason=made.reason, booked_at=made.booked_at))


@user_errors(i.ProductSettlementPriceUpdatePayload)
async def product_settlement_price_update(info: Info, input: i.ProductSettlementPriceUpdateInput
                                          ) -> i.ProductSettlementPriceUpdatePayload:
    price = await terms.set_product_price(info.context.operator_actor(),
                                          input_pk(input.product_id, "Product", "productId"),
                                          input.settlement_price_fen)
    return i.ProductSettlementPriceUpdatePayload(product_id=input.product_id, settlement_price_fen=price)


@user_errors(i.SettlementStatementConfirmPayload)
async def settlement_statement_confirm(info: Info, input: i.SettlementStatementConfirmInput
                                       ) -> i.SettlementStatementConfirmPayload:
    staff_id, merchant_id = info.context.require_staff()
    s = await statements.confirm(staff_id, merchant_id, _statement_pk(input.statement_id))
    return i.SettlementStatementConfirmPayload(statement=SettlementStatement.of(s))


@user_errors(i.SettlementStatementDisputePayload)
async def settlement_statement_dispute(info: Info, input: i.SettlementStatementDisputeInput
                                       ) -> i.SettlementStatementDisputePayload:
    staff_id, merchant_id = info.context.require_staff()
    s = await statements.dispute(staff_id, merchant_id, _statement_pk(input.statement_id), input.note)
    return i.SettlementStatementDisputePayload(statement=SettlementStatement.of(s))


FILES = {"xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", exports.xlsx),
         "csv": ("text/csv; charset=utf-8", exports.csv_text)}


async def statement_download(request: Request) -> Response:
    """GET /admin/settlement/statements/{id}.xlsx|csv with the operator's bearer token."""
    try:
        caller = await caller_for("admin", request.headers, b"")
    except AuthError as err:
        return PlainTextResponse(err.message, status_code=401 if err.code == "UNAUTHENTICATED" else 403)
    if caller.operator_id is None:
        return PlainTextResponse("sign in as an operator first", status_code=401)
    if not roles.may(caller.operator_roles, "settlementStatements"):
        return PlainTextResponse("outside your roles", status_code=403)
    fmt = request.path_params["fmt"]
    found = await reads.get(request.path_params["statement_id"]) if fmt in FILES else None
    if found is None:
        return PlainTextResponse("no such statement", status_code=404)
    media, make = FILES[fmt]
    name = f"settlement-{found.id}-{found.period_start.isoformat()}.{fmt}"
    body = await make(found)
    await exports.record_download(caller.operator_id, found, fmt)
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})

