"""Settlement races on PostgreSQL (issue 12): write-offs and refunds committing while a statement of
their period is generated are each in exactly one statement, that one or the next, never both and never
neither; two generations of one merchant at once leave one statement."""
from __future__ import annotations

import asyncio
from datetime import date

import pytest

from api import db
from api.services import clock
from api.services.errors import DomainError
from api.services.settlement import reads, statements, terms
from tests.conftest import make_merchant
from tests.mall_helpers import funded_member
from tests.settlement_helpers import (
    assert_journal_invariant,
    at,
    cash_sale,
    earn,
    identity_for,
    make_staff,
    merchant_id,
    merchant_product,
    refund,
    refund_order,
    voucher_for,
    write_off,
)

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
WRITE_OFFS, REFUNDS, ORDER_REFUNDS = 8, 4, 2  # 14 transactions at once, beside the generation


async def _journal(merchant: str) -> tuple[int, int]:
    """(rows, Σ effect on the merchant) of every journal row of the merchant."""
    row = (await db.fetch(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN credit_account LIKE 'MERCHANT_%' THEN amount_fen ELSE 0 END"
        " - CASE WHEN debit_account LIKE 'MERCHANT_%' THEN amount_fen ELSE 0 END), 0) AS net"
        " FROM journal_entry WHERE merchant_id = $1", await merchant_id(merchant)))[0]
    return int(row["n"]), int(row["net"])


async def test_events_racing_a_generation_land_in_exactly_one_statement(api):
    merchant = await make_merchant()
    await terms.update(("cli", None), merchant, 10, 5)
    identity = await identity_for(merchant)
    operator_id = int(await db.fetchval("SELECT id FROM operator WHERE username = 'admin'"))
    clock.freeze(at(2026, 5, 10, 23, 50))
    manager_id, _ = await make_staff(merchant)
    product = await merchant_product(merchant, points_price=400)
    goods = await merchant_product(merchant, kind="GOODS", points_price=100, cash_price_fen=3_000,
                                   face_value_fen=None)
    codes, receipts, orders = [], [], []
    for _ in range(WRITE_OFFS):
        member_id, _ = await funded_member(1_000)
        codes.append(await voucher_for(member_id, merchant, product, 400))
    for _ in range(REFUNDS):
        member_id, _ = await funded_member(0)
        receipts.append((await earn(identity, member_id, merchant, 50_000))[0])
    for _ in range(ORDER_REFUNDS):
        member_id, _ = await funded_member(1_000)
        orders.append(await cash_sale(member_id, goods))
    clock.freeze(at(2026, 5, 10, 23, 59, 59))

    async def generate_when_the_day_is_over():
        await asyncio.sleep(0.02)  # the events have read the clock (23:59:59) and are in their transactions
        clock.freeze(at(2026, 5, 11, 0, 0, 1))
        return await statements.generate(("cli", None), None, merchant, date(2026, 5, 10), date(2026, 5, 10))

    events = [write_off(manager_id, merchant, c) for c in codes]
    events += [refund(identity, merchant, r, 20_000) for r in receipts]
    events += [refund_order(operator_id, o) for o in orders]
    half = len(events) // 2
    results = await asyncio.gather(*events[:half], generate_when_the_day_is_over(), *events[half:])
    first = results[half]
    rows, net = await _journal(merchant)
    clock.freeze(at(2026, 5, 12, 9, 0))
    second = await statements.generate(("cli", None), None, merchant, date(2026, 5, 11), date(2026, 5, 11))
    held = await db.fetch(
        "SELECT s.statement_id, COUNT(*) AS n FROM settlement_statement_entry s JOIN journal_entry e ON e.id = s.entry_id"
        " WHERE e.merchant_id = $1 GROUP BY s.statement_id", await merchant_id(merchant))
    counts = {int(r["statement_id"]): int(r["n"]) for r in held}
    assert set(counts) <= {first.id, second.id}
    assert sum(counts.values()) == rows  # every row in one statement: none left out, none twice
    assert first.net_fen + second.net_fen == net
    written_off = sum(t.count for t in first.totals + second.totals if t.kind == "VOUCHER_WRITTEN_OFF")
    assert written_off == WRITE_OFFS
    refunds = sum(t.count for t in first.totals + second.totals if t.kind == "REFUND")
    assert refunds == REFUNDS + ORDER_REFUNDS
    assert (await reads.reconcile()).total_fen == 0
    await assert_journal_invariant()


async def test_two_generations_of_one_merchant_at_once_leave_one_statement(api):
    merchant = await make_merchant()
    identity = await identity_for(merchant)
    clock.freeze(at(2026, 4, 1, 12, 0))
    member_id, _ = await funded_member(0)
    for _ in range(5):
        await earn(identity, member_id, merchant, 10_000)
    await terms.update(("cli", None), merchant, 20, 0)
    for _ in range(5):
        await earn(identity, member_id, merchant, 10_000)
    clock.freeze(at(2026, 4, 2, 12, 0))
    outcomes = await asyncio.gather(*(statements.generate(("cli", None), None, merchant, date(2026, 4, 1),
                                                          date(2026, 4, 1)) for _ in range(6)),
                                    return_exceptions=True)
    assert not [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, DomainError)]
    stored = await db.fetch("SELECT id, net_fen FROM settlement_statement WHERE merchant_id = $1",
                            await merchant_id(merchant))
    assert len(stored) == 1  # each generation replaced the draft before it, one at a time
    rows, net = await _journal(merchant)
    assert int(stored[0]["net_fen"]) == net < 0  # the merchant funds part of the last five receipts' points
    assert int(await db.fetchval("SELECT COUNT(*) FROM settlement_statement_entry WHERE statement_id = $1",
                                 stored[0]["id"])) == rows
