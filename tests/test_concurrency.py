"""Races on real PostgreSQL: N parallel callers, exactly who wins, and the final state."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import PAY, PURCHASE, code_for, make_member, purchase_input, snapshot, unique

# Only on PostgreSQL: SQLite serialises every transaction of the process, so there is no race to test.
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture
def pg(backend):
    return backend


async def test_100_parallel_pays_never_overdraw(api, pg):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 500_000)})  # 5,000 points
    start = (await snapshot(member_id))["balance"]
    amount = 70  # 100 × 70 = 7,000 > 5,000: some must lose
    code = code_for(member_id)

    async def pay(i: int):
        return await api.signed(PAY, {"input": {"memberCode": code, "merchantCode": "M001", "receiptNo": unique("P"),
                                                "points": amount, "idempotencyKey": unique("K")}})

    results = [r["data"]["pointsPay"] for r in await asyncio.gather(*(pay(i) for i in range(100)))]
    wins = [r for r in results if not r["userErrors"]]
    losses = [r for r in results if r["userErrors"]]
    assert {e["userErrors"][0]["code"] for e in losses} <= {"INSUFFICIENT_POINTS"}
    assert len(wins) == start // amount
    final = await snapshot(member_id)
    assert final["balance"] == start - amount * len(wins) >= 0
    assert final["payments"] == len(wins)


async def test_same_receipt_sent_10_times_earns_once(api, pg):
    member_id, _ = await make_member()
    base = purchase_input(member_id, 12_300)
    results = await asyncio.gather(*(
        api.signed(PURCHASE, {"input": {**base, "idempotencyKey": unique("K")}}) for _ in range(10)
    ))
    payloads = [r["data"]["purchaseRecord"] for r in results]
    assert sum(1 for p in payloads if p["pointsEarned"] == 123) == 1
    assert sorted(p["userErrors"][0]["code"] for p in payloads if p["userErrors"]) == ["DUPLICATE_RECEIPT"] * 9
    state = await snapshot(member_id)
    assert state["balance"] == 123 and state["entries"] == 1 and state["purchases"] == 1


async def test_same_idempotency_key_20_times_gives_one_entry(api, pg):
    member_id, _ = await make_member()
    payload = purchase_input(member_id, 4_560)
    results = await asyncio.gather(*(api.signed(PURCHASE, {"input": payload}) for _ in range(20)))
    payloads = [r["data"]["purchaseRecord"] for r in results]
    assert all(p == payloads[0] for p in payloads) and payloads[0]["pointsEarned"] == 45
    state = await snapshot(member_id)
    assert state["entries"] == 1 and state["balance"] == 45


async def test_parallel_earns_and_spends_on_one_member_keep_balance_exact(api, pg):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 80_000)})  # 800 points, 800 growth: 普通
    code = code_for(member_id)
    earns = [api.signed(PURCHASE, {"input": purchase_input(member_id, 500, code=code)}) for _ in range(30)]
    pays = [api.signed(PAY, {"input": {"memberCode": code, "merchantCode": "M002", "receiptNo": unique("P"),
                                       "points": 20, "idempotencyKey": unique("K")}}) for _ in range(30)]
    results = await asyncio.gather(*earns, *pays)
    earned = sum(r["data"]["purchaseRecord"]["pointsEarned"] or 0 for r in results[:30])
    spent = sum(r["data"]["pointsPay"]["pointsSpent"] or 0 for r in results[30:])
    assert earned == 150 and spent == 600
    assert (await snapshot(member_id))["balance"] == 800 + earned - spent


async def test_two_expiry_runs_at_once_expire_each_lot_once(api, pg):
    from datetime import timedelta

    from api.services import clock, ledger

    start = clock.now()
    members = [(await make_member())[0] for _ in range(5)]
    for member_id in members:
        await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    clock.freeze(start + timedelta(days=400))
    first, second = await asyncio.gather(ledger.expire_due(clock.now()), ledger.expire_due(clock.now()))
    assert first.points_expired + second.points_expired >= 500
    for member_id in members:
        assert (await snapshot(member_id))["balance"] == 0


async def test_parallel_batches_over_the_same_members_all_book(api, pg):
    from tests.test_purchase import BATCH

    members = [(await make_member())[0] for _ in range(10)]
    codes = {m: code_for(m) for m in members}
    batches = [
        [purchase_input(m, 1_000 + b, code=codes[m]) for m in reversed(members) for _ in range(5)]
        for b in range(4)
    ]
    results = await asyncio.gather(*(api.signed(BATCH, {"input": {"purchases": batch}}) for batch in batches))
    for result in results:
        payload = result["data"]["purchaseRecordBatch"]
        assert payload["userErrors"] == [] and all(not r["userErrors"] for r in payload["results"])
    for m in members:
        state = await snapshot(m)
        assert state["purchases"] == 20 and state["balance"] == 5 * (10 + 10 + 10 + 10)


async def test_parallel_purchases_across_an_upgrade_all_book_and_upgrade_once(api, pg):
    from api.db import fetch

    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 90_000)})  # 900 growth: 普通
    code = code_for(member_id)
    results = await asyncio.gather(*(
        api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, code=code)}) for _ in range(20)
    ))
    earned = [r["data"]["purchaseRecord"]["pointsEarned"] for r in results]
    assert all(r["data"]["purchaseRecord"]["userErrors"] == [] for r in results)
    # The purchase that crosses 1,000 still earns ×1; every later one ×1.2.
    assert sorted(earned) == [100] + [120] * 19
    changes = await fetch("SELECT direction FROM tier_change WHERE member_id = $1 AND direction = 'UPGRADE'", member_id)
    assert len(changes) == 1
    assert (await snapshot(member_id))["balance"] == 900 + sum(earned)
