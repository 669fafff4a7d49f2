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
