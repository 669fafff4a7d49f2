"""The operators' endpoint: login, search, adjustments, expiry runs, tier evaluation, keys."""
from __future__ import annotations

from datetime import timedelta

import pytest

from api.db import fetch, transaction
from api.schema.ids import to_global_id
from api.services import clock, passwords, signing
from tests.conftest import PURCHASE, make_member, purchase_input, snapshot, unique

LOGIN = 'mutation($u: String!, $p: String!) { operatorLogin(input: {username: $u, password: $p}) { token userErrors { code } } }'
ADJUST = """mutation($i: PointsAdjustInput!) { pointsAdjust(input: $i) {
  entry { kind points balanceAfter reason } member { id pointsBalance } userErrors { code field } } }"""
EXPIRE = "mutation($i: PointsExpireRunInput!) { pointsExpireRun(input: $i) { lotsExpired pointsExpired userErrors { code } } }"


async def operator_token(api) -> str:
    result = await api.post(LOGIN, {"u": "admin", "p": "admin-demo-password"}, admin=True)
    return result["data"]["operatorLogin"]["token"]


async def test_login_refuses_wrong_password(api):
    bad = await api.post(LOGIN, {"u": "admin", "p": "nope"}, admin=True)
    assert bad["data"]["operatorLogin"] == {"token": None, "userErrors": [{"code": "INVALID_CREDENTIALS"}]}
    nobody = await api.post(LOGIN, {"u": "nobody", "p": "nope"}, admin=True)
    assert nobody["data"]["operatorLogin"]["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    stored = await fetch("SELECT password_hash FROM operator WHERE username = 'admin'")
    assert stored[0]["password_hash"].startswith("$argon2id$")


async def test_member_search_by_phone_and_nickname_with_masked_phones(api):
    token = await operator_token(api)
    member_id, member_token = await make_member("+8613712340000")
    await api.post('mutation { memberProfileUpdate(input: {nickname: "搜索测试"}) { userErrors { code } } }',
                   token=member_token)
    query = 'query($s: String) { members(first: 10, search: $s) { edges { node { id phone phoneMasked nickname } } } }'
    by_phone = (await api.post(query, {"s": "3712340000"}, token=token, admin=True))["data"]["members"]["edges"]
    assert [e["node"]["phoneMasked"] for e in by_phone] == ["137****0000"]
    assert by_phone[0]["node"]["phone"] is None  # the full number is the member's own
    by_name = (await api.post(query, {"s": "搜索"}, token=token, admin=True))["data"]["members"]["edges"]
    assert by_name[0]["node"]["nickname"] == "搜索测试"


async def test_members_pagination(api):
    token = await operator_token(api)
    for _ in range(3):
        await make_member()
    query = 'query($a: String) { members(first: 2, after: $a) { edges { node { id } cursor } pageInfo { hasNextPage endCursor } } }'
    page = (await api.post(query, token=token, admin=True))["data"]["members"]
    assert len(page["edges"]) == 2 and page["pageInfo"]["hasNextPage"]
    nxt = (await api.post(query, {"a": page["pageInfo"]["endCursor"]}, token=token, admin=True))["data"]["members"]
    assert not {e["node"]["id"] for e in nxt["edges"]} & {e["node"]["id"] for e in page["edges"]}


async def test_adjust_is_audited_idempotent_and_bounded(api):
    token = await operator_token(api)
    member_id, _ = await make_member()
    gid = to_global_id("Member", member_id)
    key = unique("K")
    add = {"memberId": gid, "points": 500, "reason": "客诉补偿", "idempotencyKey": key}
    result = (await api.post(ADJUST, {"i": add}, token=token, admin=True))["data"]["pointsAdjust"]
    assert result["entry"] == {"kind": "ADJUST", "points": 500, "balanceAfter": 500, "reason": "人工调整：客诉补偿"}
    assert result["member"]["pointsBalance"] == 500
    again = (await api.post(ADJUST, {"i": add}, token=token, admin=True))["data"]["pointsAdjust"]
    assert again == result
    reused = (await api.post(ADJUST, {"i": {**add, "points": 501}}, token=token, admin=True))["data"]["pointsAdjust"]
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    take = {"memberId": gid, "points": -200, "reason": "误操作冲正", "idempotencyKey": unique("K")}
    taken = (await api.post(ADJUST, {"i": take}, token=token, admin=True))["data"]["pointsAdjust"]
    assert taken["entry"]["points"] == -200 and taken["member"]["pointsBalance"] == 300
    before = await snapshot(member_id)
    for bad, code in [({"points": -301}, "INSUFFICIENT_POINTS"), ({"points": 0}, "INVALID_INPUT"),
                      ({"reason": ""}, "INVALID_INPUT"), ({"memberId": "nope"}, "NOT_FOUND")]:
        refused = await api.post(ADJUST, {"i": {**take, "idempotencyKey": unique("K"), **bad}}, token=token, admin=True)
        assert refused["data"]["pointsAdjust"]["userErrors"][0]["code"] == code
    assert await snapshot(member_id) == before
    audit = await fetch("SELECT action, detail FROM audit_log WHERE target_type = 'member' AND target_id = $1"
                        " ORDER BY id", str(member_id))
    assert [a["action"] for a in audit] == ["points.adjust", "points.adjust"]
    assert "客诉补偿" in audit[0]["detail"]


async def test_expiry_run_expires_due_lots_in_sets_and_is_safe_to_repeat(api):
    token = await operator_token(api)
    start = clock.now()
    members = [await make_member() for _ in range(3)]
    for member_id, _ in members:
        await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, occurred_at=start - timedelta(days=1))})
        await api.signed(PURCHASE, {"input": purchase_input(member_id, 5_000)})
    clock.freeze(start + timedelta(days=365))  # the first lots (earned a day earlier) are due, the second not
    token = await operator_token(api)
    result = (await api.post(EXPIRE, {"i": {}}, token=token, admin=True))["data"]["pointsExpireRun"]
    assert result["lotsExpired"] >= 3 and result["pointsExpired"] >= 300
    for member_id, _ in members:
        state = await snapshot(member_id)
        assert state["balance"] == 50
        ledger = await api.post("{ viewer { member { pointsLedger(first: 1) { edges { node { kind points } } } } } }",
                                token=signing.issue_token("member", member_id, 60))
        assert ledger["data"]["viewer"]["member"]["pointsLedger"]["edges"][0]["node"] == {"kind": "EXPIRE", "points": -100}
    repeat = (await api.post(EXPIRE, {"i": {}}, token=token, admin=True))["data"]["pointsExpireRun"]
    assert repeat["lotsExpired"] == 0 and repeat["pointsExpired"] == 0
    future = await api.post(EXPIRE, {"i": {"asOf": (clock.now() + timedelta(days=2)).isoformat()}}, token=token, admin=True)
    assert future["data"]["pointsExpireRun"]["userErrors"][0]["code"] == "INVALID_INPUT"


async def test_due_points_are_not_spendable_before_the_run(api):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    clock.freeze(clock.now() + timedelta(days=366))
    query = "{ viewer { member { pointsBalance pointsExpiringSoon(days: 30) { points earliestExpiresAt } } } }"
    me = (await api.post(query, token=signing.issue_token("member", member_id, 60)))["data"]["viewer"]["member"]
    assert me["pointsBalance"] == 0 and me["pointsExpiringSoon"]["points"] == 0


async def test_expiring_soon(api):
    member_id, member_token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    query = "query($d: Int!) { viewer { member { pointsExpiringSoon(days: $d) { points earliestExpiresAt } } } }"
    assert (await api.post(query, {"d": 30}, token=member_token))["data"]["viewer"]["member"]["pointsExpiringSoon"] == {
        "points": 0, "earliestExpiresAt": None}
    clock.freeze(clock.now() + timedelta(days=350))
    soon = (await api.post(query, {"d": 30}, token=signing.issue_token("member", member_id, 60)))["data"]["viewer"]["member"]["pointsExpiringSoon"]
    assert soon["points"] == 100 and soon["earliestExpiresAt"]


async def test_tier_period_end_downgrades_and_logs(api):
    joined = clock.now() - timedelta(days=20)
    member_id, member_token = await make_member(at=joined)
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 600_000)})  # 6000 growth: 金卡
    me = "{ viewer { member { tier { code } growthValue nextTier { tier { code } growthValueNeeded } } } }"
    view = (await api.post(me, token=member_token))["data"]["viewer"]["member"]
    assert view == {"tier": {"code": "GOLD"}, "growthValue": 6000,
                    "nextTier": {"tier": {"code": "DIAMOND"}, "growthValueNeeded": 9000}}
    run = "mutation { tierEvaluationRun(input: {}) { membersEvaluated downgraded userErrors { code } } }"
    clock.freeze(joined + timedelta(days=370))  # period 1 closes with 6000: keeps 金卡, growth restarts at 0
    await api.post(run, token=await operator_token(api), admin=True)
    member_token = signing.issue_token("member", member_id, 60)
    view = (await api.post(me, token=member_token))["data"]["viewer"]["member"]
    assert view["tier"]["code"] == "GOLD" and view["growthValue"] == 0
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 120_000)})  # 1200 growth in period 2
    clock.freeze(joined + timedelta(days=740))  # period 2 closes with 1200 growth (growth is per yuan, not ×1.5)
    await api.post(run, token=await operator_token(api), admin=True)
    view = (await api.post(me, token=signing.issue_token("member", member_id, 60)))["data"]["viewer"]["member"]
    assert view["tier"]["code"] == "SILVER"
    log = await fetch("SELECT direction FROM tier_change WHERE member_id = $1 ORDER BY id", member_id)
    assert [r["direction"] for r in log] == ["JOIN", "UPGRADE", "KEEP", "DOWNGRADE"]


async def test_sms_outbox_and_integration_keys(api):
    token = await operator_token(api)
    phone = "+8613912300000"
    await api.post('mutation($p: String!) { authSmsCodeRequest(input: {phone: $p}) { userErrors { code } } }', {"p": phone})
    outbox = (await api.post("{ smsMessages(first: 5) { phone body createdAt } }", token=token, admin=True))
    assert any(m["phone"] == phone for m in outbox["data"]["smsMessages"])
    create = """mutation { integrationKeyCreate(input: {name: "停车场", merchantCodes: ["M001"]}) {
      integrationKey { keyId merchantCodes revokedAt } secret userErrors { code } } }"""
    created = (await api.post(create, token=token, admin=True))["data"]["integrationKeyCreate"]
    assert created["secret"] and created["integrationKey"]["merchantCodes"] == ["M001"]
    key_id = created["integrationKey"]["keyId"]
    revoke = 'mutation($k: String!) { integrationKeyRevoke(input: {keyId: $k}) { integrationKey { revokedAt } userErrors { code } } }'
    revoked = (await api.post(revoke, {"k": key_id}, token=token, admin=True))["data"]["integrationKeyRevoke"]
    assert revoked["integrationKey"]["revokedAt"]
    twice = (await api.post(revoke, {"k": key_id}, token=token, admin=True))["data"]["integrationKeyRevoke"]
    assert twice["userErrors"][0]["code"] == "NOT_FOUND"
    bad = (await api.post(create.replace('"M001"', '"NOPE"'), token=token, admin=True))["data"]["integrationKeyCreate"]
    assert bad["userErrors"][0]["code"] == "NOT_FOUND"
    audit = await fetch("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id", key_id)
    assert [a["action"] for a in audit] == ["integration_key.create", "integration_key.revoke"]


async def test_ledger_rows_cannot_be_edited_or_deleted(api):
    member_id, _ = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    for statement in ("UPDATE points_entry SET points = 1", "DELETE FROM points_entry"):
        with pytest.raises(Exception, match="append-only"):
            async with transaction() as tx:
                await tx.execute(statement)
    with pytest.raises(Exception, match="points_lot_bounds"):
        async with transaction() as tx:
            await tx.execute("UPDATE points_lot SET remaining = points + 1")


async def test_failed_logins_are_limited(api):
    user = unique("nobody")
    codes = [(await api.post(LOGIN, {"u": user, "p": "x"}, admin=True))["data"]["operatorLogin"]["userErrors"][0]["code"]
             for _ in range(passwords.LOGIN_ATTEMPTS_PER_15_MIN + 1)]
    assert codes == ["INVALID_CREDENTIALS"] * passwords.LOGIN_ATTEMPTS_PER_15_MIN + ["RATE_LIMITED"]
