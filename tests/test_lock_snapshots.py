"""Statements that lock and read in one go, raced deterministically on PostgreSQL.

In READ COMMITTED a statement reads with the snapshot taken when it started. When it then waits for a
row lock, PostgreSQL re-reads only the locked rows once the holder commits: every other read of the
statement (a subquery, a join) still sees the world from before the wait. Each test here holds a lock
in one transaction, changes what the other statement must see, starts that statement, checks in
`pg_stat_activity` that it is actually waiting for the lock, and only then commits the first.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from api import db
from api.services import clock, ledger
from tests.conftest import PAY, PURCHASE, code_for, make_member, purchase_input, unique
from tests.waiting import wait_for_lock_waiters

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

class Holder:
    """A transaction in its own task that locks members' accounts (in member order, as every move
    does), makes a change, and keeps the locks until `release()`."""

    def __init__(self, member_ids: list[int],
                 change: Callable[[db.Tx, list[ledger.LockedAccount]], Awaitable[None]]) -> None:
        self.member_ids = sorted(member_ids)
        self.change = change
        self.pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.go = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async with db.transaction() as tx:
                locked = [await ledger.lock_account(tx, m) for m in self.member_ids]
                accts = [acct for acct in locked if acct is not None]
                assert len(accts) == len(locked), "every member has an account"
                await self.change(tx, accts)
                self.pid.set_result(int(await tx.fetchval("SELECT pg_backend_pid()")))
                await self.go.wait()
        except BaseException as exc:
            if not self.pid.done():
                self.pid.set_exception(exc)
            raise

    async def release(self) -> None:
        self.go.set()
        await self.task


async def _race(member_ids, change, statement: Awaitable):
    """Runs `statement` while a Holder keeps the accounts locked; commits the holder only once the
    statement is seen waiting for it. Returns the statement's result."""
    holder = Holder(member_ids, change)
    pid = await holder.pid
    task = asyncio.ensure_future(statement)
    try:
        waiting = await wait_for_lock_waiters(1)
        assert pid in waiting[0]["blocked_by"] and waiting[0]["pid"] != pid
        assert not task.done()
    finally:
        await holder.release()
    return await task


async def _entries(member_id: int) -> list[dict]:
    return [dict(r) for r in await db.fetch(
        "SELECT e.kind, e.points, e.balance_after, e.source_type FROM points_entry e"
        " JOIN points_account a ON a.id = e.account_id WHERE a.member_id = $1 ORDER BY e.id", member_id)]


async def _balance(member_id: int) -> int:
    return int(await db.fetchval("SELECT balance FROM points_account WHERE member_id = $1", member_id))


async def test_earn_waiting_for_a_hold_reports_the_balance_without_it(api, backend):
    """A checkout holds points while the receipt waits for the account: the balance the receipt
    reports is the spendable one, so the hold committed during the wait must count."""
    member_id, _ = await make_member()
    first = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)}))["data"]["purchaseRecord"]
    assert first["pointsBalance"] == 100

    async def hold(tx, accts):
        assert await ledger.hold(tx, accts[0], points=40, source_type="test_hold", source_ref=unique("H"),
                                 expires_at=clock.now() + timedelta(hours=1)) is not None

    data = await _race([member_id], hold, api.signed(PURCHASE, {"input": purchase_input(member_id, 5_000)}))
    result = data["data"]["purchaseRecord"]
    assert result["userErrors"] == [] and result["pointsEarned"] == 50
    assert result["pointsBalance"] == 100 + 50 - 40
    assert (await ledger.balances([member_id]))[member_id] == 110
    assert [e["kind"] for e in await _entries(member_id)] == ["EARN", "EARN"]


async def test_earn_waiting_for_a_hold_release_reports_the_points_free_again(api, backend):
    """A checkout cancelled under the account lock releases its hold while a receipt waits for that
    lock: the balance the receipt reports no longer deducts the hold."""
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    async with db.transaction() as tx:
        acct = await ledger.lock_account(tx, member_id)
        hold_id = await ledger.hold(tx, acct, points=40, source_type="test_hold", source_ref=unique("H"),
                                    expires_at=clock.now() + timedelta(hours=1))
    assert (await ledger.balances([member_id]))[member_id] == 60

    async def release(tx, accts):
        assert await ledger.release(tx, hold_id)

    data = await _race([member_id], release, api.signed(PURCHASE, {"input": purchase_input(member_id, 5_000)}))
    result = data["data"]["purchaseRecord"]
    assert result["userErrors"] == [] and result["pointsEarned"] == 50
    assert result["pointsBalance"] == 150 == (await ledger.balances([member_id]))[member_id]


async def test_earn_waiting_for_a_give_back_to_an_expired_lot_expires_it_first(api, backend):
    """Points given back to a lot past its expiry (a refunded order that had spent them) are due: a
    receipt that waited for that give-back must expire them before it earns ("expire first"), and
    report only what is spendable."""
    start = clock.now()
    clock.freeze(start)
    member_id, _ = await make_member(at=start)
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    paid = await api.signed(PAY, {"input": {"memberCode": code_for(member_id), "merchantCode": "M001",
                                            "receiptNo": unique("P"), "points": 100, "idempotencyKey": unique("K")}})
    assert paid["data"]["pointsPay"]["pointsBalance"] == 0
    spend_id = int(await db.fetchval(
        "SELECT e.id FROM points_entry e JOIN points_account a ON a.id = e.account_id"
        " WHERE a.member_id = $1 AND e.kind = 'SPEND'", member_id))
    clock.freeze(ledger.expiry_for(start) + timedelta(days=1))

    async def give_back(tx, accts):
        await ledger.give_back(tx, accts[0], spend_id, reason="订单退款", source_type="test_refund",
                               source_ref=unique("G"), occurred_at=clock.now())

    data = await _race([member_id], give_back, api.signed(PURCHASE, {"input": purchase_input(member_id, 5_000)}))
    result = data["data"]["purchaseRecord"]
    assert result["userErrors"] == [] and result["pointsEarned"] == 50
    assert result["pointsBalance"] == 50
    assert [(e["kind"], e["points"], e["balance_after"]) for e in await _entries(member_id)] == [
        ("EARN", 100, 100), ("SPEND", -100, 0), ("ADJUST", 100, 100), ("EXPIRE", -100, 0), ("EARN", 50, 50),
    ]
    assert await _balance(member_id) == 50


async def test_expiry_run_writes_only_the_accounts_it_locked(api, backend, monkeypatch):
    """The expiry run picks the accounts of a chunk by a subquery of its locking statement, with the
    snapshot from before its lock wait. An account whose lot came due during that wait was not
    locked: the run must leave it (to the next run, or the account's own next move) rather than
    write it without its lock."""
    monkeypatch.setattr(ledger.expiry, "EXPIRY_CHUNK", 10**9)  # one chunk, whatever other tests left
    start = clock.now()
    clock.freeze(start)
    low, _ = await make_member(at=start)
    spent, _ = await make_member(at=start)
    high, _ = await make_member(at=start)
    for member_id in (low, spent, high):
        await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    await api.signed(PAY, {"input": {"memberCode": code_for(spent), "merchantCode": "M001",
                                     "receiptNo": unique("P"), "points": 100, "idempotencyKey": unique("K")}})
    spend_id = int(await db.fetchval(
        "SELECT e.id FROM points_entry e JOIN points_account a ON a.id = e.account_id"
        " WHERE a.member_id = $1 AND e.kind = 'SPEND'", spent))
    clock.freeze(ledger.expiry_for(start) + timedelta(days=1))

    async def give_back(tx, accts):  # accts: spent, high (member order)
        await ledger.give_back(tx, accts[0], spend_id, reason="订单退款", source_type="test_refund",
                               source_ref=unique("G"), occurred_at=clock.now())

    await _race([spent, high], give_back, ledger.expire_due(clock.now()))
    kinds = {m: [(e["kind"], e["source_type"]) for e in await _entries(m)] for m in (low, spent, high)}
    assert kinds[low][-1] == ("EXPIRE", "expiry_run") and await _balance(low) == 0
    assert kinds[high][-1] == ("EXPIRE", "expiry_run") and await _balance(high) == 0
    # Not locked by the run: untouched, its due points still there for the next run.
    assert kinds[spent][-1] == ("ADJUST", "test_refund") and await _balance(spent) == 100
    again = await ledger.expire_due(clock.now())
    assert again.points_expired >= 100 and await _balance(spent) == 0


async def test_a_hold_released_without_the_account_lock_does_not_wait_for_it(api, backend):
    """An order that lapses releases its hold under the order's lock, not the account's: the release
    must not write (and so wait for) the account row, which a move may hold while it waits for that
    very order (a deadlock otherwise)."""
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    async with db.transaction() as tx:
        acct = await ledger.lock_account(tx, member_id)
        hold_id = await ledger.hold(tx, acct, points=40, source_type="test_hold", source_ref=unique("H"),
                                    expires_at=clock.now() + timedelta(hours=1))

    async def nothing(tx, accts):
        return None

    async def release_alone() -> bool:
        async with db.transaction() as tx:
            return await ledger.release(tx, hold_id)

    holder = Holder([member_id], nothing)
    await holder.pid
    try:
        assert await asyncio.wait_for(release_alone(), timeout=5)
    finally:
        await holder.release()
    assert (await ledger.balances([member_id]))[member_id] == 100
