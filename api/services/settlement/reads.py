"""Reading statements, their totals and lines, and the reconciliation of the whole journal."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from api import db
from api.models import SettlementStatement
from api.services.settlement import sql

KINDS = ("POINTS_ISSUED", "POINTS_PAID", "VOUCHER_WRITTEN_OFF", "CASH_SALE", "REFUND", "ADJUSTMENT")
STATUSES = ("DRAFT", "CONFIRMED", "APPROVED", "PAID")
MERCHANT_ACCOUNTS = ("MERCHANT_PAYABLE", "MERCHANT_RECEIVABLE")


@dataclass(frozen=True)
class Total:
    kind: str
    count: int
    amount_fen: int


@dataclass(frozen=True)
class StatementInfo:
    id: int
    merchant_id: int
    period_kind: str
    period_start: date
    period_end: date
    status: str
    net_fen: int
    totals: tuple[Total, ...]
    generated_at: datetime
    confirmed_at: datetime | None
    dispute_note: str | None
    disputed_at: datetime | None
    approved_at: datetime | None
    paid_at: datetime | None
    payment_reference: str | None


@dataclass(frozen=True)
class Line:
    id: int  # the posting's first journal row
    posting: str
    kind: str
    amount_fen: int
    points: int
    booked_at: datetime


def info(s: SettlementStatement) -> StatementInfo:
    totals = tuple(Total(t["kind"], t["count"], t["amountFen"]) for t in json.loads(s.totals))
    return StatementInfo(s.id, s.merchant_id, s.period_kind, s.period_start, s.period_end, s.status, s.net_fen,
                         totals, s.generated_at, s.confirmed_at, s.dispute_note, s.disputed_at, s.approved_at,
                         s.paid_at, s.payment_reference)


async def computed_totals(statement_id: int) -> tuple[Total, ...]:
    """Every kind, with the count of postings and their effect on the merchant (0 when none)."""
    rows = {r["kind"]: r for r in await db.fetch(sql.TOTALS, statement_id)}
    return tuple(Total(k, int(rows[k]["count"]) if k in rows else 0, int(rows[k]["amount"]) if k in rows else 0)
                 for k in KINDS)


def totals_json(totals: tuple[Total, ...]) -> str:
    return json.dumps([{"kind": t.kind, "count": t.count, "amountFen": t.amount_fen} for t in totals])


async def get(statement_id: int) -> StatementInfo | None:
    found = await SettlementStatement.filter(id=statement_id).first()
    return None if found is None else info(found)


async def page(limit: int, after_id: int | None, *, merchant_id: int | None = None,
               status: str | None = None) -> list[StatementInfo]:
    """Statements, newest first; the cursor is a statement id."""
    query = SettlementStatement.all()
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    if status is not None:
        query = query.filter(status=status)
    if after_id is not None:
        query = query.filter(id__lt=after_id)
    return [info(s) for s in await query.order_by("-id").limit(limit)]


async def lines(statement_id: int, limit: int, after_id: int | None) -> list[Line]:
    rows = await db.fetch(sql.LINES, statement_id, after_id or 0, limit)
    return [Line(int(r["id"]), r["posting"], r["kind"], int(r["amount"]), int(r["points"] or 0),
                 _datetime(r["booked_at"])) for r in rows]


def _datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class Balance:
    account: str
    merchant_id: int | None  # None: a mall-side account (MALL, PROVIDER_CLEARING, POINTS_LIABILITY)
    balance_fen: int  # debits − credits


@dataclass(frozen=True)
class Reconciliation:
    balances: tuple[Balance, ...]
    total_fen: int  # Σ of every account: 0 when the journal balances
    statements_checked: int
    mismatched_statement_ids: tuple[int, ...]  # statements whose stored net ≠ the sum of their rows

    @property
    def balanced(self) -> bool:
        return self.total_fen == 0 and not self.mismatched_statement_ids


async def reconcile() -> Reconciliation:
    merged: dict[tuple[str, int | None], int] = {}
    for r in await db.fetch(sql.BALANCES):
        key = (r["account"], r["merchant_id"] if r["account"] in MERCHANT_ACCOUNTS else None)
        merged[key] = merged.get(key, 0) + int(r["balance"])
    balances = tuple(Balance(a, m, b) for (a, m), b in sorted(merged.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)))
    mismatched = tuple(sorted(int(r["id"]) for r in await db.fetch(sql.STATEMENT_MISMATCHES)))
    return Reconciliation(balances, sum(b.balance_fen for b in balances), await SettlementStatement.all().count(),
                          mismatched)
