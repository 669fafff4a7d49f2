"""Issue 10: merchants and tiers managed by operators (audited, history never rewritten), and the audit
trail readable, filtered and append-only on both databases."""
from __future__ import annotations

import itertools
import os

import pytest
from asyncpg import PostgresError
from tortoise.exceptions import BaseORMException

from api.db import fetch, transaction
from api.schema.ids import to_global_id
from tests.conftest import PAY, PURCHASE, code_for, make_member, purchase_input, snapshot, unique
from tests.test_operator_accounts import make

M_CREATE = """mutation($i: MerchantCreateInput!) { merchantCreate(input: $i) {
  merchant { id code name category active } userErrors { code field } } }"""
M_UPDATE = """mutation($i: MerchantUpdateInput!) { merchantUpdate(input: $i) {
  merchant { id code name category active } userErrors { code field } } }"""
T_CREATE = """mutation($i: TierCreateInput!) { tierCreate(input: $i) {
  tier { id code growthThreshold earnMultiplierPercent benefits active } userErrors { code field } } }"""
T_UPDATE = """mutation($i: TierUpdateInput!) { tierUpdate(input: $i) {
  tier { id code growthThreshold earnMultiplierPercent benefits active } userErrors { code field } } }"""
AUDIT = """query($a: String, $actor: ID, $from: DateTime, $to: DateTime, $after: String, $ot: String, $oid: String) {
  auditLog(first: 2, after: $after, action: $a, actorId: $actor, from: $from, to: $to, objectType: $ot, objectId: $oid) {
    edges { node { id action objectType objectId before after createdAt actor { kind id name } } }
    pageInfo { hasNextPage endCursor } } }"""
_thresholds = itertools.count(50_000_000 + (os.getpid() % 1000) * 1000)


async def counts() -> tuple:
    rows = await fetch("SELECT (SELECT COUNT(*) FROM audit_log) AS a, (SELECT COUNT(*) FROM merchant) AS m,"
                       " (SELECT COUNT(*) FROM tier) AS t")
    return tuple(int(v) for v in dict(rows[0]).values())


async def test_merchants_created_updated_and_an_inactive_one_takes_no_receipts(api):
    _, _, admin = await make("ADMIN")
    code = unique("MC")
    created = (await api.post(M_CREATE, {"i": {"code": code, "name": "新商户", "category": "餐饮"}}, token=admin,
                              admin=True))["data"]["merchantCreate"]
    assert created["merchant"]["code"] == code and created["merchant"]["active"] is True
    gid = created["merchant"]["id"]
    member_id, _ = await make_member()
    await _bind_demo_key(code)
    ok = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, merchant=code)}))["data"]
    assert ok["purchaseRecord"]["pointsEarned"] > 0
    receipt = (await fetch("SELECT receipt_no FROM purchase WHERE member_id = $1", member_id))[0]["receipt_no"]
    off = (await api.post(M_UPDATE, {"i": {"merchantId": gid, "active": False, "name": "已撤场"}}, token=admin,
                          admin=True))["data"]["merchantUpdate"]
    assert off["merchant"]["active"] is False and off["merchant"]["name"] == "已撤场"
    state = await snapshot(member_id)
    refused = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, merchant=code)}))["data"]
    assert refused["purchaseRecord"]["userErrors"][0]["code"] == "MERCHANT_INACTIVE"
    paid = (await api.signed(PAY, {"input": {"memberCode": code_for(member_id), "merchantCode": code,
                                             "receiptNo": unique("P"), "points": 100, "idempotencyKey": unique("K")}}))
    assert paid["data"]["pointsPay"]["userErrors"][0]["code"] == "MERCHANT_INACTIVE"
    assert await snapshot(member_id) == state
    refund = """mutation($i: PurchaseRefundInput!) { purchaseRefund(input: $i) { pointsReversed userErrors { code } } }"""
    back = await api.signed(refund, {"i": {"merchantCode": code, "receiptNo": receipt, "refundAmountFen": 10_000,
                                           "idempotencyKey": unique("K")}})
    assert back["data"]["purchaseRefund"]["userErrors"] == []  # earlier receipts can still be refunded
    before = await counts()
    for document, data, code_ in [
        (M_CREATE, {"code": code, "name": "重复"}, "CODE_TAKEN"),
        (M_CREATE, {"code": "bad code!", "name": "x"}, "INVALID_INPUT"),
        (M_UPDATE, {"merchantId": gid, "code": "M001"}, "CODE_TAKEN"),
        (M_UPDATE, {"merchantId": gid, "name": ""}, "INVALID_INPUT"),
        (M_UPDATE, {"merchantId": to_global_id("Merchant", 10**9), "active": True}, "NOT_FOUND"),
    ]:
        answer = next(iter((await api.post(document, {"i": data}, token=admin, admin=True))["data"].values()))
        assert answer["userErrors"][0]["code"] == code_ and answer["merchant"] is None, data
    assert await counts() == before
    rows = await fetch("SELECT action, before, after FROM audit_log WHERE target_type = 'merchant' AND target_id = $1"
                       " ORDER BY id", str((await fetch("SELECT id FROM merchant WHERE code = $1", code))[0]["id"]))
    assert [r["action"] for r in rows] == ["merchant.create", "merchant.update"]
    assert '"active": true' in rows[1]["before"] and '"active": false' in rows[1]["after"]


async def _bind_demo_key(merchant_code: str) -> None:
    from tests.conftest import bind_demo_key

    await bind_demo_key(merchant_code)


async def test_tier_changes_apply_from_now_on_and_never_rewrite_history(api):
    _, _, marketing = await make("MARKETING")
    threshold = next(_thresholds)
    code = unique("TIER").upper()
    created = (await api.post(T_CREATE, {"i": {"code": code, "name": "测试卡", "growthThreshold": threshold,
                                               "earnMultiplierPercent": 200, "benefits": ["免费停车2小时"]}},
                              token=marketing, admin=True))["data"]["tierCreate"]
    tier = created["tier"]
    assert tier["benefits"] == ["免费停车2小时"] and tier["active"] is True
    member_id, _ = await make_member()
    async with transaction() as tx:  # test set-up: the member reached the tier
        await tx.execute("UPDATE member SET tier_id = (SELECT id FROM tier WHERE code = $1) WHERE id = $2",
                         code, member_id)
    first = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)}))["data"]["purchaseRecord"]
    changes_before = await fetch("SELECT * FROM tier_change WHERE member_id = $1 ORDER BY id", member_id)
    updated = (await api.post(T_UPDATE, {"i": {"tierId": tier["id"], "earnMultiplierPercent": 300,
                                               "benefits": ["免费停车3小时", "生日礼"]}}, token=marketing,
                              admin=True))["data"]["tierUpdate"]
    assert updated["tier"]["earnMultiplierPercent"] == 300 and updated["tier"]["benefits"] == ["免费停车3小时", "生日礼"]
    second = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)}))["data"]["purchaseRecord"]
    assert second["pointsEarned"] == first["pointsEarned"] * 3 // 2
    entries = await fetch("SELECT e.points FROM points_entry e JOIN points_account a ON a.id = e.account_id"
                          " WHERE a.member_id = $1 ORDER BY e.id", member_id)
    assert [e["points"] for e in entries] == [first["pointsEarned"], second["pointsEarned"]]
    assert await fetch("SELECT * FROM tier_change WHERE member_id = $1 ORDER BY id", member_id) == changes_before
    before = await counts()
    for document, data, code_ in [
        (T_CREATE, {"code": unique("T").upper(), "name": "撞", "growthThreshold": 1000}, "TIER_THRESHOLD_TAKEN"),
        (T_CREATE, {"code": code, "name": "重", "growthThreshold": next(_thresholds)}, "CODE_TAKEN"),
        (T_UPDATE, {"tierId": tier["id"], "growthThreshold": 5000}, "TIER_THRESHOLD_TAKEN"),
        (T_UPDATE, {"tierId": tier["id"], "earnMultiplierPercent": 0}, "INVALID_INPUT"),
        (T_UPDATE, {"tierId": to_global_id("Tier", 10**9), "name": "x"}, "NOT_FOUND"),
    ]:
        answer = next(iter((await api.post(document, {"i": data}, token=marketing, admin=True))["data"].values()))
        assert answer["userErrors"][0]["code"] == code_ and answer["tier"] is None, data
    base = (await fetch("SELECT id FROM tier WHERE growth_threshold = 0"))[0]["id"]
    for change in ({"active": False}, {"growthThreshold": 10}):
        answer = (await api.post(T_UPDATE, {"i": {"tierId": to_global_id("Tier", base), **change}}, token=marketing,
                                 admin=True))["data"]["tierUpdate"]
        assert answer["userErrors"][0]["code"] == "INVALID_INPUT"
    assert await counts() == before
    off = (await api.post(T_UPDATE, {"i": {"tierId": tier["id"], "active": False}}, token=marketing,
                          admin=True))["data"]["tierUpdate"]
    assert off["tier"]["active"] is False
    public = (await api.post("{ tiers { code } }"))["data"]["tiers"]
    assert code not in [t["code"] for t in public]  # no longer offered
    listed = await api.post("{ all: tiers(includeInactive: true) { code } active: tiers { code } }", token=marketing,
                            admin=True)
    assert code in [t["code"] for t in listed["data"]["all"]] and code not in [t["code"] for t in listed["data"]["active"]]
    member = await api.post("query($id: ID!) { member(id: $id) { tier { code active } } }",
                            {"id": to_global_id("Member", member_id)}, token=marketing, admin=True)
    assert member["data"]["member"]["tier"] == {"code": code, "active": False}  # kept until the period closes
    rows = await fetch("SELECT action, before, after FROM audit_log WHERE target_type = 'tier'"
                       " AND target_id = $1 ORDER BY id", str(from_gid(tier["id"])))
    assert [r["action"] for r in rows] == ["tier.create", "tier.update", "tier.update"]
    assert '"earn_multiplier_percent": 200' in rows[1]["before"] and '"earn_multiplier_percent": 300' in rows[1]["after"]


def from_gid(gid: str) -> int:
    from api.schema.ids import from_global_id

    return from_global_id(gid)[1]


async def test_audit_log_filters_and_pages(api):
    admin_id, admin_name, admin = await make("ADMIN")
    _, _, auditor = await make("AUDITOR")
    codes = [unique("AU") for _ in range(3)]
    for code in codes:
        await api.post(M_CREATE, {"i": {"code": code, "name": "审计"}}, token=admin, admin=True)
    actor = to_global_id("Operator", admin_id)
    page = (await api.post(AUDIT, {"a": "merchant.create", "actor": actor}, token=auditor, admin=True))["data"]["auditLog"]
    nodes = [e["node"] for e in page["edges"]]
    assert len(nodes) == 2 and page["pageInfo"]["hasNextPage"]
    assert nodes[0]["after"]["code"] == codes[2] and nodes[1]["after"]["code"] == codes[1]  # newest first
    assert nodes[0]["before"] is None and nodes[0]["actor"] == {"kind": "operator", "id": actor, "name": admin_name}
    rest = (await api.post(AUDIT, {"a": "merchant.create", "actor": actor, "after": page["pageInfo"]["endCursor"]},
                           token=auditor, admin=True))["data"]["auditLog"]
    assert [e["node"]["after"]["code"] for e in rest["edges"]] == [codes[0]] and not rest["pageInfo"]["hasNextPage"]
    one = (await api.post(AUDIT, {"ot": "merchant", "oid": nodes[0]["objectId"]}, token=auditor,
                          admin=True))["data"]["auditLog"]
    assert [e["node"]["id"] for e in one["edges"]] == [nodes[0]["id"]]
    at = nodes[0]["createdAt"]
    none = (await api.post(AUDIT, {"a": "merchant.create", "actor": actor, "to": at,
                                   "from": at}, token=auditor, admin=True))["data"]["auditLog"]
    assert none["edges"] == []  # from inclusive, to exclusive: an empty range
    since = (await api.post(AUDIT, {"a": "merchant.create", "actor": actor, "from": at}, token=auditor,
                            admin=True))["data"]["auditLog"]
    assert nodes[0]["id"] in [e["node"]["id"] for e in since["edges"]]
    nobody = (await api.post(AUDIT, {"actor": to_global_id("Operator", 10**9)}, token=auditor,
                             admin=True))["data"]["auditLog"]
    assert nobody["edges"] == []


async def test_audit_rows_cannot_be_edited_or_deleted(api):
    _, _, admin = await make("ADMIN")
    await api.post(M_CREATE, {"i": {"code": unique("AO"), "name": "只增"}}, token=admin, admin=True)
    before = await fetch("SELECT * FROM audit_log ORDER BY id")
    for statement in ("UPDATE audit_log SET action = 'x'", "UPDATE audit_log SET after = NULL",
                      "DELETE FROM audit_log", "DELETE FROM audit_log WHERE id = (SELECT MAX(id) FROM audit_log)"):
        # SQLite's trigger comes back as Tortoise's error; PostgreSQL's RAISE as asyncpg's.
        with pytest.raises((BaseORMException, PostgresError), match="append-only"):
            async with transaction() as tx:
                await tx.execute(statement)
    assert await fetch("SELECT * FROM audit_log ORDER BY id") == before


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_racing_creations_of_one_code_or_threshold(api, backend):
    import asyncio

    _, _, admin = await make("ADMIN")
    code, threshold = unique("RC"), next(_thresholds)
    merchants = await asyncio.gather(*(api.post(M_CREATE, {"i": {"code": code, "name": f"并发{i}"}}, token=admin,
                                                admin=True) for i in range(6)))
    results = [m["data"]["merchantCreate"] for m in merchants]
    assert sum(1 for r in results if r["merchant"]) == 1
    assert {r["userErrors"][0]["code"] for r in results if not r["merchant"]} == {"CODE_TAKEN"}
    tiers = await asyncio.gather(*(api.post(T_CREATE, {"i": {"code": unique("RT").upper(), "name": "并发",
                                                             "growthThreshold": threshold}}, token=admin, admin=True)
                                   for _ in range(6)))
    results = [t["data"]["tierCreate"] for t in tiers]
    assert sum(1 for r in results if r["tier"]) == 1
    assert {r["userErrors"][0]["code"] for r in results if not r["tier"]} == {"TIER_THRESHOLD_TAKEN"}
    winner = next(r["tier"]["id"] for r in results if r["tier"])
    await api.post(T_UPDATE, {"i": {"tierId": winner, "active": False}}, token=admin, admin=True)


UPGRADE = r"""
import asyncio, sqlite3, sys
from tortoise import Tortoise
from tortoise.migrations.api import migrate
from api.config import Settings
from api.db import tortoise_config

path = sys.argv[1]
config = tortoise_config(Settings(database_url=f"sqlite://{path}"))


async def run(target=None):
    await migrate(config=config, target=target)
    await Tortoise.close_connections()


asyncio.run(run("models.0010_rate_counter"))
db = sqlite3.connect(path)
db.execute("INSERT INTO operator (username, password_hash, display_name, is_active, created_at)"
           " VALUES ('old', 'x', 'Old', 1, '2026-01-01 00:00:00')")
db.execute("INSERT INTO merchant (code, name, created_at) VALUES ('OLD', 'Old shop', '2026-01-01 00:00:00')")
db.execute("INSERT INTO audit_log (actor_type, action, created_at) VALUES ('cli', 'x', '2026-01-01 00:00:00')")
db.commit()
db.close()
asyncio.run(run())
db = sqlite3.connect(path)
print(db.execute("SELECT roles FROM operator WHERE username = 'old'").fetchone()[0],
      db.execute("SELECT active FROM merchant WHERE code = 'OLD'").fetchone()[0])
try:
    db.execute("DELETE FROM audit_log")
except sqlite3.DatabaseError as exc:
    print(exc)
"""


def test_migration_0011_on_a_database_with_data(tmp_path):
    """Operators from before roles become ADMIN (they could do everything), merchants stay active, and
    the audit trail stays append-only."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([sys.executable, "-c", UPGRADE, str(tmp_path / "old.sqlite3")],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["ADMIN 1", "append-only table: audit_log"]
