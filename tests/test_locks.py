"""The locking helper (api/locks.py): inside a transaction only, in the global order."""
from __future__ import annotations

import asyncio
import contextvars

import pytest

from api import db, locks
from api.db import sqlstate
from api.models import Member
from tests.conftest import make_member


async def test_locks_refused_outside_a_transaction(backend):
    with pytest.raises(RuntimeError, match="inside api.db.transaction"):
        await locks.rows(locks.Rank.MEMBER, Member, [1])


async def test_locks_in_the_global_order_and_refused_out_of_it(backend):
    async with db.transaction():
        await locks.advisory(locks.Rank.PLATE, 4711, "沪A12345")
        await locks.rows(locks.Rank.MEMBER, Member, [3, 1, 2])
        await locks.row(locks.Rank.MEMBER, Member, 2)  # held already: asking again is fine
        assert locks.held()[:4] == [(locks.Rank.PLATE, 0), (locks.Rank.MEMBER, 1), (locks.Rank.MEMBER, 2),
                                    (locks.Rank.MEMBER, 3)]
        with pytest.raises(locks.LockOrderError, match="MEMBER #0 asked for after MEMBER #3|MEMBER"):
            await locks.row(locks.Rank.MEMBER, Member, 0)
    async with db.transaction():  # a new transaction starts with no locks
        assert locks.held() == []
        await locks.row(locks.Rank.PRODUCT, Member, 1)
        with pytest.raises(locks.LockOrderError):
            await locks.advisory(locks.Rank.PLATE, 4711, "沪A12345")


def test_deadlock_and_timeout_recognised_by_sqlstate_not_text():
    class PgError(Exception):
        def __init__(self, code: str) -> None:
            super().__init__("死锁 detected in another language")
            self.sqlstate = code

    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = PgError("40P01")
    assert db.is_deadlock(wrapped)
    assert not db.is_deadlock(RuntimeError("deadlock detected"))  # the English text alone is not enough
    assert locks.is_lock_timeout(PgError("55P03")) and not locks.is_lock_timeout(PgError("40P01"))


async def test_each_step_of_a_shared_transaction_is_ordered_from_its_own_start(backend):
    """A batch's receipts share a transaction: each one's locks are in order from the receipt's start;
    what earlier receipts hold stays held (and listed) but does not refuse the next one."""
    async with db.transaction():
        with locks.step():
            locks.enter(locks.Rank.MEMBER, [1])
            locks.enter(locks.Rank.SHARED, [7])
        with locks.step():
            locks.enter(locks.Rank.MEMBER, [2])  # below SHARED #7 of the step before: allowed
            with pytest.raises(locks.LockOrderError):
                locks.enter(locks.Rank.MEMBER, [0])  # out of order within the step: still refused
        assert locks.held() == [(locks.Rank.MEMBER, 1), (locks.Rank.SHARED, 7), (locks.Rank.MEMBER, 2)]
        with pytest.raises(locks.LockOrderError):
            locks.enter(locks.Rank.MEMBER, [3])  # outside a step, every lock held so far counts


async def test_a_named_statement_takes_its_locks_in_the_order_and_really_locks(backend):
    """`locks.statement` runs SQL that finds its rows itself: checked and recorded in the order, and on
    PostgreSQL the rows are locked (another transaction asking with NOWAIT is refused)."""
    member_id, _ = await make_member()
    async with db.transaction():
        rows = await locks.statement(locks.Rank.MEMBER, "SELECT id FROM member WHERE id = $1", member_id,
                                     ids=[member_id])
        assert [r["id"] for r in rows] == [member_id]
        assert locks.held() == [(locks.Rank.MEMBER, member_id)]
        with pytest.raises(locks.LockOrderError):
            await locks.statement(locks.Rank.PLATE, "SELECT 1")
        if backend == "postgres":
            async def other() -> None:
                async with db.transaction() as tx:
                    await tx.fetch("SELECT id FROM member WHERE id = $1 FOR UPDATE NOWAIT", member_id)

            with pytest.raises(Exception) as refused:
                # A context of its own: a task started inside a transaction would share its connection.
                await asyncio.create_task(other(), context=contextvars.Context())
            assert sqlstate(refused.value) == db.LOCK_NOT_AVAILABLE
