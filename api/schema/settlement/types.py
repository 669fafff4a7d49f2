"""Settlement types (issue 12): statements with totals and lines, terms, the liability report and the
reconciliation of the journal."""
from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Optional

import strawberry

from api.schema.base import Connection, Money, Node, check_first, from_cursor, global_id
from api.schema.core import Merchant
from api.services import merchants
from api.services.settlement import liability, reads


@strawberry.enum(description="DRAFT → CONFIRMED (the merchant's manager) → APPROVED (finance) → PAID.")
class SettlementStatus(Enum):
    DRAFT = "DRAFT"
    CONFIRMED = "CONFIRMED"
    APPROVED = "APPROVED"
    PAID = "PAID"


@strawberry.enum(description="What a statement line is: the event that moved money between mall and merchant.")
class SettlementLineKind(Enum):
    POINTS_ISSUED = "POINTS_ISSUED"
    POINTS_PAID = "POINTS_PAID"
    VOUCHER_WRITTEN_OFF = "VOUCHER_WRITTEN_OFF"
    CASH_SALE = "CASH_SALE"
    REFUND = "REFUND"
    ADJUSTMENT = "ADJUSTMENT"


@strawberry.enum(description="An account of the settlement journal.")
class SettlementAccount(Enum):
    MALL = "MALL"
    PROVIDER_CLEARING = "PROVIDER_CLEARING"
    POINTS_LIABILITY = "POINTS_LIABILITY"
    MERCHANT_PAYABLE = "MERCHANT_PAYABLE"
    MERCHANT_RECEIVABLE = "MERCHANT_RECEIVABLE"


async def merchant_of(merchant_id: int) -> Merchant:
    found = await merchants.by_id(merchant_id)  # cached: no query per row
    assert found is not None, "a merchant is never deleted"
    return Merchant.of(found)


@strawberry.type(description="One kind of line of a statement: how many postings and their amount.")
class SettlementTotal:
    kind: SettlementLineKind
    count: int
    amount: Money = strawberry.field(description="Its effect on the net (> 0: the mall owes the merchant).")


@strawberry.type(description="One posting of a statement: an event and what it moved for the merchant.")
class SettlementLine:
    pk: strawberry.Private[int]
    kind: SettlementLineKind
    reference: str = strawberry.field(description="The event: purchase:<id>, till_payment:<id>, voucher:<id> …")
    points: int
    amount: Money = strawberry.field(description="> 0: the mall owes the merchant this; < 0: the merchant owes it.")
    booked_at: datetime

    @classmethod
    def of(cls, line: reads.Line) -> "SettlementLine":
        return cls(pk=line.id, kind=SettlementLineKind(line.kind), reference=line.posting, points=line.points,
                   amount=Money(amount_fen=line.amount_fen), booked_at=line.booked_at)


@strawberry.type(description="A merchant's settlement statement for a day, week or month (Asia/Shanghai).")
class SettlementStatement(Node):
    pk: strawberry.Private[int]
    merchant_pk: strawberry.Private[int]
    period_kind: str = strawberry.field(description="DAY, WEEK or MONTH.")
    period_start: date
    period_end: date = strawberry.field(description="The period's last day (inclusive).")
    status: SettlementStatus
    net: Money = strawberry.field(description="> 0: the mall pays the merchant; < 0: the merchant pays the mall.")
    totals: list[SettlementTotal]
    generated_at: datetime
    confirmed_at: Optional[datetime]
    dispute_note: Optional[str] = strawberry.field(description="The manager's note when they disputed the draft.")
    disputed_at: Optional[datetime]
    approved_at: Optional[datetime]
    paid_at: Optional[datetime]
    payment_reference: Optional[str]
    xlsx_url: str = strawberry.field(description="GET with the operator's bearer token (operators' endpoint).")
    csv_url: str = strawberry.field(description="GET with the operator's bearer token (operators' endpoint).")

    @classmethod
    def of(cls, s: reads.StatementInfo) -> "SettlementStatement":
        base = f"/admin/settlement/statements/{s.id}"
        return cls(
            id=global_id("SettlementStatement", s.id), pk=s.id, merchant_pk=s.merchant_id, period_kind=s.period_kind,
            period_start=s.period_start, period_end=s.period_end, status=SettlementStatus(s.status),
            net=Money(amount_fen=s.net_fen),
            totals=[SettlementTotal(kind=SettlementLineKind(t.kind), count=t.count, amount=Money(amount_fen=t.amount_fen))
                    for t in s.totals],
            generated_at=s.generated_at, confirmed_at=s.confirmed_at, dispute_note=s.dispute_note,
            disputed_at=s.disputed_at, approved_at=s.approved_at, paid_at=s.paid_at,
            payment_reference=s.payment_reference, xlsx_url=base + ".xlsx", csv_url=base + ".csv")

    @strawberry.field
    async def merchant(self) -> Merchant:
        return await merchant_of(self.merchant_pk)

    @strawberry.field(description="One line per posting, in booking order.")
    async def lines(self, first: int, after: Optional[str] = None) -> Connection[SettlementLine]:
        check_first(first)
        rows = await reads.lines(self.pk, first + 1, from_cursor(after))
        return Connection.of([SettlementLine.of(r) for r in rows], first, after)


@strawberry.type(description="A merchant's settlement terms (new terms apply to events from now on).")
class MerchantTerms:
    point_cost_share_percent: int = strawberry.field(
        description="The part of the value of points earned on its receipts the merchant funds (default 0).")
    commission_percent: int = strawberry.field(
        description="The mall's commission on the cash part of points-plus-cash orders of its goods (default 0).")


@strawberry.type(description="Finance's correction: one ADJUSTMENT posting between the mall and a merchant.")
class SettlementAdjustment:
    posting: str = strawberry.field(description="The posting's reference on statement lines (adjustment:<n>).")
    merchant: Merchant
    amount: Money = strawberry.field(description="> 0: the mall owes the merchant more; < 0: the merchant owes "
                                                 "the mall.")
    reason: str
    booked_at: datetime


@strawberry.type(description="Points that expired in one Asia/Shanghai month (breakage).")
class BreakageMonth:
    month: date = strawberry.field(description="The month's first day.")
    points: int
    value: Money


@strawberry.type(description="Points earned on a merchant's receipts and redeemed there.")
class MerchantPointsFlow:
    merchant_pk: strawberry.Private[int]
    points_issued: int = strawberry.field(description="Earned on its receipts, less what refunds took back.")
    points_redeemed: int = strawberry.field(description="Paid at its tills, plus the points of its written-off vouchers.")

    @strawberry.field
    async def merchant(self) -> Merchant:
        return await merchant_of(self.merchant_pk)


@strawberry.type(description="The points programme's liability as of a moment.")
class LiabilityReport:
    as_of: datetime
    points_outstanding: int = strawberry.field(description="Points members hold (every entry booked by asOf).")
    value: Money = strawberry.field(description="Their cash value at the pointsPay rate.")
    expired_by_month: list[BreakageMonth] = strawberry.field(description="The last 12 months, oldest first.")
    merchants: list[MerchantPointsFlow]

    @classmethod
    def of(cls, r: liability.Liability) -> "LiabilityReport":
        return cls(as_of=r.as_of, points_outstanding=r.points_outstanding, value=Money(amount_fen=r.value_fen),
                   expired_by_month=[BreakageMonth(month=m.month, points=m.points, value=Money(amount_fen=m.value_fen))
                                     for m in r.expired_by_month],
                   merchants=[MerchantPointsFlow(merchant_pk=m.merchant_id, points_issued=m.issued,
                                                 points_redeemed=m.redeemed) for m in r.by_merchant])


@strawberry.type(description="One account's balance in the journal (debits − credits).")
class SettlementAccountBalance:
    account: SettlementAccount
    merchant_pk: strawberry.Private[Optional[int]]
    balance: Money

    @strawberry.field(description="The merchant of a merchant account; null for the mall's accounts.")
    async def merchant(self) -> Optional[Merchant]:
        return None if self.merchant_pk is None else await merchant_of(self.merchant_pk)


@strawberry.type(description="The journal proven: every statement equals the sum of its postings, and all "
                             "accounts (every merchant's and the mall's) sum to zero.")
class SettlementReconciliation:
    balanced: bool
    total: Money = strawberry.field(description="The sum of every account: zero.")
    statements_checked: int
    mismatched_statement_ids: list[strawberry.ID]
    accounts: list[SettlementAccountBalance]

    @classmethod
    def of(cls, r: reads.Reconciliation) -> "SettlementReconciliation":
        return cls(balanced=r.balanced, total=Money(amount_fen=r.total_fen), statements_checked=r.statements_checked,
                   mismatched_statement_ids=[global_id("SettlementStatement", i) for i in r.mismatched_statement_ids],
                   accounts=[SettlementAccountBalance(account=SettlementAccount(b.account), merchant_pk=b.merchant_id,
                                                      balance=Money(amount_fen=b.balance_fen)) for b in r.balances])
