"""Relay pages: PageInfo has hasNextPage, hasPreviousPage, startCursor and endCursor (issue 10)."""
from __future__ import annotations

from api import db
from api.services import clock, ledger
from tests.conftest import make_member

LEDGER = """query($first: Int!, $after: String) { viewer { member { pointsLedger(first: $first, after: $after) {
  edges { cursor node { points } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } } }"""


async def test_page_info_of_a_forward_page(api):
    member_id, token = await make_member()
    async with db.transaction() as tx:
        acct = await ledger.lock_account(tx, member_id)
        for points in (10, 20, 30):
            await ledger.credit(tx, acct, points=points, kind="ADJUST", reason="测试", source_type="test",
                                source_ref=None, occurred_at=clock.now())

    async def page(first: int, after: str | None) -> dict:
        result = await api.post(LEDGER, {"first": first, "after": after}, token=token)
        return result["data"]["viewer"]["member"]["pointsLedger"]

    first = await page(2, None)
    cursors = [e["cursor"] for e in first["edges"]]
    assert [e["node"]["points"] for e in first["edges"]] == [30, 20]  # newest first
    assert first["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False, "startCursor": cursors[0],
                                 "endCursor": cursors[1]}
    second = await page(2, first["pageInfo"]["endCursor"])
    assert [e["node"]["points"] for e in second["edges"]] == [10]
    assert second["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True,
                                  "startCursor": second["edges"][0]["cursor"], "endCursor": second["edges"][0]["cursor"]}
    past_the_end = await page(2, second["pageInfo"]["endCursor"])
    assert past_the_end["edges"] == [] and past_the_end["pageInfo"] == {
        "hasNextPage": False, "hasPreviousPage": True, "startCursor": None, "endCursor": None}
