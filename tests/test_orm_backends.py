"""The ORM works on both backends in one process (the suite runs SQLite, then PostgreSQL)."""
from __future__ import annotations

from api import db
from api.models.merchants import Merchant
from tests.conftest import unique


async def test_orm_create_and_update_inside_a_transaction(backend):
    code = unique("O")
    async with db.transaction():
        made = await Merchant.create(code=code, name=f"ORM {code}", category="测试")
        assert await Merchant.filter(id=made.id, name=f"ORM {code}").update(floor="B1") == 1
    row = await Merchant.get(code=code)
    assert (row.id, row.floor, row.category) == (made.id, "B1", "测试")


async def test_a_transaction_cancelled_while_it_opens_gives_its_connection_back(backend):
    """Tortoise takes the connection (SQLite: its one connection's lock; PostgreSQL: a pool connection)
    and then sends BEGIN; a cancel landing there left it taken for good: the next statement on SQLite
    waited for ever, and PostgreSQL's pool (30 here) ran dry after 30 such cancels. Cancels are landed at
    each step of the entry in turn, 120 times; every statement after them still runs at once."""
    import asyncio

    async def work() -> None:
        async with db.transaction() as tx:
            await tx.fetch("SELECT 1")

    for attempt in range(120):
        task = asyncio.create_task(work())
        for _ in range(attempt % 8):  # the cancel lands after 0..7 steps of the event loop
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with asyncio.timeout(5):
            assert await db.fetchval("SELECT 1") == 1, attempt
    async with asyncio.timeout(5), db.transaction() as tx:  # and a transaction opens as before
        assert await tx.fetchval("SELECT 2") == 2
