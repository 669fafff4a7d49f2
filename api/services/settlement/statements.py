"""Settlement statements: generated from the journal per merchant and period, then DRAFT → CONFIRMED
(the merchant's manager) → APPROVED (finance) → PAID (finance, with the payment's reference).

A statement holds every journal row of its merchant booked before its period's end that no other
statement holds (settlement_statement_entry, one row per journal row, unique): an event booked late,
or committed after a generation read the journal, falls into the merchant's next statement. A DRAFT
can be generated again (its rows are released and taken again); from CONFIRMED on, its rows, money and
period never change (the database refuses it). One merchant's generations run one at a time (an
advisory lock), and events take no settlement lock: a write-off racing a generation is either in it or
left for the next one, never both and never neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from api import locks
from api.db import Tx, transaction
from api.models import Merchant, MerchantStaff, SettlementStatement, SettlementStatementEntry
from api.services import clock, merchants
from api.services import text as hygiene
from api.services.audit import Actor, audit
from api.services.errors import DomainError, ErrorCode
from api.services.settlement import periods, reads, sql

ADVISORY_SPACE = 12  # pg_advisory_xact_lock's first key for settlement generations
ID_FIELD = ["input", "statementId"]


def _view(s: reads.StatementInfo) -> dict:
    return {"status": s.status, "netFen": s.net_fen, "periodStart": s.period_start.isoformat(),
            "periodEnd": s.period_end.isoformat(), "paymentReference": s.payment_reference}


async def _clear_the_way(merchant_id: int, start: date, end: date) -> None:
    """Refuses a period overlapping a statement past DRAFT or before a later statement; releases the
    overlapping drafts (locked first, so a confirmation racing this is seen)."""
    found = await SettlementStatement.filter(merchant_id=merchant_id, period_end__gte=start).only("id")
    drafts = []
    for s in await locks.rows(locks.Rank.STATEMENT, SettlementStatement, [f.id for f in found]):
        if s.period_start > end:
            raise DomainError(ErrorCode.STATEMENT_PERIOD_CLOSED,
                              f"a later period ({s.period_start.isoformat()}) has a statement already",
                              ["input", "periodEnd"])
        if s.status != "DRAFT":
            raise DomainError(ErrorCode.STATEMENT_PERIOD_CLOSED,
                              f"the period overlaps a {s.status} statement ({s.period_start.isoformat()} to "
                              f"{s.period_end.isoformat()})", ["input", "periodStart"])
        drafts.append(s.id)
    if drafts:
        await SettlementStatementEntry.filter(statement_id__in=drafts).delete()
        await SettlementStatement.filter(id__in=drafts).delete()


async def _fill(tx: Tx, statement: SettlementStatement, end: date) -> reads.StatementInfo:
    await tx.execute(sql.ASSIGN, statement.id, statement.merchant_id, periods.end_instant(end))
    totals = await reads.computed_totals(statement.id)
    net = sum(t.amount_fen for t in totals)
    await SettlementStatement.filter(id=statement.id).update(net_fen=net, totals=reads.totals_json(totals))
    statement.net_fen, statement.totals = net, reads.totals_json(totals)
    return reads.info(statement)


async def generate(actor: Actor, operator_id: int | None, merchant_code: str, start: date,
                   end: date) -> reads.StatementInfo:
    """A merchant's DRAFT statement for a closed period (again, when it is a DRAFT already); audited."""
    merchant = await merchants.by_code(merchant_code, ["input", "merchantCode"])
    kind = periods.kind_of(start, end)
    periods.check_closed(end)
    async with transaction() as tx:
        await locks.advisory(locks.Rank.SETTLEMENT, ADVISORY_SPACE, f"merchant:{merchant.id}")
        await _clear_the_way(merchant.id, start, end)
        statement = await SettlementStatement.create(
            merchant_id=merchant.id, period_kind=kind, period_start=start, period_end=end, status="DRAFT",
            generated_at=clock.now(), generated_by=operator_id)
        locks.enter(locks.Rank.STATEMENT, (statement.id,))  # new, and so not seen by anyone else yet
        result = await _fill(tx, statement, end)
        await audit(tx, actor, "settlement.generate", "settlement_statement", str(statement.id),
                    {"merchantCode": merchant.code}, after=_view(result))
    return result


@dataclass(frozen=True)
class Skipped:
    """A merchant a period close left alone, and why (the same code and message a single generation gives)."""
    merchant_code: str
    code: ErrorCode
    message: str


async def close_period(actor: Actor, operator_id: int | None, start: date,
                       end: date) -> tuple[list[reads.StatementInfo], list[Skipped]]:
    """Finance closes a day, week or month for every merchant: a DRAFT per active merchant (again where
    one is a DRAFT), each in its own transaction and audited as a single generation is. A merchant whose
    period is past DRAFT (confirmed, approved, paid) or has a later statement is skipped and named; a
    period that is not a closed day, week or month refuses the whole close, with nothing written."""
    periods.kind_of(start, end)
    periods.check_closed(end)
    made: list[reads.StatementInfo] = []
    skipped: list[Skipped] = []
    for code in await Merchant.filter(active=True).order_by("code").values_list("code", flat=True):
        try:
            made.append(await generate(actor, operator_id, str(code), start, end))
        except DomainError as err:
            if err.code is not ErrorCode.STATEMENT_PERIOD_CLOSED:
                raise
            skipped.append(Skipped(str(code), err.code, err.message))
    return made, skipped


async def _locked(statement_id: int, merchant_id: int | None = None) -> SettlementStatement:
    """The statement, locked; NOT_FOUND also when it is another merchant's (its existence is not told)."""
    found = await locks.row(locks.Rank.STATEMENT, SettlementStatement, statement_id)
    if found is None or (merchant_id is not None and found.merchant_id != merchant_id):
        raise DomainError(ErrorCode.NOT_FOUND, "no such statement", ID_FIELD)
    return found


def _require(s: SettlementStatement, status: str, doing: str) -> None:
    if s.status != status:
        raise DomainError(ErrorCode.STATEMENT_STATE_INVALID, f"only a {status} statement can be {doing}; it is "
                          f"{s.status}", ID_FIELD)


async def _move(actor: Actor, s: SettlementStatement, action: str, tx: Tx, **changes: object) -> reads.StatementInfo:
    before = reads.info(s)
    await SettlementStatement.filter(id=s.id).update(**changes)
    for name, value in changes.items():
        setattr(s, name, value)
    after = reads.info(s)
    await audit(tx, actor, action, "settlement_statement", str(s.id), None, before=_view(before), after=_view(after))
    return after


async def _manager(staff_id: int) -> None:
    """Read at the call, not from the token: a manager made a clerk stops confirming at once."""
    account = await MerchantStaff.filter(id=staff_id, active=True).only("id", "role").first()
    if account is None or account.role != "MANAGER":
        raise DomainError(ErrorCode.STAFF_ROLE_REQUIRED, "only the merchant's manager may do this", ID_FIELD)


async def confirm(staff_id: int, merchant_id: int, statement_id: int) -> reads.StatementInfo:
    """The merchant's manager agrees with a DRAFT: it becomes CONFIRMED (and can no longer be regenerated)."""
    async with transaction() as tx:
        s = await _locked(statement_id, merchant_id)
        await _manager(staff_id)
        _require(s, "DRAFT", "confirmed")
        return await _move(("staff", str(staff_id)), s, "settlement.confirm", tx, status="CONFIRMED",
                           confirmed_at=clock.now(), confirmed_by=staff_id)


async def dispute(staff_id: int, merchant_id: int, statement_id: int, note: str) -> reads.StatementInfo:
    """The merchant's manager disputes a DRAFT with a note: it stays a DRAFT for finance to look into."""
    note = hygiene.clean(note, ["input", "note"], max_length=500, min_length=2)
    async with transaction() as tx:
        s = await _locked(statement_id, merchant_id)
        await _manager(staff_id)
        _require(s, "DRAFT", "disputed")
        return await _move(("staff", str(staff_id)), s, "settlement.dispute", tx, dispute_note=note,
                           disputed_at=clock.now())


async def approve(actor: Actor, operator_id: int, statement_id: int) -> reads.StatementInfo:
    """Finance approves a CONFIRMED statement: APPROVED, never to change again."""
    async with transaction() as tx:
        s = await _locked(statement_id)
        _require(s, "CONFIRMED", "approved")
        return await _move(actor, s, "settlement.approve", tx, status="APPROVED", approved_at=clock.now(),
                           approved_by=operator_id)


async def mark_paid(actor: Actor, operator_id: int, statement_id: int, payment_reference: str) -> reads.StatementInfo:
    """Finance records the payment of an APPROVED statement (the bank's or provider's reference)."""
    reference = hygiene.identifier(payment_reference, ["input", "paymentReference"], 64)
    async with transaction() as tx:
        s = await _locked(statement_id)
        _require(s, "APPROVED", "marked paid")
        return await _move(actor, s, "settlement.mark_paid", tx, status="PAID", paid_at=clock.now(),
                           paid_by=operator_id, payment_reference=reference)


__all__ = ["approve", "confirm", "dispute", "generate", "mark_paid"]
