"""Earning races on real PostgreSQL: caps, check-ins and task claims hold with parallel callers."""
from __future__ import annotations

import asyncio

import pytest

from api.db import fetch
from tests.conftest import make_member, snapshot, unique
from tests.test_earning import CHECK_IN, SHARE, TASK_CLAIM, admin_token, create_rule

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def test_50_parallel_shares_with_a_daily_cap_of_3_give_exactly_3_rewards(api):
    token = await admin_token()
    await create_rule(api, token, trigger="SHARE", actionValue=10, capDailyTimes=3)
    member_id, member_token = await make_member()
    results = await asyncio.gather(*(api.post(SHARE, {"k": unique("K")}, token=member_token) for _ in range(50)))
    earned = [r["data"]["shareRecord"]["pointsEarned"] for r in results]
    assert sorted(earned, reverse=True)[:4] == [10, 10, 10, 0] and sum(earned) == 30
    assert (await snapshot(member_id))["balance"] == 30
    shares = await fetch("SELECT COUNT(*) AS n FROM member_behaviour WHERE member_id = $1 AND kind = 'SHARE'", member_id)
    assert shares[0]["n"] == 50  # every share is recorded; three were rewarded


async def test_parallel_points_cap_across_rules_holds(api):
    token = await admin_token()
    await create_rule(api, token, trigger="SHARE", actionValue=7, capDailyPoints=20, budgetPoints=1000)
    member_id, member_token = await make_member()
    results = await asyncio.gather(*(api.post(SHARE, {"k": unique("K")}, token=member_token) for _ in range(20)))
    assert sum(r["data"]["shareRecord"]["pointsEarned"] for r in results) == 20  # 7 + 7 + 6
    assert (await snapshot(member_id))["balance"] == 20


async def test_parallel_check_ins_on_one_day_give_one(api):
    token = await admin_token()
    await create_rule(api, token, trigger="CHECK_IN", actionValue=5)
    member_id, member_token = await make_member()
    results = await asyncio.gather(*(api.post(CHECK_IN, {"k": unique("K")}, token=member_token) for _ in range(20)))
    payloads = [r["data"]["memberCheckIn"] for r in results]
    assert sum(1 for p in payloads if not p["userErrors"]) == 1
    assert sorted(p["userErrors"][0]["code"] for p in payloads if p["userErrors"]) == ["ALREADY_CHECKED_IN"] * 19
    state = await snapshot(member_id)
    assert state["balance"] == 5 and state["entries"] == 1


async def test_parallel_task_claims_pay_once_per_period(api):
    token = await admin_token()
    create = """mutation($i: TaskCreateInput!) { taskCreate(input: $i) { task { id } userErrors { code } } }"""
    task = (await api.post(create, {"i": {"code": unique("T"), "name": "分享一次", "period": "DAILY",
                                          "metric": "SHARE", "target": 1, "rewardPoints": 40}},
                           token=token, admin=True))["data"]["taskCreate"]["task"]
    member_id, member_token = await make_member()
    await api.post(SHARE, {"k": unique("K")}, token=member_token)
    results = await asyncio.gather(*(
        api.post(TASK_CLAIM, {"t": task["id"], "k": unique("K")}, token=member_token) for _ in range(20)))
    payloads = [r["data"]["taskClaim"] for r in results]
    assert sum(1 for p in payloads if p["pointsEarned"] == 40) == 1
    assert {p["userErrors"][0]["code"] for p in payloads if p["userErrors"]} == {"TASK_ALREADY_CLAIMED"}
    assert (await snapshot(member_id))["balance"] == 40


async def test_parallel_purchases_with_a_capped_purchase_rule_respect_the_cap(api):
    from tests.conftest import PURCHASE, bind_demo_key, code_for, make_merchant, purchase_input

    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=30, capDailyPoints=100,
                      conditions={"merchantCodes": [merchant]})
    member_id, _ = await make_member()
    code = code_for(member_id)
    results = await asyncio.gather(*(
        api.signed(PURCHASE, {"input": purchase_input(member_id, 1000, merchant=merchant, code=code)})
        for _ in range(10)))
    earned = sum(r["data"]["purchaseRecord"]["pointsEarned"] for r in results)
    assert earned == 10 * 10 + 100  # the default rule's 10 each, and the capped bonus: 30+30+30+10
    assert (await snapshot(member_id))["balance"] == earned


async def test_two_scheduled_runs_at_once_release_each_pending_row_once(api):
    from datetime import timedelta

    from api.services import clock, scheduler
    from tests.conftest import PURCHASE, bind_demo_key, make_merchant, purchase_input

    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=25, returnDays=3,
                      conditions={"merchantCodes": [merchant]})
    members = [(await make_member())[0] for _ in range(6)]
    for member_id in members:
        await api.signed(PURCHASE, {"input": purchase_input(member_id, 1000, merchant=merchant)})
    clock.freeze(clock.now() + timedelta(days=4))
    first, second = await asyncio.gather(scheduler.run_once(("cli", None)), scheduler.run_once(("cli", None)))
    assert first.pending_points_released + second.pending_points_released >= 150
    for member_id in members:
        assert (await snapshot(member_id))["balance"] == 10 + 25
    rows = await fetch("SELECT status FROM points_pending WHERE member_id = ANY($1::bigint[])", members)
    assert [r["status"] for r in rows] == ["RELEASED"] * 6


async def test_an_invitees_parallel_first_purchases_reward_the_invite_once(api):
    from api import db
    from api.services.earning import invites
    from tests.conftest import PURCHASE, code_for, purchase_input

    token = await admin_token()
    await create_rule(api, token, trigger="INVITE_ACCEPTED", actionValue=100, conditions={"inviteRole": "INVITER"})
    inviter, _ = await make_member()
    invitee, _ = await make_member()
    await invites.code_of(inviter)
    async with db.transaction() as tx:
        await invites.attach(tx, invitee, inviter)
    code = code_for(invitee)
    await asyncio.gather(*(api.signed(PURCHASE, {"input": purchase_input(invitee, 1000, code=code,
                                                                         merchant=m)})
                           for m in ("M001", "M002", "M003") * 3))
    await invites.reward_due()
    assert (await snapshot(inviter))["balance"] == 100


async def test_a_purchase_budget_shared_by_many_members_is_never_overspent(api):
    from tests.conftest import PURCHASE, bind_demo_key, code_for, make_merchant, purchase_input

    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=30, budgetPoints=500,
                      conditions={"merchantCodes": [merchant]})
    members = [(await make_member())[0] for _ in range(8)]
    codes = {m: code_for(m) for m in members}
    results = await asyncio.gather(*(
        api.signed(PURCHASE, {"input": purchase_input(m, 1000, merchant=merchant, code=codes[m])})
        for m in members for _ in range(4)))
    payloads = [r["data"]["purchaseRecord"] for r in results]
    assert all(p["userErrors"] == [] for p in payloads)
    assert sum(p["pointsEarned"] for p in payloads) == 32 * 10 + 500  # the budget, to the point
    used = await fetch("SELECT c.points FROM earn_counter c JOIN earn_rule r ON r.id = c.rule_id"
                       " WHERE c.member_id = 0 AND c.period = 'TOTAL' AND r.conditions LIKE $1", f"%{merchant}%")
    assert used[0]["points"] == 500
