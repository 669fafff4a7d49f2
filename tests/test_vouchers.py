"""Merchant staff accounts and voucher write-off (核销); the member's own vouchers."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from api import db
from api.schema.ids import to_global_id
from api.services import clock, passwords, signing, staff
from api.services.mall import vouchers
from tests.conftest import make_member, make_merchant, unique

PASSWORD = "till-password-42"

LOGIN = """mutation($u: String!, $p: String!) { merchantStaffLogin(input: {username: $u, password: $p}) {
  token staff { id username displayName active merchant { code } } userErrors { code field } } }"""
CREATE = """mutation($i: MerchantStaffCreateInput!) { merchantStaffCreate(input: $i) {
  staff { id username displayName active merchant { code } } userErrors { code field } } }"""
DEACTIVATE = """mutation($i: MerchantStaffDeactivateInput!) { merchantStaffDeactivate(input: $i) {
  staff { id active } userErrors { code field } } }"""
STAFF_LIST = """query($m: String, $a: String) { merchantStaff(first: 2, after: $a, merchantCode: $m) {
  edges { node { username merchant { code } } } pageInfo { hasNextPage endCursor } } }"""
VOUCHER_FIELDS = "id code qrPayload kind productName merchantCode faceValue { amountFen currency } status usedAt validUntil"
LOOKUP = f"query($c: String!) {{ voucherLookup(code: $c) {{ {VOUCHER_FIELDS} }} }}"
WRITE_OFF = f"""mutation($i: VoucherWriteOffInput!) {{ voucherWriteOff(input: $i) {{
  voucher {{ {VOUCHER_FIELDS} }} userErrors {{ code field message }} }} }}"""
WRITE_OFFS = """query($a: String) { viewer { member { id } staff { username displayName merchant { code name }
  writeOffs(first: 2, after: $a) { edges { node { code status } } pageInfo { hasNextPage endCursor } } } } }"""
SUMMARY = "query($d: Date) { viewer { staff { writeOffSummary(day: $d) { day count faceValue { amountFen } } } } }"
MEMBER_VOUCHERS = """query($s: VoucherStatus, $a: String) { viewer { member { vouchers(first: 2, after: $a, status: $s) {
  edges { node { id code qrPayload status merchantCode } } pageInfo { hasNextPage endCursor } } } } }"""
OPERATOR_LOGIN = 'mutation { operatorLogin(input: {username: "admin", password: "admin-demo-password"}) { token } }'


# --- fixture data ----------------------------------------------------------------------------------


async def operator_token(api) -> str:
    return (await api.post(OPERATOR_LOGIN, admin=True))["data"]["operatorLogin"]["token"]


async def make_staff(merchant_code: str) -> tuple[int, str, str]:
    """A staff account of a merchant: (id, username, token)."""
    username = unique("till").lower()
    account = await staff.create(("cli", None), merchant_code, username, "收银员", PASSWORD)
    return account.id, username, signing.issue_token("staff", account.id, 3600)


async def issue_voucher(member_id: int, merchant_code: str | None, *, kind: str = "MERCHANT_VOUCHER",
                        face_value_fen: int | None = 5000, days: int = 30, issued_at=None) -> tuple[str, int]:
    """One voucher of a fresh product and order, issued by the mall's own function: (code, order id)."""
    now = issued_at or clock.now()
    async with db.transaction() as tx:
        merchant_id = None
        if merchant_code is not None:
            merchant_id = await tx.fetchval("SELECT id FROM merchant WHERE code = $1", merchant_code)
        product_id = await tx.fetchval(
            "INSERT INTO product (kind, name, image_urls, merchant_id, face_value_fen, validity_days, points_price,"
            " cash_price_fen, stock, status, created_at, updated_at)"
            " VALUES ($1, $2, '[]', $3, $4, $5, 100, 0, 10, 'ACTIVE', $6, $6) RETURNING id",
            kind, f"测试券{unique()}", merchant_id, face_value_fen, days, now,
        )
        order_id = await tx.fetchval(
            "INSERT INTO mall_order (order_no, member_id, product_id, channel, status, quantity, points, cash_fen,"
            " idempotency_key, created_at) VALUES ($1, $2, $3, 'REDEEM', 'PAID', 1, 0, 0, $4, $5) RETURNING id",
            unique("O"), member_id, product_id, unique("K"), now,
        )
        [code] = await vouchers.issue(order_id=order_id, member_id=member_id, product_id=product_id, kind=kind,
                                      merchant_id=merchant_id, face_value_fen=face_value_fen, validity_days=days,
                                      quantity=1, now=now)
    return code, order_id


async def voucher_row(code: str) -> dict:
    """Everything a refused write-off must leave untouched, and what a write-off records."""
    rows = await db.fetch(
        "SELECT status, used_at, used_by_id, used_merchant_id,"
        " (SELECT COUNT(*) FROM audit_log a WHERE a.action = 'voucher.write_off' AND a.target_id = CAST(v.id AS TEXT))"
        " AS audits FROM voucher v WHERE code = $1", code,
    )
    return {k: (int(v) if k == "audits" else v) for k, v in dict(rows[0]).items()}


async def merchant_id_of(code: str) -> int:
    return await db.fetchval("SELECT id FROM merchant WHERE code = $1", code)


def write_off_input(code: str, key: str | None = None) -> dict:
    return {"i": {"code": code, "idempotencyKey": key or unique("W")}}


def errors(payload: dict) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


# --- accounts and sign-in -------------------------------------------------------------------------


async def test_operators_create_list_and_deactivate_staff_audited(api):
    token = await operator_token(api)
    merchant = await make_merchant()
    username = unique("Clerk.")
    good = {"merchantCode": merchant, "username": username, "displayName": "王店长", "password": PASSWORD}
    created = (await api.post(CREATE, {"i": good}, token=token, admin=True))["data"]["merchantStaffCreate"]
    assert created["userErrors"] == [] and created["staff"]["username"] == username.lower()
    assert created["staff"]["active"] and created["staff"]["merchant"] == {"code": merchant}
    stored = await db.fetch("SELECT password_hash FROM merchant_staff WHERE username = $1", username.lower())
    assert stored[0]["password_hash"].startswith("$argon2id$")
    for bad, code, field in [
        ({"password": "short-pw1"}, "INVALID_INPUT", "password"),
        ({"merchantCode": "NOPE"}, "NOT_FOUND", "merchantCode"),
        ({}, "INVALID_INPUT", "username"),  # taken
        ({"username": "x"}, "INVALID_INPUT", "username"),
        ({"displayName": " "}, "INVALID_INPUT", "displayName"),
    ]:
        refused = (await api.post(CREATE, {"i": {**good, **bad}}, token=token, admin=True))["data"]["merchantStaffCreate"]
        assert refused == {"staff": None, "userErrors": [{"code": code, "field": [field]}]}
    await api.post(CREATE, {"i": {**good, "username": unique("clerk")}}, token=token, admin=True)
    await api.post(CREATE, {"i": {**good, "username": unique("clerk")}}, token=token, admin=True)
    page = (await api.post(STAFF_LIST, {"m": merchant}, token=token, admin=True))["data"]["merchantStaff"]
    assert [e["node"]["merchant"]["code"] for e in page["edges"]] == [merchant] * 2 and page["pageInfo"]["hasNextPage"]
    rest = (await api.post(STAFF_LIST, {"m": merchant, "a": page["pageInfo"]["endCursor"]}, token=token,
                           admin=True))["data"]["merchantStaff"]
    assert len(rest["edges"]) == 1 and not rest["pageInfo"]["hasNextPage"]

    login = (await api.post(LOGIN, {"u": username, "p": PASSWORD}))["data"]["merchantStaffLogin"]
    staff_token = login["token"]
    node = "query($id: ID!) { node(id: $id) { ... on MerchantStaff { username } } }"
    staff_gid = {"id": created["staff"]["id"]}
    assert (await api.post(node, staff_gid, token=token, admin=True))["data"]["node"] == {"username": username.lower()}
    assert (await api.post(node, staff_gid, token=staff_token))["data"]["node"] == {"username": username.lower()}
    other_staff = (await make_staff(merchant))[2]
    assert (await api.post(node, staff_gid, token=other_staff))["data"]["node"] is None
    assert (await api.post(WRITE_OFFS, token=staff_token))["data"]["viewer"]["staff"]["merchant"]["code"] == merchant
    off = (await api.post(DEACTIVATE, {"i": {"staffId": created["staff"]["id"]}}, token=token, admin=True))
    assert off["data"]["merchantStaffDeactivate"]["staff"]["active"] is False
    refused = await api.post(WRITE_OFFS, token=staff_token)
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    again = (await api.post(LOGIN, {"u": username, "p": PASSWORD}))["data"]["merchantStaffLogin"]
    assert again["token"] is None and errors(again) == ["INVALID_CREDENTIALS"]
    missing = await api.post(DEACTIVATE, {"i": {"staffId": "bm9wZQ"}}, token=token, admin=True)
    assert errors(missing["data"]["merchantStaffDeactivate"]) == ["NOT_FOUND"]
    audit = await db.fetch("SELECT action, actor_type, detail FROM audit_log WHERE target_type = 'merchant_staff'"
                           " AND target_id = $1 ORDER BY id", str(signing_id(created["staff"]["id"])))
    assert [(a["action"], a["actor_type"]) for a in audit] == [
        ("merchant_staff.create", "operator"), ("merchant_staff.login", "staff"), ("merchant_staff.deactivate", "operator")]
    assert PASSWORD not in "".join(a["detail"] or "" for a in audit)


def signing_id(global_id: str) -> int:
    from api.schema.ids import from_global_id

    return from_global_id(global_id, "MerchantStaff")[1]


async def test_staff_login_good_bad_and_limited(api):
    merchant = await make_merchant()
    staff_id, username, _ = await make_staff(merchant)
    good = (await api.post(LOGIN, {"u": username.upper(), "p": PASSWORD}))["data"]["merchantStaffLogin"]
    assert good["userErrors"] == [] and good["staff"]["merchant"] == {"code": merchant}
    assert signing.read_token(good["token"]).kind == "staff"
    nobody = (await api.post(LOGIN, {"u": unique("nobody"), "p": PASSWORD}))["data"]["merchantStaffLogin"]
    assert nobody == {"token": None, "staff": None, "userErrors": [{"code": "INVALID_CREDENTIALS", "field": ["password"]}]}
    for _ in range(passwords.LOGIN_ATTEMPTS_PER_15_MIN):
        bad = (await api.post(LOGIN, {"u": username, "p": "wrong-password"}))["data"]["merchantStaffLogin"]
        assert errors(bad) == ["INVALID_CREDENTIALS"]
    limited = (await api.post(LOGIN, {"u": username, "p": PASSWORD}))["data"]["merchantStaffLogin"]
    assert limited["token"] is None and errors(limited) == ["RATE_LIMITED"]
    both = await api.post("mutation($u: String!, $p: String!) { a: merchantStaffLogin(input: {username: $u, password: $p})"
                          " { token } b: merchantStaffLogin(input: {username: $u, password: $p}) { token } }",
                          {"u": username, "p": PASSWORD})
    assert both["data"] is None and "only field" in both["errors"][0]["message"]


async def test_staff_token_is_refused_for_operators_and_member_fields(api):
    merchant = await make_merchant()
    _, _, token = await make_staff(merchant)
    admin = await api.post("{ members(first: 1) { edges { node { id } } } }", token=token, admin=True)
    assert admin["data"] is None and admin["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    view = (await api.post(WRITE_OFFS, token=token))["data"]["viewer"]
    assert view["member"] is None and view["staff"]["merchant"]["code"] == merchant
    profile = await api.post('mutation { memberProfileUpdate(input: {nickname: "x"}) { userErrors { code } } }',
                             token=token)
    assert profile["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    member_id, member_token = await make_member()
    code, _ = await issue_voucher(member_id, merchant)
    as_member = await api.post(LOOKUP, {"c": code}, token=member_token)
    assert as_member["errors"][0]["extensions"]["code"] == "FORBIDDEN" and not as_member["data"]["voucherLookup"]
    as_member = await api.post(WRITE_OFF, write_off_input(code), token=member_token)
    assert as_member["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await api.post(WRITE_OFF, write_off_input(code))
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await api.post(WRITE_OFFS, token=member_token))["data"]["viewer"]["staff"] is None
    node = "query($id: ID!) { node(id: $id) { id } }"
    voucher_id = (await api.post(MEMBER_VOUCHERS, token=member_token))["data"]["viewer"]["member"]["vouchers"]["edges"][0]["node"]["id"]
    assert (await api.post(node, {"id": voucher_id}, token=token))["data"]["node"] is None
    assert (await voucher_row(code))["status"] == "ISSUED"
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await api.post(WRITE_OFFS, token=forged))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- look-up ---------------------------------------------------------------------------------------


async def test_lookup_shows_own_and_mall_wide_vouchers_only(api):
    merchant, other = await make_merchant(), await make_merchant()
    _, _, token = await make_staff(merchant)
    member_id, _ = await make_member()
    own, _ = await issue_voucher(member_id, merchant)
    theirs, _ = await issue_voucher(member_id, other)
    anywhere, _ = await issue_voucher(member_id, None, kind="COUPON", face_value_fen=None)
    parking, _ = await issue_voucher(member_id, None, kind="PARKING_COUPON", face_value_fen=1000)
    found = (await api.post(LOOKUP, {"c": own}, token=token))["data"]["voucherLookup"]
    assert found["code"] == own and found["merchantCode"] == merchant and found["status"] == "ISSUED"
    assert found["faceValue"] == {"amountFen": 5000, "currency": "CNY"} and found["kind"] == "MERCHANT_VOUCHER"
    assert found["id"] == to_global_id("Voucher", await db.fetchval("SELECT id FROM voucher WHERE code = $1", own))
    for scanned in (vouchers.qr_payload(own), own.lower(), f" {own[:4]} {own[4:8]}-{own[8:]} "):
        assert (await api.post(LOOKUP, {"c": scanned}, token=token))["data"]["voucherLookup"]["code"] == own
    mall_wide = (await api.post(LOOKUP, {"c": anywhere}, token=token))["data"]["voucherLookup"]
    assert mall_wide["merchantCode"] is None and mall_wide["faceValue"] is None
    for hidden in (theirs, parking, "NOPE" * 4, "", "MPV1:"):
        assert (await api.post(LOOKUP, {"c": hidden}, token=token))["data"]["voucherLookup"] is None


# --- write-off ---------------------------------------------------------------------------------------


async def test_write_off_once_then_already_used(api):
    merchant = await make_merchant()
    staff_id, _, token = await make_staff(merchant)
    member_id, _ = await make_member()
    code, _ = await issue_voucher(member_id, merchant)
    done = (await api.post(WRITE_OFF, write_off_input(code), token=token))["data"]["voucherWriteOff"]
    assert done["userErrors"] == [] and done["voucher"]["status"] == "USED" and done["voucher"]["usedAt"]
    row = await voucher_row(code)
    assert row["status"] == "USED" and row["used_by_id"] == staff_id
    assert row["used_merchant_id"] == await merchant_id_of(merchant) and row["audits"] == 1
    again = (await api.post(WRITE_OFF, write_off_input(code), token=token))["data"]["voucherWriteOff"]
    assert again["voucher"] is None and errors(again) == ["VOUCHER_ALREADY_USED"]
    assert again["userErrors"][0]["field"] == ["code"]
    assert await voucher_row(code) == row
    shown = (await api.post(LOOKUP, {"c": code}, token=token))["data"]["voucherLookup"]
    assert shown["status"] == "USED"  # staff see why a used voucher is refused


async def test_write_off_of_a_mall_wide_coupon_by_scanned_qr_payload(api):
    merchant = await make_merchant()
    _, _, token = await make_staff(merchant)
    member_id, _ = await make_member()
    code, _ = await issue_voucher(member_id, None, kind="COUPON")
    done = (await api.post(WRITE_OFF, write_off_input(vouchers.qr_payload(code)), token=token))["data"]["voucherWriteOff"]
    assert done["userErrors"] == [] and done["voucher"]["code"] == code
    assert (await voucher_row(code))["used_merchant_id"] == await merchant_id_of(merchant)


async def test_refused_write_offs_say_why_and_change_nothing(api):
    merchant, other = await make_merchant(), await make_merchant()
    _, _, token = await make_staff(merchant)
    member_id, _ = await make_member()
    theirs, _ = await issue_voucher(member_id, other)
    expired, _ = await issue_voucher(member_id, merchant, days=30, issued_at=clock.now() - timedelta(days=31))
    voided, order_id = await issue_voucher(member_id, merchant)
    async with db.transaction():
        assert await vouchers.void_for_order(order_id) == 0
    parking, _ = await issue_voucher(member_id, None, kind="PARKING_COUPON")
    used_elsewhere, _ = await issue_voucher(member_id, other)
    _, _, other_token = await make_staff(other)
    await api.post(WRITE_OFF, write_off_input(used_elsewhere), token=other_token)
    cases = [(theirs, "VOUCHER_OTHER_MERCHANT"), (expired, "VOUCHER_EXPIRED"), (voided, "VOUCHER_VOID"),
             (parking, "VOUCHER_OTHER_MERCHANT"), (used_elsewhere, "VOUCHER_OTHER_MERCHANT")]
    before = {code: await voucher_row(code) for code, _ in cases}
    key = unique("W")
    for code, expected in cases:
        refused = (await api.post(WRITE_OFF, write_off_input(code, key), token=token))["data"]["voucherWriteOff"]
        assert refused["voucher"] is None and errors(refused) == [expected], code
    unknown = (await api.post(WRITE_OFF, write_off_input("23456789ABCDEFGH", key), token=token))["data"]["voucherWriteOff"]
    assert errors(unknown) == ["NOT_FOUND"]
    for code, _ in cases:
        assert await voucher_row(code) == before[code]
    assert (await voucher_row(expired))["status"] == "ISSUED"
    # A refusal records nothing, not even the idempotency key: the same key works for a good code.
    good, _ = await issue_voucher(member_id, merchant)
    done = (await api.post(WRITE_OFF, write_off_input(good, key), token=token))["data"]["voucherWriteOff"]
    assert done["userErrors"] == [] and done["voucher"]["code"] == good


async def test_expiry_is_decided_at_write_off_time(api):
    merchant = await make_merchant()
    staff_id, _, _ = await make_staff(merchant)
    member_id, _ = await make_member()
    code, _ = await issue_voucher(member_id, merchant, days=1)
    clock.freeze(clock.now() + timedelta(days=1, seconds=1))
    token = signing.issue_token("staff", staff_id, 3600)
    assert (await api.post(LOOKUP, {"c": code}, token=token))["data"]["voucherLookup"]["status"] == "EXPIRED"
    refused = (await api.post(WRITE_OFF, write_off_input(code), token=token))["data"]["voucherWriteOff"]
    assert errors(refused) == ["VOUCHER_EXPIRED"] and (await voucher_row(code))["status"] == "ISSUED"


async def test_write_off_is_idempotent_and_a_reused_key_is_refused(api):
    merchant = await make_merchant()
    _, _, token = await make_staff(merchant)
    member_id, _ = await make_member()
    code, _ = await issue_voucher(member_id, merchant)
    other, _ = await issue_voucher(member_id, merchant)
    key = unique("W")
    first = (await api.post(WRITE_OFF, write_off_input(code, key), token=token))["data"]["voucherWriteOff"]
    row = await voucher_row(code)
    repeat = (await api.post(WRITE_OFF, write_off_input(vouchers.qr_payload(code), key), token=token))
    assert repeat["data"]["voucherWriteOff"] == first and first["userErrors"] == []
    assert await voucher_row(code) == row and row["audits"] == 1
    untouched = await voucher_row(other)
    reused = (await api.post(WRITE_OFF, write_off_input(other, key), token=token))["data"]["voucherWriteOff"]
    assert errors(reused) == ["IDEMPOTENCY_KEY_REUSED"] and reused["userErrors"][0]["field"] == ["idempotencyKey"]
    assert await voucher_row(other) == untouched
    twice = await api.post("mutation($i: VoucherWriteOffInput!) { a: voucherWriteOff(input: $i) { voucher { code } }"
                           " b: voucherWriteOff(input: $i) { voucher { code } } }", write_off_input(other), token=token)
    assert twice["data"] is None and "only field" in twice["errors"][0]["message"]
    assert await voucher_row(other) == untouched


# --- what staff and members see -------------------------------------------------------------------------


async def test_staff_see_only_their_own_merchants_write_offs(api):
    merchant, other = await make_merchant(), await make_merchant()
    _, username, token = await make_staff(merchant)
    _, _, other_token = await make_staff(other)
    member_id, _ = await make_member()
    codes = []
    for face in (1000, 2000, 3000):
        code, _ = await issue_voucher(member_id, merchant, face_value_fen=face)
        await api.post(WRITE_OFF, write_off_input(code), token=token)
        codes.append(code)
    theirs, _ = await issue_voucher(member_id, other)
    await api.post(WRITE_OFF, write_off_input(theirs), token=other_token)
    mall_wide, _ = await issue_voucher(member_id, None, kind="COUPON", face_value_fen=None)
    await api.post(WRITE_OFF, write_off_input(mall_wide), token=other_token)
    view = (await api.post(WRITE_OFFS, token=token))["data"]["viewer"]["staff"]
    assert view["username"] == username and view["displayName"] == "收银员" and view["merchant"]["code"] == merchant
    page = view["writeOffs"]
    assert [e["node"]["code"] for e in page["edges"]] == codes[::-1][:2] and page["pageInfo"]["hasNextPage"]
    rest = (await api.post(WRITE_OFFS, {"a": page["pageInfo"]["endCursor"]}, token=token))["data"]["viewer"]["staff"]["writeOffs"]
    assert [e["node"]["code"] for e in rest["edges"]] == [codes[0]] and not rest["pageInfo"]["hasNextPage"]
    theirs_view = (await api.post(WRITE_OFFS, token=other_token))["data"]["viewer"]["staff"]["writeOffs"]
    assert {e["node"]["code"] for e in theirs_view["edges"]} == {theirs, mall_wide}
    today = clock.now().astimezone(clock.SHANGHAI).date()
    summary = (await api.post(SUMMARY, token=token))["data"]["viewer"]["staff"]["writeOffSummary"]
    assert summary == {"day": today.isoformat(), "count": 3, "faceValue": {"amountFen": 6000}}
    yesterday = (today - timedelta(days=1)).isoformat()
    assert (await api.post(SUMMARY, {"d": yesterday}, token=token))["data"]["viewer"]["staff"]["writeOffSummary"] == {
        "day": yesterday, "count": 0, "faceValue": {"amountFen": 0}}
    too_many = await api.post("{ viewer { staff { writeOffs(first: 101) { edges { cursor } } } } }", token=token)
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_write_off_summary_cuts_days_in_shanghai(api):
    merchant = await make_merchant()
    staff_id, _, _ = await make_staff(merchant)
    member_id, _ = await make_member()
    start = clock.now()
    code, _ = await issue_voucher(member_id, merchant, face_value_fen=700)
    # 23:30 Shanghai on a day is 15:30 UTC of that day; 00:30 Shanghai the next day is 16:30 UTC.
    base = start.astimezone(clock.SHANGHAI).replace(hour=23, minute=30, second=0, microsecond=0) + timedelta(days=1)
    clock.freeze(base)
    late, _ = await issue_voucher(member_id, merchant, face_value_fen=300)
    token = signing.issue_token("staff", staff_id, 3600)
    await api.post(WRITE_OFF, write_off_input(code), token=token)
    clock.freeze(base + timedelta(hours=1))
    token = signing.issue_token("staff", staff_id, 3600)
    await api.post(WRITE_OFF, write_off_input(late), token=token)
    day = base.date()
    first = (await api.post(SUMMARY, {"d": day.isoformat()}, token=token))["data"]["viewer"]["staff"]["writeOffSummary"]
    second = (await api.post(SUMMARY, token=token))["data"]["viewer"]["staff"]["writeOffSummary"]
    assert (first["count"], first["faceValue"]["amountFen"]) == (1, 700)
    assert second == {"day": (day + timedelta(days=1)).isoformat(), "count": 1, "faceValue": {"amountFen": 300}}


async def test_members_see_their_own_vouchers_only(api):
    merchant = await make_merchant()
    _, _, staff_token = await make_staff(merchant)
    alice, alice_token = await make_member()
    bob, bob_token = await make_member()
    codes = [(await issue_voucher(alice, merchant))[0] for _ in range(3)]
    expired, _ = await issue_voucher(alice, merchant, issued_at=clock.now() - timedelta(days=31))
    await api.post(WRITE_OFF, write_off_input(codes[0]), token=staff_token)
    page = (await api.post(MEMBER_VOUCHERS, token=alice_token))["data"]["viewer"]["member"]["vouchers"]
    assert [e["node"]["code"] for e in page["edges"]] == [expired, codes[2]] and page["pageInfo"]["hasNextPage"]
    assert page["edges"][1]["node"]["qrPayload"] == f"MPV1:{codes[2]}"
    assert page["edges"][0]["node"]["status"] == "EXPIRED" and page["edges"][1]["node"]["merchantCode"] == merchant
    rest = (await api.post(MEMBER_VOUCHERS, {"a": page["pageInfo"]["endCursor"]}, token=alice_token))
    assert [e["node"]["code"] for e in rest["data"]["viewer"]["member"]["vouchers"]["edges"]] == [codes[1], codes[0]]
    for status, expected in [("USED", [codes[0]]), ("EXPIRED", [expired]), ("ISSUED", [codes[2], codes[1]]), ("VOID", [])]:
        found = (await api.post(MEMBER_VOUCHERS, {"s": status}, token=alice_token))["data"]["viewer"]["member"]["vouchers"]
        assert [e["node"]["code"] for e in found["edges"]] == expected, status
    # Bob reaches Alice neither through node(Member) nor through node(Voucher).
    node = "query($id: ID!) { node(id: $id) { id ... on Voucher { code } ... on Member { vouchers(first: 1) { edges { cursor } } } } }"
    voucher_id = page["edges"][1]["node"]["id"]
    assert (await api.post(node, {"id": voucher_id}, token=alice_token))["data"]["node"]["code"] == codes[2]
    assert (await api.post(node, {"id": voucher_id}, token=bob_token))["data"]["node"] is None
    assert (await api.post(node, {"id": voucher_id}))["data"]["node"] is None
    assert (await api.post(node, {"id": to_global_id("Member", alice)}, token=bob_token))["data"]["node"] is None
    # An operator reads a member's vouchers; a Member object reached otherwise would refuse a stranger.
    op = await operator_token(api)
    query = 'query($id: ID!) { member(id: $id) { vouchers(first: 5) { edges { node { code } } } } }'
    seen = (await api.post(query, {"id": to_global_id("Member", alice)}, token=op, admin=True))["data"]["member"]
    assert len(seen["vouchers"]["edges"]) == 4
    # Were Alice's Member object reached by Bob some other way, its vouchers would still be refused.
    from types import SimpleNamespace

    from api.context import Caller, Context
    from api.schema.types import Member
    from api.services import members
    from api.services.errors import AuthError

    resolve = Member.vouchers
    alice_obj = Member.of(await members.get_member(alice))
    as_bob = SimpleNamespace(context=Context(caller=Caller(member_id=bob), endpoint="public"))
    with pytest.raises(AuthError) as refused:
        await resolve(alice_obj, as_bob, first=5)
    assert refused.value.code == "FORBIDDEN"
    as_alice = SimpleNamespace(context=Context(caller=Caller(member_id=alice), endpoint="public"))
    assert len((await resolve(alice_obj, as_alice, first=5)).edges) == 4
    assert (await api.post(MEMBER_VOUCHERS, token=bob_token))["data"]["viewer"]["member"]["vouchers"]["edges"] == []


# --- the race ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_20_parallel_write_offs_of_one_code_use_it_once(api, backend):
    merchant = await make_merchant()
    tokens = [(await make_staff(merchant))[2] for _ in range(4)]
    member_id, _ = await make_member()
    code, _ = await issue_voucher(member_id, merchant)
    results = await asyncio.gather(*(
        api.post(WRITE_OFF, write_off_input(code), token=tokens[i % len(tokens)]) for i in range(20)
    ))
    payloads = [r["data"]["voucherWriteOff"] for r in results]
    wins = [p for p in payloads if not p["userErrors"]]
    assert len(wins) == 1 and wins[0]["voucher"]["status"] == "USED"
    assert sorted(errors(p)[0] for p in payloads if p["userErrors"]) == ["VOUCHER_ALREADY_USED"] * 19
    row = await voucher_row(code)
    assert row["status"] == "USED" and row["audits"] == 1
