"""The race helper (tests/waiting.py) sees a backend that waits for a lock, and fails clearly when none does."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from api import db
from tests.conftest import make_merchant
from tests.waiting import postgres_dsn, wait_for_lock_waiters

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def test_a_contender_blocked_on_a_held_row_is_seen_and_none_is_a_clear_failure(backend):
    code = await make_merchant()
    holder = await asyncpg.connect(postgres_dsn())
    try:
        with pytest.raises(pytest.fail.Exception, match="0 backend\\(s\\) wait on a lock held by backend"):
            await wait_for_lock_waiters(1, blocked_by=holder, timeout=0.3)
        tr = holder.transaction()
        await tr.start()
        await holder.execute("UPDATE merchant SET name = name WHERE code = $1", code)

        async def contender() -> int:
            async with db.transaction() as tx:
                return await tx.execute("UPDATE merchant SET floor = 'B2' WHERE code = $1", code)

        task = asyncio.create_task(contender())
        waiting = await wait_for_lock_waiters(1, blocked_by=holder)
        assert not task.done() and waiting[0]["blocked_by"] == [holder.get_server_pid()]
        await tr.commit()
        assert await task == 1
    finally:
        await holder.close()
