"""Issue 10: a SERVICE operator's large adjustment waits for a second operator (maker-checker)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from api.db import fetch
from api.schema.ids import from_global_id, to_global_id
from api.services import clock, signing
from tests.conftest import make_member, snapshot, unique
from tests.test_operator_accounts import make

ADJUST = """mutation($i: PointsAdjustInput!) { pointsAdjust(input: $i) {
  entry { points } member { pointsBalance } approval { id status points } userErrors { code field } } }"""
APPROVE = """mutation($i: PointsAdjustApproveInput!) { pointsAdjustApprove(input: $i) {
  approval { id status note requestedBy { username } decidedBy { username } entry { points } }
  entry { points balanceAfter } userErrors { code field } } }"""
QUEUE = """query($s: ApprovalStatus) { pointsAdjustApprovals(first: 100, status: $s) {
  edges { node { id status points member { id } } } } }"""


@pytest.fixture(autouse=True)
def _midday():
    """Business-day totals: a fixed hour in the middle of today's business day (Asia/Shanghai)."""
    clock.freeze(clock.day_start(clock.now()) + timedelta(hours=6))


def adjust(member_id: int, points: int, key: str | None = None) -> dict:
    return {"i": {"memberId": to_global_id("Member", member_id), "points": points, "reason": "客诉补偿",
                  "idempotencyKey": key or unique("K")}}


async def counts() -> tuple:
    rows = await fetch("SELECT (SELECT COUNT(*) FROM audit_log) AS a, (SELECT COUNT(*) FROM points_entry) AS e,"
                       " (SELECT COUNT(*) FROM points_adjust_approval WHERE status = 'PENDING') AS p")
    return tuple(int(v) for v in dict(rows[0]).values())


async def test_large_adjustment_waits_and_is_booked_once_by_another_operator(api):
    member_id, _ = await make_member()
    _, svc_name, svc = await make("SERVICE")
    _, fin_name, fin = await make("FINANCE")
    small = (await api.post(ADJUST, adjust(member_id, 1000), token=svc, admin=True))["data"]["pointsAdjust"]
    assert small["entry"] == {"points": 1000} and small["approval"] is None
    key = unique("K")
    held = (await api.post(ADJUST, adjust(member_id, 1001, key), token=svc, admin=True))["data"]["pointsAdjust"]
    assert held["entry"] is None and held["approval"]["status"] == "PENDING" and held["approval"]["points"] == 1001
    assert held["member"]["pointsBalance"] == 1000
    again = (await api.post(ADJUST, adjust(member_id, 1001, key), token=svc, admin=True))["data"]["pointsAdjust"]
    assert again == held  # a repeat returns the same request
    queue = (await api.post(QUEUE, {"s": "PENDING"}, token=fin, admin=True))["data"]["pointsAdjustApprovals"]
    assert held["approval"]["id"] in [e["node"]["id"] for e in queue["edges"]]
    approval_id = held["approval"]["id"]

    before, state = await counts(), await snapshot(member_id)
    own = await api.post(APPROVE, {"i": {"approvalId": approval_id, "approve": True}}, token=svc, admin=True)
    assert own["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # SERVICE may not approve at all
    _, _, svc_fin = await make("SERVICE", "FINANCE")
    mine = (await api.post(ADJUST, adjust(member_id, 5000), token=svc_fin, admin=True))["data"]["pointsAdjust"]
    before, state = await counts(), await snapshot(member_id)
    refused = (await api.post(APPROVE, {"i": {"approvalId": mine["approval"]["id"], "approve": True}}, token=svc_fin,
                              admin=True))["data"]["pointsAdjustApprove"]
    assert refused["userErrors"][0]["code"] == "APPROVAL_OWN_REQUEST" and refused["entry"] is None
    assert (await counts(), await snapshot(member_id)) == (before, state)

    done = (await api.post(APPROVE, {"i": {"approvalId": approval_id, "approve": True, "note": "核实无误"}}, token=fin,
                           admin=True))["data"]["pointsAdjustApprove"]
    assert done["userErrors"] == [] and done["entry"] == {"points": 1001, "balanceAfter": 2001}
    assert done["approval"]["status"] == "APPROVED" and done["approval"]["note"] == "核实无误"
    assert done["approval"]["requestedBy"]["username"] == svc_name
    assert done["approval"]["decidedBy"]["username"] == fin_name
    assert done["approval"]["entry"] == {"points": 1001}
    tokens = (fin, (await make("ADMIN"))[2])
    before, state = await counts(), await snapshot(member_id)
    for token in tokens:
        twice = (await api.post(APPROVE, {"i": {"approvalId": approval_id, "approve": True}}, token=token,
                                admin=True))["data"]["pointsAdjustApprove"]
        assert twice["userErrors"][0]["code"] == "APPROVAL_ALREADY_DECIDED"
        rejected = (await api.post(APPROVE, {"i": {"approvalId": approval_id, "approve": False}}, token=token,
                                   admin=True))["data"]["pointsAdjustApprove"]
        assert rejected["userErrors"][0]["code"] == "APPROVAL_ALREADY_DECIDED"
    assert (await counts(), await snapshot(member_id)) == (before, state)
    actions = [r["action"] for r in await fetch(
        "SELECT action FROM audit_log WHERE target_type = 'points_adjust_approval' AND target_id = $1 ORDER BY id",
        str(from_global_id(approval_id, "PointsAdjustApproval")[1]))]
    assert actions == ["points.adjust_request", "points.adjust_approved"]


async def test_rejection_books_nothing_and_admin_is_not_held(api):
    member_id, _ = await make_member()
    _, _, svc = await make("SERVICE")
    _, _, admin = await make("ADMIN")
    held = (await api.post(ADJUST, adjust(member_id, 2000), token=svc, admin=True))["data"]["pointsAdjust"]
    state = await snapshot(member_id)
    no = (await api.post(APPROVE, {"i": {"approvalId": held["approval"]["id"], "approve": False, "note": "不符"}},
                         token=admin, admin=True))["data"]["pointsAdjustApprove"]
    assert no["approval"]["status"] == "REJECTED" and no["entry"] is None
    assert await snapshot(member_id) == state
    direct = (await api.post(ADJUST, adjust(member_id, 50_000), token=admin, admin=True))["data"]["pointsAdjust"]
    assert direct["entry"] == {"points": 50_000} and direct["approval"] is None


async def test_daily_total_per_operator(api):
    member_id, _ = await make_member()
    svc_id, _, svc = await make("SERVICE")
    _, _, other = await make("SERVICE")
    for points in (1000, 1000, -500, 1000, 1000):  # 4,500 either way
        result = (await api.post(ADJUST, adjust(member_id, points), token=svc, admin=True))["data"]["pointsAdjust"]
        assert result["entry"] == {"points": points}
    fits = (await api.post(ADJUST, adjust(member_id, 500), token=svc, admin=True))["data"]["pointsAdjust"]
    assert fits["entry"] == {"points": 500}  # exactly 5,000
    over = (await api.post(ADJUST, adjust(member_id, 1), token=svc, admin=True))["data"]["pointsAdjust"]
    assert over["entry"] is None and over["approval"]["status"] == "PENDING"
    theirs = (await api.post(ADJUST, adjust(member_id, 1), token=other, admin=True))["data"]["pointsAdjust"]
    assert theirs["entry"] == {"points": 1}  # the limit is per operator
    clock.freeze(clock.now() + timedelta(days=1))
    svc = signing.issue_token("operator", svc_id, 600)  # the day-old token has expired
    tomorrow = (await api.post(ADJUST, adjust(member_id, 1), token=svc, admin=True))["data"]["pointsAdjust"]
    assert tomorrow["entry"] == {"points": 1}


async def test_approving_a_take_the_member_cannot_cover_changes_nothing(api):
    member_id, _ = await make_member()
    _, _, svc = await make("SERVICE")
    _, _, fin = await make("FINANCE")
    _, _, admin = await make("ADMIN")
    await api.post(ADJUST, adjust(member_id, 3000), token=admin, admin=True)
    held = (await api.post(ADJUST, adjust(member_id, -2500), token=svc, admin=True))["data"]["pointsAdjust"]
    await api.post(ADJUST, adjust(member_id, -1000), token=admin, admin=True)
    before, state = await counts(), await snapshot(member_id)
    answer = (await api.post(APPROVE, {"i": {"approvalId": held["approval"]["id"], "approve": True}}, token=fin,
                             admin=True))["data"]["pointsAdjustApprove"]
    assert answer["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    assert (await counts(), await snapshot(member_id)) == (before, state)
    for bad, code in (("nope", "NOT_FOUND"), (to_global_id("PointsAdjustApproval", 10**9), "NOT_FOUND")):
        answer = (await api.post(APPROVE, {"i": {"approvalId": bad, "approve": True}}, token=fin,
                                 admin=True))["data"]["pointsAdjustApprove"]
        assert answer["userErrors"][0]["code"] == code
    assert (await counts(), await snapshot(member_id)) == (before, state)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_racing_approvers_book_once(api, backend):
    """Eight FINANCE operators approve the same request at once (and an ADMIN rejects it): one decision
    wins, one entry at most, the others are APPROVAL_ALREADY_DECIDED."""
    member_id, _ = await make_member()
    _, _, svc = await make("SERVICE")
    held = (await api.post(ADJUST, adjust(member_id, 4000), token=svc, admin=True))["data"]["pointsAdjust"]
    approvers = [(await make("FINANCE"))[2] for _ in range(8)] + [(await make("ADMIN"))[2]]
    entries = (await snapshot(member_id))["entries"]

    async def decide(i: int, token: str):
        return (await api.post(APPROVE, {"i": {"approvalId": held["approval"]["id"], "approve": i < 8}}, token=token,
                               admin=True))["data"]["pointsAdjustApprove"]

    results = await asyncio.gather(*(decide(i, t) for i, t in enumerate(approvers)))
    wins = [r for r in results if not r["userErrors"]]
    assert len(wins) == 1
    assert sorted({r["userErrors"][0]["code"] for r in results if r["userErrors"]}) == ["APPROVAL_ALREADY_DECIDED"]
    status = wins[0]["approval"]["status"]
    state = await snapshot(member_id)
    assert state["entries"] == entries + (1 if status == "APPROVED" else 0)
    assert state["balance"] == (4000 if status == "APPROVED" else 0)
    rows = await fetch("SELECT status, entry_id FROM points_adjust_approval WHERE member_id = $1", member_id)
    assert len(rows) == 1 and (rows[0]["entry_id"] is not None) == (status == "APPROVED")


def test_the_limits_come_from_the_environment():
    from api.config import ConfigError, Settings

    assert (Settings.from_env({}).adjust_approval_threshold, Settings.from_env({}).adjust_daily_limit) == (1000, 5000)
    cfg = Settings.from_env({"MALLPOINTS_ADJUST_APPROVAL_THRESHOLD": "200", "MALLPOINTS_ADJUST_DAILY_LIMIT": "900"})
    assert (cfg.adjust_approval_threshold, cfg.adjust_daily_limit) == (200, 900)
    with pytest.raises(ConfigError, match="MALLPOINTS_ADJUST_DAILY_LIMIT"):
        Settings.from_env({"MALLPOINTS_ADJUST_DAILY_LIMIT": "lots"})


async def test_a_configured_threshold_is_used(api):
    import dataclasses

    from api.config import set_settings, settings

    member_id, _ = await make_member()
    _, _, svc = await make("SERVICE")
    old = settings()
    set_settings(dataclasses.replace(old, adjust_approval_threshold=100))
    try:
        held = (await api.post(ADJUST, adjust(member_id, 101), token=svc, admin=True))["data"]["pointsAdjust"]
        booked = (await api.post(ADJUST, adjust(member_id, 100), token=svc, admin=True))["data"]["pointsAdjust"]
    finally:
        set_settings(old)
    assert held["approval"]["status"] == "PENDING" and booked["entry"] == {"points": 100}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_one_operators_parallel_adjustments_stay_under_the_daily_limit(api, backend):
    """Ten adjustments of 1,000 by one SERVICE operator at once: five are booked (5,000, the limit), five
    wait for approval; the operator's row lock keeps two of them from both fitting."""
    member_id, _ = await make_member()
    _, _, svc = await make("SERVICE")
    results = await asyncio.gather(*(api.post(ADJUST, adjust(member_id, 1000), token=svc, admin=True)
                                     for _ in range(10)))
    payloads = [r["data"]["pointsAdjust"] for r in results]
    assert sum(1 for p in payloads if p["entry"]) == 5
    assert sum(1 for p in payloads if p["approval"] and p["approval"]["status"] == "PENDING") == 5
    assert (await snapshot(member_id))["balance"] == 5000
