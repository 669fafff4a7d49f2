"""The merchant assistant (商户助手, issue 12 item 5): staff roles, a manager's clerks, the merchant's day,
voucher proposals approved by operators; one merchant's staff never see or change another's."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from api import db
from api.services import clock, signing, staff
from tests.conftest import (
    PAY,
    PURCHASE,
    REFUND,
    bind_demo_key,
    code_for,
    make_member,
    make_merchant,
    purchase_input,
    unique,
)
from tests.mall_helpers import REDEEM, create_product, funded_member, gid, operator_token
from tests.test_operator_roles import token_for
from tests.test_vouchers import issue_voucher

PASSWORD = "till-password-42"
STAFF_FIELDS = "id username displayName active role merchant { code }"
CLERK_CREATE = f"""mutation($i: MerchantClerkCreateInput!) {{ merchantClerkCreate(input: $i) {{
  staff {{ {STAFF_FIELDS} }} userErrors {{ code field message }} }} }}"""
CLERK_DEACTIVATE = f"""mutation($i: MerchantClerkDeactivateInput!) {{ merchantClerkDeactivate(input: $i) {{
  staff {{ {STAFF_FIELDS} }} userErrors {{ code field message }} }} }}"""
PROPOSAL_FIELDS = """id name status quantity validityDays pointsPrice faceValue { amountFen }
  settlementPrice { amountFen } merchant { code } note product { id kind stock faceValue { amountFen } }"""
PROPOSE = f"""mutation($i: MerchantVoucherProposeInput!) {{ merchantVoucherPropose(input: $i) {{
  proposal {{ {PROPOSAL_FIELDS} }} userErrors {{ code field message }} }} }}"""
APPROVE = f"""mutation($i: MerchantVoucherApproveInput!) {{ merchantVoucherApprove(input: $i) {{
  proposal {{ {PROPOSAL_FIELDS} }} userErrors {{ code field message }} }} }}"""
PROPOSALS = """query($s: MerchantVoucherProposalStatus, $m: String) {
  merchantVoucherProposals(first: 100, status: $s, merchantCode: $m) { edges { node { id status merchant { code } } } } }"""
ME = """{ viewer { staff { id role merchant { code } } } }"""
TODAY = """{ viewer { staff { today { day writeOffs writeOffFaceValue { amountFen } pointsIssued receipts
  sales { amountFen } refunds pointsReversed pointsPaid pointsPayments pointsPaidCashValue { amountFen }
  orders orderUnits orderPoints orderCash { amountFen } ordersRefunded } } } }"""
MY_PROPOSALS = """{ viewer { staff { voucherProposals(first: 100) { edges { node { id name } } } } } }"""
TEAM = """{ viewer { staff { staffAccounts(first: 100) { edges { node { id username role active } } } } } }"""
NODE = "query($id: ID!) { node(id: $id) { id ... on MerchantVoucherProposal { name } } }"
WRITE_OFF = """mutation($i: VoucherWriteOffInput!) { voucherWriteOff(input: $i) { voucher { status }
  userErrors { code } } }"""
LOOKUP = "query($c: String!) { voucherLookup(code: $c) { code status } }"


# --- helpers ---------------------------------------------------------------------------------------


async def make_manager(merchant_code: str) -> tuple[int, str]:
    """A MANAGER account (as operators open them) and its token."""
    account = await staff.create(("cli", None), merchant_code, unique("mgr"), "店长", PASSWORD)
    assert account.role == "MANAGER"
    return account.id, signing.issue_token("staff", account.id, 3600)


async def make_clerk(api, manager_token: str) -> tuple[str, str, str]:
    """A CLERK opened by the manager through the API: (global id, username, token)."""
    username = unique("clerk")
    result = await api.post(CLERK_CREATE, {"i": {"username": username, "displayName": "收银员", "password": PASSWORD}},
                            token=manager_token)
    payload = result["data"]["merchantClerkCreate"]
    assert payload["userErrors"] == [], payload
    pk = int(await db.fetchval("SELECT id FROM merchant_staff WHERE username = $1", username))
    return payload["staff"]["id"], username, signing.issue_token("staff", pk, 3600)


def proposal_input(**changes) -> dict:
    return {"i": {"name": unique("50元代金券"), "faceValueFen": 5000, "quantity": 20, "validityDays": 30,
                  "pointsPrice": 2000, "settlementPriceFen": 4500, **changes}}


async def counts() -> dict:
    """What a refused call must leave as it was."""
    row = (await db.fetch(
        "SELECT (SELECT COUNT(*) FROM merchant_staff) AS staff,"
        " (SELECT COUNT(*) FROM merchant_staff WHERE active) AS active_staff,"
        " (SELECT COUNT(*) FROM merchant_voucher_proposal) AS proposals,"
        " (SELECT COUNT(*) FROM merchant_voucher_proposal WHERE status = 'PENDING') AS pending,"
        " (SELECT COUNT(*) FROM product) AS products,"
        " (SELECT COUNT(*) FROM audit_log) AS audits"))[0]
    return {k: int(v) for k, v in dict(row).items()}


def errors(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


# --- roles and clerks ------------------------------------------------------------------------------


async def test_manager_opens_and_closes_a_clerk_whose_tokens_then_stop(api):
    merchant = await make_merchant()
    manager_id, manager = await make_manager(merchant)
    me = (await api.post(ME, token=manager))["data"]["viewer"]["staff"]
    assert me["role"] == "MANAGER" and me["merchant"] == {"code": merchant}
    clerk_gid, username, clerk = await make_clerk(api, manager)
    row = (await db.fetch("SELECT role, active, password_hash FROM merchant_staff WHERE username = $1", username))[0]
    assert row["role"] == "CLERK" and row["active"] and row["password_hash"].startswith("$argon2id$")
    created = await db.fetch("SELECT actor_type, actor_id, detail FROM audit_log WHERE action = 'merchant_staff.create'"
                             " AND target_id = $1", str(await _pk(username)))
    assert [(a["actor_type"], a["actor_id"]) for a in created] == [("staff", str(manager_id))]
    assert PASSWORD not in created[0]["detail"] and '"role": "CLERK"' in created[0]["detail"]
    # The clerk signs in with the password and sees its role and merchant.
    login = await api.post("""mutation($u: String!, $p: String!) { merchantStaffLogin(input: {username: $u, password: $p})
      { token staff { role } userErrors { code } } }""", {"u": username, "p": PASSWORD})
    assert login["data"]["merchantStaffLogin"]["staff"] == {"role": "CLERK"}
    assert (await api.post(ME, token=clerk))["data"]["viewer"]["staff"]["role"] == "CLERK"
    # The manager sees the team; the clerk may not.
    team = (await api.post(TEAM, token=manager))["data"]["viewer"]["staff"]["staffAccounts"]["edges"]
    assert {(n["node"]["username"], n["node"]["role"]) for n in team} >= {(username, "CLERK")}
    refused = await api.post(TEAM, token=clerk)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and refused["data"] == {"viewer": {"staff": None}}
    # Closing: audited once, the clerk's token stops at once, closing again changes nothing.
    closed = (await api.post(CLERK_DEACTIVATE, {"i": {"staffId": clerk_gid}}, token=manager))["data"]
    assert closed["merchantClerkDeactivate"]["staff"]["active"] is False
    assert (await api.post(ME, token=clerk))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    before = await counts()
    again = (await api.post(CLERK_DEACTIVATE, {"i": {"staffId": clerk_gid}}, token=manager))["data"]
    assert again["merchantClerkDeactivate"]["userErrors"] == [] and await counts() == before
    audits = await db.fetch("SELECT actor_id, before, after FROM audit_log WHERE action = 'merchant_staff.deactivate'"
                            " AND target_id = $1", str(await _pk(username)))
    assert [a["actor_id"] for a in audits] == [str(manager_id)]
    assert '"active": true' in audits[0]["before"] and '"active": false' in audits[0]["after"]


async def _pk(username: str) -> int:
    return int(await db.fetchval("SELECT id FROM merchant_staff WHERE username = $1", username))


async def test_a_clerk_writes_off_and_sees_the_day_but_manages_nothing(api):
    merchant = await make_merchant()
    _, manager = await make_manager(merchant)
    _, _, clerk = await make_clerk(api, manager)
    # Write-off works for both roles (voucherWriteOff is unchanged by roles).
    member_id, _ = await make_member()
    for token in (clerk, manager):
        code, _ = await issue_voucher(member_id, merchant)
        assert (await api.post(LOOKUP, {"c": code}, token=token))["data"]["voucherLookup"]["status"] == "ISSUED"
        done = (await api.post(WRITE_OFF, {"i": {"code": code, "idempotencyKey": unique("W")}}, token=token))["data"]
        assert done["voucherWriteOff"] == {"voucher": {"status": "USED"}, "userErrors": []}
    assert (await api.post(TODAY, token=clerk))["data"]["viewer"]["staff"]["today"]["writeOffs"] == 2
    assert (await api.post(MY_PROPOSALS, token=clerk))["data"]["viewer"]["staff"]["voucherProposals"]["edges"] == []
    # A clerk may not open or close clerks, nor propose vouchers: typed errors, nothing changed.
    other_gid, _, _ = await make_clerk(api, manager)
    before = await counts()
    new_clerk = {"username": unique("c"), "displayName": "新人", "password": PASSWORD}
    for query, variables, name in [
        (CLERK_CREATE, {"i": new_clerk}, "merchantClerkCreate"),
        (CLERK_DEACTIVATE, {"i": {"staffId": other_gid}}, "merchantClerkDeactivate"),
        (PROPOSE, proposal_input(), "merchantVoucherPropose"),
    ]:
        payload = (await api.post(query, variables, token=clerk))["data"][name]
        assert errors(payload) == [("STAFF_ROLE_REQUIRED", None)], payload
        assert await counts() == before
    # Members and anonymous callers are refused at the top level.
    _, member = await make_member()
    assert (await api.post(CLERK_CREATE, {"i": new_clerk}, token=member))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await api.post(PROPOSE, proposal_input()))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await counts() == before


@pytest.mark.parametrize("change, field", [
    ({"username": "x"}, "username"),
    ({"username": "bad name"}, "username"),
    ({"username": "a\x00bc"}, "username"),
    ({"displayName": ""}, "displayName"),
    ({"displayName": "   "}, "displayName"),
    ({"displayName": "名" * 65}, "displayName"),
    ({"displayName": "收银\x07员"}, "displayName"),
    ({"displayName": "收银\u202e员"}, "displayName"),
    ({"password": "short-pw1"}, "password"),
    ({"password": "p" * 257}, "password"),
    ({"password": ""}, "password"),
])
async def test_bad_clerk_input_is_refused_and_changes_nothing(api, change, field):
    _, manager = await make_manager(await make_merchant())
    before = await counts()
    good = {"username": unique("clerk"), "displayName": "收银员", "password": PASSWORD}
    payload = (await api.post(CLERK_CREATE, {"i": {**good, **change}}, token=manager))["data"]["merchantClerkCreate"]
    assert payload["staff"] is None and errors(payload) == [("INVALID_INPUT", ["input", field])]
    assert await counts() == before


async def test_a_taken_username_is_refused(api):
    _, manager = await make_manager(await make_merchant())
    _, username, _ = await make_clerk(api, manager)
    before = await counts()
    taken = {"username": username.upper(), "displayName": "收银员", "password": PASSWORD}
    payload = (await api.post(CLERK_CREATE, {"i": taken}, token=manager))["data"]["merchantClerkCreate"]
    assert errors(payload) == [("INVALID_INPUT", ["input", "username"])] and await counts() == before


# --- one merchant never sees or changes another's ------------------------------------------------


async def test_staff_of_one_merchant_never_reach_another_merchants_data(api):
    a, b = await make_merchant(), await make_merchant()
    a_manager_id, a_manager = await make_manager(a)
    b_manager_id, b_manager = await make_manager(b)
    a2_manager_id, _ = await make_manager(a)
    b_clerk_gid, _, b_clerk = await make_clerk(api, b_manager)
    b_proposal = (await api.post(PROPOSE, proposal_input(), token=b_manager))["data"]["merchantVoucherPropose"]["proposal"]
    before = await counts()
    # Mutations naming the other merchant's objects: NOT_FOUND, nothing changed.
    for staff_id in (b_clerk_gid, gid("MerchantStaff", b_manager_id), gid("MerchantStaff", 10**8), "bogus",
                     gid("MerchantStaff", 2**40), gid("MerchantStaff", -1), b_proposal["id"]):
        payload = (await api.post(CLERK_DEACTIVATE, {"i": {"staffId": staff_id}}, token=a_manager))["data"]
        assert errors(payload["merchantClerkDeactivate"]) == [("NOT_FOUND", ["input", "staffId"])], staff_id
    # Another manager of one's own merchant is closed by operators only.
    own = (await api.post(CLERK_DEACTIVATE, {"i": {"staffId": gid("MerchantStaff", a2_manager_id)}}, token=a_manager))
    assert errors(own["data"]["merchantClerkDeactivate"]) == [("STAFF_ROLE_REQUIRED", ["input", "staffId"])]
    assert await counts() == before
    assert (await api.post(ME, token=b_clerk))["data"]["viewer"]["staff"]["role"] == "CLERK"  # still signed in
    # Queries: the team, the proposals, node(id:) and the day are one's own merchant's only.
    team = (await api.post(TEAM, token=a_manager))["data"]["viewer"]["staff"]["staffAccounts"]["edges"]
    assert {e["node"]["id"] for e in team} == {gid("MerchantStaff", a_manager_id), gid("MerchantStaff", a2_manager_id)}
    assert (await api.post(MY_PROPOSALS, token=a_manager))["data"]["viewer"]["staff"]["voucherProposals"]["edges"] == []
    mine = (await api.post(MY_PROPOSALS, token=b_clerk))["data"]["viewer"]["staff"]["voucherProposals"]["edges"]
    assert [e["node"]["id"] for e in mine] == [b_proposal["id"]]
    assert (await api.post(NODE, {"id": b_proposal["id"]}, token=a_manager))["data"]["node"] is None
    assert (await api.post(NODE, {"id": b_proposal["id"]}, token=b_clerk))["data"]["node"]["name"] == b_proposal["name"]
    _, member = await make_member()
    assert (await api.post(NODE, {"id": b_proposal["id"]}, token=member))["data"]["node"] is None
    huge = (await api.post(NODE, {"id": gid("MerchantVoucherProposal", 10**20)}, token=b_clerk))
    assert huge["data"]["node"] is None and "errors" not in huge
    paged = await api.post("""{ viewer { staff { voucherProposals(first: 5, after: "%s") { edges { node { id } } }
      staffAccounts(first: 5, after: "%s") { edges { node { id } } } } } }""" % (gid("cursor", 2**40), gid("cursor", 2**40)),
                           token=b_manager)
    assert paged["data"]["viewer"]["staff"] == {"voucherProposals": {"edges": []}, "staffAccounts": {"edges": []}}
    assert (await api.post(NODE, {"id": gid("MerchantStaff", b_manager_id)}, token=a_manager))["data"]["node"] is None
    # The day: B's receipt is not in A's figures.
    await bind_demo_key(b)
    member_id, _ = await make_member()
    done = await api.signed(PURCHASE, {"input": purchase_input(member_id, 8000, merchant=b)})
    assert done["data"]["purchaseRecord"]["userErrors"] == []
    a_day = (await api.post(TODAY, token=a_manager))["data"]["viewer"]["staff"]["today"]
    b_day = (await api.post(TODAY, token=b_clerk))["data"]["viewer"]["staff"]["today"]
    assert (a_day["receipts"], a_day["sales"]["amountFen"]) == (0, 0)
    assert (b_day["receipts"], b_day["sales"]["amountFen"]) == (1, 8000)
    assert a_manager_id != b_manager_id


# --- the merchant's day ----------------------------------------------------------------------------


async def test_today_counts_the_merchants_own_events_of_the_shanghai_day(api):
    merchant, other = await make_merchant(), await make_merchant()
    await bind_demo_key(merchant)
    await bind_demo_key(other)
    _, manager = await make_manager(merchant)
    operator = await operator_token(api)
    member_id, member = await funded_member(10_000)
    # Yesterday's receipt (Asia/Shanghai) is not today's; another merchant's events are not this one's.
    start, _ = clock.day_bounds(clock.business_day(clock.now()))
    yesterday = purchase_input(member_id, 3000, merchant=merchant, occurred_at=start - timedelta(seconds=1))
    assert (await api.signed(PURCHASE, {"input": yesterday}))["data"]["purchaseRecord"]["userErrors"] == []
    elsewhere = purchase_input(member_id, 7000, merchant=other)
    assert (await api.signed(PURCHASE, {"input": elsewhere}))["data"]["purchaseRecord"]["userErrors"] == []
    receipt = unique("R")
    bought = (await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, merchant=merchant,
                                                                  receipt=receipt)}))["data"]["purchaseRecord"]
    refund = {"merchantCode": merchant, "receiptNo": receipt, "refundAmountFen": 5000, "idempotencyKey": unique("K")}
    refunded = (await api.signed(REFUND, {"input": refund}))["data"]["purchaseRefund"]
    pay = {"memberCode": code_for(member_id), "merchantCode": merchant, "receiptNo": unique("P"), "points": 300,
           "idempotencyKey": unique("K")}
    paid = (await api.signed(PAY, {"input": pay}))["data"]["pointsPay"]
    assert paid["userErrors"] == [] and refunded["userErrors"] == []
    # A points-mall voucher of this merchant, redeemed and written off; another merchant's goods too.
    product = await create_product(api, operator, kind="MERCHANT_VOUCHER", merchantCode=merchant, faceValueFen=5000,
                                   pointsPrice=400)
    foreign = await create_product(api, operator, kind="MERCHANT_VOUCHER", merchantCode=other, faceValueFen=900,
                                   pointsPrice=50)
    codes = []
    for p, qty in ((product, 2), (foreign, 1)):
        order = (await api.post(REDEEM, {"i": {"productId": p["id"], "quantity": qty, "idempotencyKey": unique("K")}},
                                token=member))["data"]["pointsMallRedeem"]
        assert order["userErrors"] == [], order
        codes.append(order["order"]["vouchers"][0]["code"])
    done = (await api.post(WRITE_OFF, {"i": {"code": codes[0], "idempotencyKey": unique("W")}}, token=manager))["data"]
    assert done["voucherWriteOff"]["userErrors"] == []
    day = (await api.post(TODAY, token=manager))["data"]["viewer"]["staff"]["today"]
    assert day == {
        "day": clock.business_day(clock.now()).isoformat(),
        "writeOffs": 1, "writeOffFaceValue": {"amountFen": 5000},
        "pointsIssued": bought["pointsEarned"], "receipts": 1, "sales": {"amountFen": 10_000},
        "refunds": 1, "pointsReversed": refunded["pointsReversed"],
        "pointsPaid": 300, "pointsPayments": 1, "pointsPaidCashValue": {"amountFen": paid["cashValueFen"]},
        "orders": 1, "orderUnits": 2, "orderPoints": 800, "orderCash": {"amountFen": 0}, "ordersRefunded": 0,
    }


# --- voucher proposals -----------------------------------------------------------------------------


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"name": "券" * 129}, "name"),
    ({"name": "满减\x00券"}, "name"),
    ({"name": "满减\u2066券"}, "name"),
    ({"faceValueFen": 0}, "faceValueFen"),
    ({"faceValueFen": -100}, "faceValueFen"),
    ({"faceValueFen": 10_000_001}, "faceValueFen"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": -1}, "quantity"),
    ({"quantity": 100_001}, "quantity"),
    ({"validityDays": 0}, "validityDays"),
    ({"validityDays": 367}, "validityDays"),
    ({"pointsPrice": 0}, "pointsPrice"),
    ({"pointsPrice": 2_000_000_000}, "pointsPrice"),
    ({"settlementPriceFen": -1}, "settlementPriceFen"),
    ({"settlementPriceFen": 5001}, "settlementPriceFen"),
    ({"idempotencyKey": "k\x00"}, "idempotencyKey"),
])
async def test_bad_proposals_are_refused_and_change_nothing(api, change, field):
    _, manager = await make_manager(await make_merchant())
    before = await counts()
    payload = (await api.post(PROPOSE, proposal_input(**change), token=manager))["data"]["merchantVoucherPropose"]
    assert payload["proposal"] is None and errors(payload) == [("INVALID_INPUT", ["input", field])]
    assert await counts() == before


async def test_huge_amounts_are_refused_by_the_schema(api):
    _, manager = await make_manager(await make_merchant())
    before = await counts()
    result = await api.post(PROPOSE, proposal_input(faceValueFen=2**40), token=manager)
    assert result["data"] is None and result["errors"] and await counts() == before


async def test_a_proposal_approved_by_marketing_goes_on_sale_once(api):
    merchant = await make_merchant()
    manager_id, manager = await make_manager(merchant)
    _, service = await token_for("SERVICE")
    marketing_id, marketing = await token_for("MARKETING")
    key = unique("K")
    proposed = (await api.post(PROPOSE, proposal_input(idempotencyKey=key), token=manager))["data"]
    proposal = proposed["merchantVoucherPropose"]["proposal"]
    assert proposal["status"] == "PENDING" and proposal["product"] is None and proposal["merchant"] == {"code": merchant}
    assert (proposal["faceValue"], proposal["settlementPrice"]) == ({"amountFen": 5000}, {"amountFen": 4500})
    # The same key again: the same proposal; with other terms: refused.
    before = await counts()
    again = (await api.post(PROPOSE, proposal_input(idempotencyKey=key, name=proposal["name"]), token=manager))["data"]
    assert again["merchantVoucherPropose"]["proposal"]["id"] == proposal["id"] and await counts() == before
    reused = (await api.post(PROPOSE, proposal_input(idempotencyKey=key, quantity=3), token=manager))["data"]
    assert errors(reused["merchantVoucherPropose"]) == [("IDEMPOTENCY_KEY_REUSED", ["input", "idempotencyKey"])]
    # Operators: in the PENDING queue; SERVICE may read but not decide.
    queue = (await api.post(PROPOSALS, {"s": "PENDING", "m": merchant}, token=service, admin=True))["data"]
    assert [e["node"]["id"] for e in queue["merchantVoucherProposals"]["edges"]] == [proposal["id"]]
    refused = await api.post(APPROVE, {"i": {"proposalId": proposal["id"], "approve": True}}, token=service, admin=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and await counts() == before
    # MARKETING approves: the product is the merchant's voucher, on sale with the proposed stock.
    decided = (await api.post(APPROVE, {"i": {"proposalId": proposal["id"], "approve": True, "note": "好"}},
                              token=marketing, admin=True))["data"]["merchantVoucherApprove"]
    assert decided["userErrors"] == [] and decided["proposal"]["status"] == "APPROVED" and decided["proposal"]["note"] == "好"
    product = decided["proposal"]["product"]
    assert product["kind"] == "MERCHANT_VOUCHER" and product["stock"] == 20 and product["faceValue"] == {"amountFen": 5000}
    row = (await db.fetch("SELECT p.merchant_id, p.points_price, p.validity_days, p.status, m.code FROM product p"
                          " JOIN merchant m ON m.id = p.merchant_id WHERE p.id = $1",
                          int(await db.fetchval("SELECT product_id FROM merchant_voucher_proposal WHERE name = $1",
                                                proposal["name"]))))[0]
    assert (row["code"], int(row["points_price"]), row["validity_days"], row["status"]) == (merchant, 2000, 30, "ACTIVE")
    audits = await db.fetch("SELECT action, actor_id, before, after FROM audit_log WHERE target_type ="
                            " 'merchant_voucher_proposal' ORDER BY id")
    mine = [a for a in audits if f'"name": "{proposal["name"]}"' in (a["after"] or "")]
    assert [(a["action"], a["actor_id"]) for a in mine] == [("voucher_proposal.create", str(manager_id)),
                                                            ("voucher_proposal.approved", str(marketing_id))]
    assert '"status": "PENDING"' in mine[1]["before"] and '"status": "APPROVED"' in mine[1]["after"]
    # Approving twice, or rejecting an approved one: refused, nothing changed.
    after = await counts()
    for approve in (True, False):
        twice = (await api.post(APPROVE, {"i": {"proposalId": proposal["id"], "approve": approve}}, token=marketing,
                                admin=True))["data"]["merchantVoucherApprove"]
        assert errors(twice) == [("APPROVAL_ALREADY_DECIDED", ["input", "proposalId"])]
    assert await counts() == after
    # The staff see the decision; members can buy the voucher.
    mine = (await api.post(MY_PROPOSALS, token=manager))["data"]["viewer"]["staff"]["voucherProposals"]["edges"]
    assert [e["node"]["id"] for e in mine] == [proposal["id"]]
    _, member = await funded_member(5000)
    order = (await api.post(REDEEM, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}}, token=member))
    assert order["data"]["pointsMallRedeem"]["order"]["vouchers"][0]["merchantCode"] == merchant


async def test_a_rejected_proposal_cannot_be_approved_and_unknown_ids_are_not_found(api):
    _, manager = await make_manager(await make_merchant())
    proposal = (await api.post(PROPOSE, proposal_input(), token=manager))["data"]["merchantVoucherPropose"]["proposal"]
    operator = await operator_token(api)
    rejected = (await api.post(APPROVE, {"i": {"proposalId": proposal["id"], "approve": False}}, token=operator,
                               admin=True))["data"]["merchantVoucherApprove"]
    assert rejected["proposal"]["status"] == "REJECTED" and rejected["proposal"]["product"] is None
    before = await counts()
    for proposal_id, code in [(proposal["id"], "APPROVAL_ALREADY_DECIDED"),
                              (gid("MerchantVoucherProposal", 10**8), "NOT_FOUND"),
                              (gid("MerchantVoucherProposal", 10**20), "NOT_FOUND"),
                              (gid("MerchantStaff", 1), "NOT_FOUND"), ("bogus", "NOT_FOUND")]:
        payload = (await api.post(APPROVE, {"i": {"proposalId": proposal_id, "approve": True}}, token=operator,
                                  admin=True))["data"]["merchantVoucherApprove"]
        assert errors(payload) == [(code, ["input", "proposalId"])], proposal_id
    bad_note = (await api.post(APPROVE, {"i": {"proposalId": proposal["id"], "approve": True, "note": "x" * 201}},
                               token=operator, admin=True))["data"]["merchantVoucherApprove"]
    assert errors(bad_note) == [("INVALID_INPUT", ["input", "note"])]
    assert await counts() == before
    listed = (await api.post(PROPOSALS, {"s": "REJECTED"}, token=operator, admin=True))["data"]
    assert proposal["id"] in {e["node"]["id"] for e in listed["merchantVoucherProposals"]["edges"]}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_approvers_at_once_create_one_product(api):
    _, manager = await make_manager(await make_merchant())
    proposal = (await api.post(PROPOSE, proposal_input(), token=manager))["data"]["merchantVoucherPropose"]["proposal"]
    tokens = [(await token_for("MARKETING"))[1] for _ in range(6)]
    before = await counts()
    results = await asyncio.gather(*(api.post(APPROVE, {"i": {"proposalId": proposal["id"], "approve": True}},
                                              token=t, admin=True) for t in tokens))
    payloads = [r["data"]["merchantVoucherApprove"] for r in results]
    assert sum(1 for p in payloads if p["userErrors"] == []) == 1
    assert all(errors(p) == [("APPROVAL_ALREADY_DECIDED", ["input", "proposalId"])] for p in payloads if p["userErrors"])
    after = await counts()
    assert (after["products"], after["pending"]) == (before["products"] + 1, before["pending"] - 1)


async def test_operators_open_managers_by_default_or_clerks_and_see_roles(api):
    operator = await operator_token(api)
    merchant = await make_merchant()
    create = """mutation($i: MerchantStaffCreateInput!) { merchantStaffCreate(input: $i) { staff { username role }
      userErrors { code } } }"""
    base = {"merchantCode": merchant, "displayName": "员工", "password": PASSWORD}
    for role in (None, "CLERK", "MANAGER"):
        extra = {"role": role} if role else {}
        made = (await api.post(create, {"i": {**base, "username": unique("s"), **extra}}, token=operator,
                               admin=True))["data"]["merchantStaffCreate"]
        assert made["userErrors"] == [] and made["staff"]["role"] == (role or "MANAGER")
    listed = await api.post("""query($m: String) { merchantStaff(first: 10, merchantCode: $m) { edges { node { role } } } }""",
                            {"m": merchant}, token=operator, admin=True)
    assert [e["node"]["role"] for e in listed["data"]["merchantStaff"]["edges"]] == ["MANAGER", "CLERK", "MANAGER"]


async def test_the_database_refuses_proposals_outside_their_terms(api):
    _, manager = await make_manager(await make_merchant())
    proposal = (await api.post(PROPOSE, proposal_input(), token=manager))["data"]["merchantVoucherPropose"]["proposal"]
    name = proposal["name"]
    for change in ("settlement_price_fen = face_value_fen + 1", "settlement_price_fen = -1", "quantity = 0",
                   "status = 'APPROVED'", "status = 'MAYBE'"):
        with pytest.raises(Exception, match="(?i)check|constraint|voucher_proposal"):
            async with db.transaction() as tx:
                await tx.execute(f"UPDATE merchant_voucher_proposal SET {change} WHERE name = $1", name)
    row = (await db.fetch("SELECT status, settlement_price_fen, quantity FROM merchant_voucher_proposal WHERE name = $1",
                          name))[0]
    assert (row["status"], int(row["settlement_price_fen"]), row["quantity"]) == ("PENDING", 4500, 20)
