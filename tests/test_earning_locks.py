"""Earning's locks go through api/locks.py in the global order (Rank), and they are really taken.

- Every lock an earning move asks for (a rule's budget, a purchase and its pending points, a refund's
  give-back) is recorded by a spy around the real `locks.enter`; within each transaction the sequence
  must never go down in (rank, id), and each move must have asked for the locks it needs.
- On PostgreSQL, a budget held by another transaction makes an earn wait (seen in pg_stat_activity),
  and the earn completes with the right points once the holder commits.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from api import db, locks
from api.services import clock, earning
from tests.conftest import PURCHASE, REFUND, bind_demo_key, make_member, make_merchant, purchase_input, snapshot, unique
from tests.test_earning import SHARE, admin_token, create_rule
from tests.waiting import postgres_dsn, wait_for_lock_waiters


@pytest.fixture
def lock_log(monkeypatch):
    """{transaction: [(rank, id), …] in the order asked} for every lock taken through the helper."""
    log: dict[int, list[tuple[int, int]]] = {}
    alive: list[object] = []  # each transaction's lock record kept, so that its id() is never reused
    real_enter = locks.enter

    def spy(rank: locks.Rank, ids=()):
        wanted = real_enter(rank, ids)
        held = db.held_locks.get()
        alive.append(held)
        log.setdefault(id(held), []).extend((int(rank), i) for i in (wanted or [0]))
        return wanted

    monkeypatch.setattr(locks, "enter", spy)
    return log


def ranks(log: dict[int, list[tuple[int, int]]]) -> list[list[int]]:
    """The distinct ranks asked for, per transaction; asserting first that each sequence never goes down."""
    for taken in log.values():
        assert taken == sorted(taken), f"locks out of the global order: {taken}"
    return [sorted({rank for rank, _ in taken}) for taken in log.values()]


def took(log: dict[int, list[tuple[int, int]]], *wanted: locks.Rank) -> bool:
    """Whether one transaction asked for all of these ranks (others, such as the account's, may come too)."""
    return any(set(wanted) <= set(taken) for taken in ranks(log))


async def test_budget_earn_refund_and_release_lock_in_rank_order(api, lock_log):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    rule = await create_rule(api, token, action="FIXED_POINTS", actionValue=40, budgetPoints=10_000, returnDays=3,
                             conditions={"merchantCodes": [merchant]})
    member_id, _ = await make_member()
    bought = purchase_input(member_id, 10_000, merchant=merchant)
    result = await api.signed(PURCHASE, {"input": bought})
    assert result["data"]["purchaseRecord"]["userErrors"] == []
    assert took(lock_log, locks.Rank.SHARED)  # the earn locked the rule's budget
    lock_log.clear()

    refund = await api.signed(REFUND, {"input": {"merchantCode": merchant, "receiptNo": bought["receiptNo"],
                                                 "refundAmountFen": 2_500, "idempotencyKey": unique("K")}})
    assert refund["data"]["purchaseRefund"]["userErrors"] == []
    assert took(lock_log, locks.Rank.PENDING, locks.Rank.SHARED)  # cancels pending, then gives back budget
    lock_log.clear()

    released = await earning.release_pending(clock.now() + timedelta(days=4))
    assert released.released >= 1
    assert took(lock_log, locks.Rank.PURCHASE, locks.Rank.PENDING)
    pending = await db.fetch("SELECT status, points - points_cancelled AS net FROM points_pending p JOIN purchase u"
                             " ON u.id = p.purchase_id WHERE u.receipt_no = $1", bought["receiptNo"])
    assert [dict(r) for r in pending] == [{"status": "RELEASED", "net": 30}]  # 40, less the refunded quarter
    budget = await db.fetch("SELECT c.points FROM earn_counter c JOIN earn_rule r ON r.id = c.rule_id"
                            " WHERE r.code = $1 AND c.member_id = 0", rule["code"])
    assert [int(r["points"]) for r in budget] == [30]  # the refund gave back its quarter of the budget


async def test_a_lock_below_one_held_is_refused_inside_an_earning_move(backend):
    """The order is enforced, not only documented: after a pending row, its purchase cannot be locked."""
    from api.models import PendingPoints, Purchase

    async with db.transaction():
        await locks.rows(locks.Rank.PENDING, PendingPoints, [1])
        with pytest.raises(locks.LockOrderError):
            await locks.row(locks.Rank.PURCHASE, Purchase, 1)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_an_earn_waits_for_a_budget_another_transaction_holds(api):
    token = await admin_token()
    rule = await create_rule(api, token, trigger="SHARE", actionValue=25, budgetPoints=1_000)
    rule_id = (await db.fetch("SELECT id FROM earn_rule WHERE code = $1", rule["code"]))[0]["id"]
    member_id, member_token = await make_member()
    before = await snapshot(member_id)
    holder = await asyncpg.connect(postgres_dsn())
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT id FROM earn_rule WHERE id = $1 FOR UPDATE", rule_id)
        share = asyncio.ensure_future(api.post(SHARE, {"k": unique("K")}, token=member_token))
        await wait_for_lock_waiters(1, blocked_by=holder)  # the earn waits for the budget's lock
        assert not share.done()
        assert (await snapshot(member_id)) == before
        await tx.commit()
        result = await asyncio.wait_for(share, 30)
    finally:
        await holder.close()
    assert result["data"]["shareRecord"]["pointsEarned"] == 25
    assert (await snapshot(member_id))["balance"] == before["balance"] + 25
