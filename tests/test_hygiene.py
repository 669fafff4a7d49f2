"""Issue 11, findings 9 and 10 (service side): identifiers and names free of control characters,
times within plausible bounds, scheduled runs that refuse impossible dates, and member codes that
back only purchases made within their lifetime. Each test runs on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.services import clock, integrations, members, signing, staff, text
from api.services.errors import DomainError
from tests.conftest import (
    PAY,
    PURCHASE,
    REFUND,
    code_for,
    make_member,
    make_merchant,
    purchase_input,
    snapshot,
    unique,
)
from tests.mall_helpers import FLASH, funded_member, operator_token, state
from tests.parking_helpers import ENTRY as ENTRY_MUTATION
from tests.parking_helpers import EXIT as EXIT_MUTATION

BATCH = """
mutation($input: PurchaseRecordBatchInput!) {
  purchaseRecordBatch(input: $input) { results { pointsEarned userErrors { field code } } userErrors { code } }
}"""
PROFILE = """
mutation($i: MemberProfileUpdateInput!) {
  memberProfileUpdate(input: $i) { member { nickname } userErrors { field code message } }
}"""
CONTROLS = ["\x00", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\u2069", "\u200f"]


def _errors(result: dict, name: str) -> list[tuple[str, list[str] | None]]:
    assert "errors" not in result, result
    return [(e["code"], e["field"]) for e in result["data"][name]["userErrors"]]


# --- finding 10: a member code backs only purchases within its lifetime ------------------------

async def test_offline_upload_from_before_the_code_was_issued_is_refused(api):
    member_id, _ = await make_member()
    issued = clock.now()
    code = code_for(member_id)  # issued now, valid for 120 s
    before = await snapshot(member_id)
    for occurred in (issued - timedelta(days=14), issued - timedelta(minutes=6)):
        result = await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000, code=code,
                                                                     occurred_at=occurred)})
        assert _errors(result, "purchaseRecord") == [("MEMBER_CODE_EXPIRED", ["memberCode"])], occurred
        assert "issued after occurredAt" in result["data"]["purchaseRecord"]["userErrors"][0]["message"]
    batch = await api.signed(BATCH, {"input": {"purchases": [
        purchase_input(member_id, 5000, code=code, occurred_at=issued - timedelta(days=3)),
    ]}})
    assert batch["data"]["purchaseRecordBatch"]["results"][0]["userErrors"] == [
        {"field": ["purchases", "0", "memberCode"], "code": "MEMBER_CODE_EXPIRED"}]
    assert await snapshot(member_id) == before


async def test_offline_upload_within_the_tolerance_before_issue_is_accepted(api):
    """signing.MEMBER_CODE_CLOCK_SKEW (5 minutes): a till whose clock runs behind still books."""
    member_id, _ = await make_member()
    issued = clock.now()
    code = code_for(member_id)
    clock.freeze(issued + timedelta(hours=1))  # uploaded an hour later
    ok = await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000, code=code,
                                                             occurred_at=issued - timedelta(minutes=4))})
    assert ok["data"]["purchaseRecord"]["pointsEarned"] == 50
    inside = await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000, code=code,
                                                                 occurred_at=issued + timedelta(seconds=60))})
    assert inside["data"]["purchaseRecord"]["pointsEarned"] == 50


def test_a_code_issued_earlier_covers_its_own_lifetime_only():
    issued = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    code, exp = signing.issue_member_code(42, 120, issued_at=issued)
    assert exp == int(issued.timestamp()) + 120
    assert signing.read_member_code(code, as_of=issued) == 42
    assert signing.read_member_code(code, as_of=issued - signing.MEMBER_CODE_CLOCK_SKEW) == 42
    for as_of in (issued - signing.MEMBER_CODE_CLOCK_SKEW - timedelta(seconds=1), issued + timedelta(seconds=121)):
        with pytest.raises(DomainError) as refused:
            signing.read_member_code(code, as_of=as_of)
        assert refused.value.code.value == "MEMBER_CODE_EXPIRED"


# --- finding 9: identifiers and names free of control characters ------------------------------

@pytest.mark.parametrize("bad", ["R\x00X", "R\u202eX", "\x1bR", "R\x85X"])
async def test_receipt_numbers_with_control_characters_are_refused_and_nothing_is_booked(api, bad):
    member_id, _ = await make_member()
    booked = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)})
    assert booked["data"]["purchaseRecord"]["pointsEarned"] == 100
    before = await snapshot(member_id)
    result = await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000, receipt=bad)})
    assert _errors(result, "purchaseRecord") == [("INVALID_INPUT", ["receiptNo"])]
    assert "control characters" in result["data"]["purchaseRecord"]["userErrors"][0]["message"]
    pay = {"memberCode": code_for(member_id), "merchantCode": "M001", "receiptNo": bad, "points": 100,
           "idempotencyKey": unique("K")}
    assert _errors(await api.signed(PAY, {"input": pay}), "pointsPay") == [("INVALID_INPUT", ["receiptNo"])]
    refund = {"merchantCode": "M001", "receiptNo": bad, "refundAmountFen": 100, "idempotencyKey": unique("K")}
    assert _errors(await api.signed(REFUND, {"input": refund}), "purchaseRefund") == [("INVALID_INPUT", ["receiptNo"])]
    assert await snapshot(member_id) == before


async def test_a_batch_refuses_the_receipt_with_nul_and_books_the_others(api):
    """On PostgreSQL a NUL used to fail the whole group commit; now it is one item's userError."""
    member_id, _ = await make_member()
    good = [purchase_input(member_id, 1000), purchase_input(member_id, 2000)]
    bad = purchase_input(member_id, 3000, receipt="R\x00" + unique())
    result = await api.signed(BATCH, {"input": {"purchases": [good[0], bad, good[1]]}})
    payload = result["data"]["purchaseRecordBatch"]
    assert [r["pointsEarned"] for r in payload["results"]] == [10, None, 20]
    assert payload["results"][1]["userErrors"] == [{"field": ["purchases", "1", "receiptNo"], "code": "INVALID_INPUT"}]
    assert (await snapshot(member_id))["purchases"] == 2


async def test_other_till_identifiers_with_control_characters_are_refused(api):
    member_id, _ = await make_member()
    before = await snapshot(member_id)
    cases = [
        ({"idempotencyKey": "K\x00" + unique()}, "INVALID_INPUT", ["idempotencyKey"]),
        ({"merchantCode": "M001\x00"}, "NOT_FOUND", ["merchantCode"]),
        ({"memberCode": code_for(member_id)[:31] + "\x00"}, "NOT_FOUND", ["memberCode"]),
        ({"memberCode": "²" * 32}, "NOT_FOUND", ["memberCode"]),  # str.isdigit, not int(): was an internal error
        ({"occurredAt": "0001-01-01T00:00:00+08:00"}, "INVALID_INPUT", ["occurredAt"]),
    ]
    for change, code, field in cases:
        result = await api.signed(PURCHASE, {"input": {**purchase_input(member_id, 5000), **change}})
        assert _errors(result, "purchaseRecord") == [(code, field)], change
    assert await snapshot(member_id) == before


@pytest.mark.parametrize("bad", CONTROLS)
async def test_nicknames_with_control_characters_are_refused(api, bad):
    member_id, token = await make_member()
    ok = await api.post(PROFILE, {"i": {"nickname": "小明"}}, token=token)
    assert ok["data"]["memberProfileUpdate"]["member"]["nickname"] == "小明"
    result = await api.post(PROFILE, {"i": {"nickname": f"Ann{bad}a"}}, token=token)
    assert _errors(result, "memberProfileUpdate") == [("INVALID_INPUT", ["nickname"])]
    stored = await members.get_member(member_id)
    assert stored is not None and stored.nickname == "小明"
    emoji = await api.post(PROFILE, {"i": {"nickname": "👩\u200d👩\u200d👧 家"}}, token=token)  # ZWJ stays allowed
    assert _errors(emoji, "memberProfileUpdate") == []


async def test_operators_search_with_control_characters_is_answered(backend):
    member_id, _ = await make_member()
    await members.update_profile(member_id, nickname=unique("搜"))
    member = await members.get_member(member_id)
    assert member is not None
    nickname = member.nickname
    found = await members.search_members(f"{nickname}\x00", 10, None)
    assert [m.id for m in found] == [member_id]


async def test_staff_and_key_names_with_control_characters_are_refused(backend):
    actor = ("operator", "1")
    with pytest.raises(DomainError) as refused:
        await staff.create(actor, "M001", unique("clerk"), "Ann\x00", "a-long-password-1")
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["displayName"])
    with pytest.raises(DomainError) as refused:
        await staff.login("clerk\x00" + unique(), "whatever-password")
    assert refused.value.code.value == "INVALID_CREDENTIALS"
    with pytest.raises(DomainError) as refused:
        await integrations.create_key("till\u202e", ["M001"], actor)
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["name"])
    with pytest.raises(DomainError) as refused:
        await integrations.create_key("till", ["M001\x00"], actor)
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["merchantCodes"])
    with pytest.raises(DomainError) as refused:
        await integrations.revoke_key("demo-pos\x00", actor)
    assert (refused.value.code.value, refused.value.field) == ("NOT_FOUND", ["keyId"])


async def test_signed_headers_with_control_characters_are_unauthenticated(backend):
    from api.services.errors import AuthError

    ts = str(int(clock.now().timestamp()))
    for key_id, nonce in (("demo-pos", "n\x00" + unique()), ("demo\x00pos", unique("n"))):
        signature = integrations.sign("test-pos-secret", ts, nonce, b"{}")
        with pytest.raises(AuthError) as refused:
            await integrations.authenticate(key_id, ts, nonce, signature, b"{}")
        assert refused.value.code == "UNAUTHENTICATED"


def test_the_validator_knows_its_characters():
    for ch in CONTROLS + ["\x01", "\x9f", "\u202a", "\u2068", "\u061c"]:
        assert text.control_char(f"a{ch}b") == ch
    for fine in ("收据-001/A", "👩\u200d👧", "Zoë", "a b"):
        assert text.control_char(fine) is None
    assert text.strip_controls("a\x00b\u202ec") == "abc"
    with pytest.raises(DomainError):
        text.identifier(" \t ", "receiptNo")


# --- finding 9: dates within plausible bounds --------------------------------------------------

def test_add_months_is_total():
    utc = timezone.utc
    assert clock.add_months(datetime(2024, 1, 31, tzinfo=utc), 1) == datetime(2024, 2, 29, tzinfo=utc)
    assert clock.add_months(datetime(2023, 3, 31, tzinfo=utc), -13) == datetime(2022, 2, 28, tzinfo=utc)
    assert clock.add_months(datetime(1, 1, 1, tzinfo=utc), -12) == datetime.min.replace(tzinfo=utc)
    assert clock.add_months(datetime(9999, 12, 1, tzinfo=utc), 24) == datetime.max.replace(tzinfo=utc)
    assert clock.add_months(datetime(9999, 12, 31, tzinfo=utc), 0) == datetime(9999, 12, 31, tzinfo=utc)


@pytest.mark.parametrize("value", [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=8))),
    datetime(1, 1, 1, tzinfo=timezone.utc),
    datetime(1899, 12, 31, tzinfo=timezone.utc),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2200, 1, 1, tzinfo=timezone.utc),
    datetime(2026, 11, 23, 10, 0),  # naive
])
def test_impossible_times_are_invalid_input(value):
    with pytest.raises(DomainError) as refused:
        clock.to_utc(value, ["asOf"])
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["asOf"])


def test_as_of_window():
    now = clock.now()
    clock.freeze(now)
    assert clock.check_as_of(None) == now
    assert clock.check_as_of(now - timedelta(days=400)) == now - timedelta(days=400)
    assert clock.check_as_of(now - clock.RUN_MAX_AGE) == now - clock.RUN_MAX_AGE
    for bad in (now + timedelta(hours=1), now - clock.RUN_MAX_AGE - timedelta(seconds=1),
                datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(1, 1, 1, tzinfo=timezone.utc)):
        with pytest.raises(DomainError) as refused:
            clock.check_as_of(bad)
        assert refused.value.field == ["asOf"]


def test_parking_entry_and_paid_at_windows():
    now = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    assert text.check_parking_entry(now - timedelta(hours=3), ["input", "enteredAt"], now) == now - timedelta(hours=3)
    assert text.check_paid_at(now + timedelta(minutes=1), "paidAt", now) == now + timedelta(minutes=1)
    for bad in (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(1, 1, 1, tzinfo=timezone.utc),
                now - timedelta(days=31), now + timedelta(minutes=6), datetime(9999, 1, 1, tzinfo=timezone.utc),
                now.replace(tzinfo=None)):
        with pytest.raises(DomainError) as refused:
            text.check_parking_entry(bad, ["input", "enteredAt"], now)
        assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["input", "enteredAt"])
        with pytest.raises(DomainError) as refused:
            text.check_paid_at(bad, "paidAt", now)
        assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["paidAt"])


RUNS = {
    "mallOrdersExpireRun": "mallOrdersExpireRun(input: {asOf: $at}) { ordersExpired userErrors { field code } }",
    "earningScheduleRun": "earningScheduleRun(input: {asOf: $at}) { pointsExpired userErrors { field code } }",
    "pointsExpireRun": "pointsExpireRun(input: {asOf: $at}) { pointsExpired userErrors { field code } }",
    "tierEvaluationRun": "tierEvaluationRun(input: {asOf: $at}) { membersEvaluated userErrors { field code } }",
}


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-08:00"])
async def test_scheduled_runs_refuse_impossible_dates_with_a_user_error(api, run, at):
    token = await operator_token(api)
    result = await api.post(f"mutation($at: DateTime) {{ {RUNS[run]} }}", {"at": at}, token=token, admin=True)
    assert "errors" not in result, result
    errors = result["data"][run]["userErrors"]
    assert [e["code"] for e in errors] == ["INVALID_INPUT"], result
    if run == "earningScheduleRun":  # clock.check_as_of names the field
        assert errors[0]["field"] == ["asOf"]


async def test_an_invite_code_with_a_control_character_is_unknown_and_registers_no_one(api):
    from tests.conftest import TEST_SMS_CODE, new_phone

    phone = new_phone()
    await members.request_sms_code(phone)  # straight to the service: the per-address limit is not tested here
    login = """mutation($i: AuthSmsLoginInput!) { authSmsLogin(input: $i) { token userErrors { field code } } }"""
    result = await api.post(login, {"i": {"phone": phone, "code": TEST_SMS_CODE, "inviteCode": "AB\x00CD"}})
    assert result["data"]["authSmsLogin"] == {"token": None, "userErrors": [
        {"field": ["inviteCode"], "code": "INVITE_CODE_INVALID"}]}
    assert await members.search_members(phone[-8:], 5, None) == []


async def test_the_earning_schedule_refuses_an_as_of_more_than_ten_years_ago(api):
    token = await operator_token(api)
    for at in ("1970-01-01T00:00:00Z", (clock.now() - timedelta(days=3661)).isoformat()):
        result = await api.post(f"mutation($at: DateTime) {{ {RUNS['earningScheduleRun']} }}", {"at": at}, token=token,
                                admin=True)
        assert result["data"]["earningScheduleRun"]["userErrors"] == [{"field": ["asOf"], "code": "INVALID_INPUT"}]


@pytest.mark.parametrize("run", ["pointsExpireRun", "tierEvaluationRun", "mallOrdersExpireRun"])
async def test_operators_runs_refuse_an_as_of_more_than_ten_years_ago(api, run):
    """operators.runs._run goes through clock.check_as_of, like the earning schedule."""
    token = await operator_token(api)
    for at in ("1970-01-01T00:00:00Z", (clock.now() - timedelta(days=3661)).isoformat()):
        result = await api.post(f"mutation($at: DateTime) {{ {RUNS[run]} }}", {"at": at}, token=token, admin=True)
        assert result["data"][run]["userErrors"] == [{"field": ["asOf"], "code": "INVALID_INPUT"}], (at, result)
    fine = await api.post(f"mutation($at: DateTime) {{ {RUNS[run]} }}",
                          {"at": (clock.now() - timedelta(days=400)).isoformat()}, token=token, admin=True)
    assert fine["data"][run]["userErrors"] == [], fine


async def test_the_command_line_runs_refuse_an_as_of_in_1970(backend):
    from api.services import operators

    for run in (operators.run_expiry, operators.run_order_expiry, operators.run_tier_evaluation):
        with pytest.raises(DomainError) as refused:
            await run(("cli", None), datetime(1970, 1, 1, tzinfo=timezone.utc))
        assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["asOf"]), run


# --- finding 9: every mutation's idempotency key (idempotency.check_key) ---------------------------

@pytest.mark.parametrize("bad", ["K\x00", "K\u202e", "\x1bK"])
async def test_idempotency_keys_with_control_characters_are_refused_everywhere(api, bad):
    """Flash sale, lucky draw, voucher write-off, operator adjustment: INVALID_INPUT on the key,
    nothing written (PostgreSQL used to answer an internal error, SQLite booked the key)."""
    from api.schema.ids import to_global_id
    from tests.test_draws import PLAY, new_game
    from tests.test_flash_sale import new_sale
    from tests.test_vouchers import WRITE_OFF, issue_voucher, make_staff

    op = await operator_token(api)
    key = bad + unique()
    member_id, token = await funded_member(500)
    merchant = await make_merchant()
    _, _, staff_token = await make_staff(merchant)
    code, _ = await issue_voucher(member_id, merchant)
    before = await state(member_id)
    sale = await new_sale(api, op, stock=2)
    flash = await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": key}}, token=token)
    assert _errors(flash, "flashSaleRedeem") == [("INVALID_INPUT", ["input", "idempotencyKey"])]
    game = await new_game(api, op, [{"name": "谢谢", "kind": "NOTHING", "weight": 1}])
    draw = await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}}, token=token)
    assert _errors(draw, "luckyDrawPlay") == [("INVALID_INPUT", ["input", "idempotencyKey"])]
    write_off = await api.post(WRITE_OFF, {"i": {"code": code, "idempotencyKey": key}}, token=staff_token)
    assert _errors(write_off, "voucherWriteOff") == [("INVALID_INPUT", ["idempotencyKey"])]
    adjust = await api.post(
        """mutation($i: PointsAdjustInput!) { pointsAdjust(input: $i) { entry { points } userErrors { code field } } }""",
        {"i": {"memberId": to_global_id("Member", member_id), "points": 50, "reason": "补偿", "idempotencyKey": key}},
        token=op, admin=True)
    assert _errors(adjust, "pointsAdjust") == [("INVALID_INPUT", ["idempotencyKey"])]
    assert await state(member_id) == before
    assert (await api.post(FLASH, {"i": {"flashSaleId": sale["id"], "idempotencyKey": unique("K")}},
                           token=token))["data"]["flashSaleRedeem"]["userErrors"] == []  # the sale itself works


# --- finding 9: operators' names and codes ----------------------------------------------------------

OPERATORS_CREATE = {
    "operatorCreate": ("OperatorCreateInput", "operator { id }"),
    "merchantCreate": ("MerchantCreateInput", "merchant { id }"),
    "tierCreate": ("TierCreateInput", "tier { id }"),
    "earnRuleCreate": ("EarnRuleCreateInput", "rule { id }"),
    "taskCreate": ("TaskCreateInput", "task { id }"),
}


def _operators_cases(bad: str) -> list[tuple[str, dict, list[str]]]:
    user = unique("op").lower()  # the character goes inside: U+0085 at an end is blank, stripped
    rule = {"code": unique("R"), "name": "规则", "trigger": "SHARE", "action": "FIXED_POINTS", "actionValue": 5}
    task = {"code": unique("T"), "name": "任务", "period": "DAILY", "metric": "SHARE", "target": 2, "rewardPoints": 5}
    password = "a-long-password-1"
    return [
        ("operatorCreate", {"username": user[:3] + bad + user[3:], "password": password, "roles": ["SERVICE"]}, ["username"]),
        ("operatorCreate", {"username": user, "displayName": f"Ann{bad}a", "password": password, "roles": ["SERVICE"]},
         ["displayName"]),
        ("merchantCreate", {"code": f"M{bad}" + unique(), "name": "店"}, ["input", "code"]),
        ("merchantCreate", {"code": unique("M"), "name": f"店{bad}铺"}, ["input", "name"]),
        ("merchantCreate", {"code": unique("M"), "name": "店", "category": f"餐{bad}饮"}, ["input", "category"]),
        ("tierCreate", {"code": f"T{bad}X", "name": "钻石", "growthThreshold": 987_654}, ["input", "code"]),
        ("tierCreate", {"code": unique("T").upper(), "name": f"钻{bad}石", "growthThreshold": 987_654}, ["input", "name"]),
        ("tierCreate", {"code": unique("T").upper(), "name": "钻石", "growthThreshold": 987_654,
                        "benefits": ["免费停车", f"生日{bad}礼"]}, ["input", "benefits"]),
        ("earnRuleCreate", {**rule, "code": f"R{bad}" + rule["code"]}, ["input", "code"]),
        ("earnRuleCreate", {**rule, "name": f"规{bad}则"}, ["input", "name"]),
        ("earnRuleCreate", {**rule, "stacking": "BEST_OF", "stackGroup": f"G{bad}1"}, ["input", "stackGroup"]),
        ("taskCreate", {**task, "code": f"T{bad}" + task["code"]}, ["input", "code"]),
        ("taskCreate", {**task, "name": f"任{bad}务"}, ["input", "name"]),
    ]


@pytest.mark.parametrize("bad", ["\x00", "\u202e", "\x85"])
async def test_operators_names_and_codes_with_control_characters_are_refused(api, bad):
    from api import db

    token = await operator_token(api)
    audits = (await db.fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"]
    wrong = []
    for mutation, data, field in _operators_cases(bad):
        input_type, selection = OPERATORS_CREATE[mutation]
        result = await api.post(f"mutation($i: {input_type}!) {{ {mutation}(input: $i) {{ {selection} "
                                "userErrors { code field } } }", {"i": data}, token=token, admin=True)
        answer = result.get("errors") or result["data"][mutation]["userErrors"]
        if answer != [{"code": "INVALID_INPUT", "field": field}]:
            wrong.append((mutation, field, answer))
    assert wrong == [], wrong
    assert (await db.fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"] == audits  # nothing written


async def test_operator_names_are_checked_on_update_too(backend):
    from api.services import merchants, operators, tiers

    actor = ("operator", "1")
    op = await operators.create_operator(unique("op").lower(), None, "a-long-password-1", ["SERVICE"])
    with pytest.raises(DomainError) as refused:
        await operators.update_operator(1, ["ADMIN"], op.id, display_name="Bob\u2066")
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["input", "displayName"])
    merchant = await merchants.by_code("M001", ["merchantCode"])
    with pytest.raises(DomainError) as refused:
        await merchants.update(actor, merchant.id, name="商\x00户")
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["input", "name"])
    tier = (await tiers.all_tiers())[0]
    with pytest.raises(DomainError) as refused:
        await tiers.update(actor, tier.id, name="普\x1b通")
    assert (refused.value.code.value, refused.value.field) == ("INVALID_INPUT", ["input", "name"])
    assert (await merchants.by_code("M001", ["merchantCode"])).name == merchant.name


@pytest.mark.parametrize("bad", ["\x00", "\u202e"])
async def test_operator_login_with_a_control_character_is_wrong_credentials(api, bad):
    login = """mutation($i: OperatorLoginInput!) { operatorLogin(input: $i) { token userErrors { code field } } }"""
    result = await api.post(login, {"i": {"username": f"admin{bad}", "password": "admin-demo-password"}}, admin=True)
    assert "errors" not in result, result
    assert result["data"]["operatorLogin"] == {"token": None, "userErrors": [
        {"code": "INVALID_CREDENTIALS", "field": ["password"]}]}


# --- finding 9: parking and payment notifications from outside systems -----------------------------

async def test_parking_entry_times_and_event_ids_are_checked(api):
    from tests.parking_helpers import CarParkSystem, bound_key, new_car_park, new_plate, parking_state

    op = await operator_token(api)
    code = await new_car_park(api, op)
    park = CarParkSystem(api, await bound_key(code), code)
    now = clock.now()
    plate = new_plate()
    before = await parking_state(None, plate)
    for entered in ("1970-01-01T00:00:00+08:00", "0001-01-01T00:00:00+00:00", (now - timedelta(days=31)).isoformat(),
                    (now + timedelta(minutes=6)).isoformat(), now.replace(tzinfo=None).isoformat()):
        result = await park.call(ENTRY_MUTATION, {"plate": plate, "enteredAt": entered, "eventId": unique("in")},
                                 "parkingEntryRecord")
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("INVALID_INPUT", ["input", "enteredAt"])], \
            (entered, result)
    for event in ("in\x00" + unique(), "in\u202e" + unique()):
        result = await park.call(ENTRY_MUTATION, {"plate": plate, "enteredAt": now.isoformat(), "eventId": event},
                                 "parkingEntryRecord")
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("INVALID_INPUT", ["input", "eventId"])]
    unknown = await api.signed(ENTRY_MUTATION, {"i": {"carParkCode": code + "\x00", "plate": plate,
                                                      "enteredAt": now.isoformat(), "eventId": unique("in")}},
                               key_id=park.key_id, secret=park.secret)
    assert "errors" not in unknown, unknown
    assert [(e["code"], e["field"]) for e in unknown["data"]["parkingEntryRecord"]["userErrors"]] == [
        ("NOT_FOUND", ["input", "carParkCode"])]
    assert await parking_state(None, plate) == before
    opened = await park.entry(plate, at=now - timedelta(days=2))  # within 30 days: a stay opens
    assert opened["userErrors"] == [] and opened["session"]["status"] == "OPEN"
    for exited, event in ((now.replace(tzinfo=None).isoformat(), unique("out")),
                          ("9999-12-31T23:00:00-08:00", unique("out")),
                          ((now + timedelta(minutes=6)).isoformat(), unique("out"))):
        result = await park.call(EXIT_MUTATION, {"plate": plate, "exitedAt": exited, "eventId": event, "paid": True},
                                 "parkingExitRecord")
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("INVALID_INPUT", ["input", "exitedAt"])]
    result = await park.call(EXIT_MUTATION, {"plate": plate, "exitedAt": now.isoformat(), "eventId": "out\x00",
                                             "paid": True}, "parkingExitRecord")
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("INVALID_INPUT", ["input", "eventId"])]
    closed = await park.exit(plate)
    assert closed["userErrors"] == [] and closed["session"]["status"] == "CLOSED"


async def test_payment_notifications_check_paid_at_and_identifiers(api):
    from tests.mall_helpers import CHECKOUT, NOTIFY, create_product, payment_key

    op = await operator_token(api)
    product = await create_product(api, op, kind="GOODS", pointsPrice=200, cashPriceFen=1990, stock=3)
    member_id, token = await funded_member(500)
    created = (await api.post(CHECKOUT, {"i": {"productId": product["id"], "idempotencyKey": unique("K")}},
                              token=token))["data"]["checkoutCreate"]
    assert created["userErrors"] == []
    before = await state(member_id, product["id"])
    key_id, secret = await payment_key()
    now = clock.now()
    notify = {"outTradeNo": created["paymentRequest"]["outTradeNo"], "transactionId": unique("wx"),
              "amountFen": 1990, "paidAt": now.isoformat()}
    cases = [
        ({"paidAt": now.replace(tzinfo=None).isoformat()}, "INVALID_INPUT", ["input", "paidAt"]),
        ({"paidAt": "9999-01-01T00:00:00+00:00"}, "INVALID_INPUT", ["input", "paidAt"]),
        ({"paidAt": "1970-01-01T00:00:00+00:00"}, "INVALID_INPUT", ["input", "paidAt"]),
        ({"paidAt": (now + timedelta(minutes=6)).isoformat()}, "INVALID_INPUT", ["input", "paidAt"]),
        ({"transactionId": "wx\x00" + unique()}, "INVALID_INPUT", ["input", "transactionId"]),
        ({"outTradeNo": notify["outTradeNo"] + "\x00"}, "NOT_FOUND", ["input", "outTradeNo"]),
    ]
    for change, code, field in cases:
        result = await api.signed(NOTIFY, {"i": {**notify, **change}}, key_id=key_id, secret=secret)
        assert _errors(result, "paymentNotify") == [(code, field)], change
        assert await state(member_id, product["id"]) == before
    paid = (await api.signed(NOTIFY, {"i": notify}, key_id=key_id, secret=secret))["data"]["paymentNotify"]
    assert paid["userErrors"] == [] and paid["paymentStatus"] == "PAID"


# --- finding 9: names in the mall, the draws and the car parks -----------------------------------

@pytest.mark.parametrize("bad", ["\x00", "\u202e"])
async def test_mall_draw_and_car_park_names_with_control_characters_are_refused(api, bad):
    from api import db
    from tests.mall_helpers import PRODUCT_CREATE, create_product, later
    from tests.parking_helpers import CAR_PARK_CREATE
    from tests.test_draws import GAME_CREATE
    from tests.test_flash_sale import SALE_CREATE

    op = await operator_token(api)
    product = await create_product(api, op, kind="COUPON", stock=0)
    audits = (await db.fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"]
    game = {"name": unique("转盘"), "kind": "WHEEL", "costPoints": 10, "startsAt": later(minutes=-1),
            "endsAt": later(days=1), "prizes": [{"name": "谢谢参与", "kind": "NOTHING", "weight": 1}]}
    sale = {"productId": product["id"], "title": unique("秒杀"), "pointsPrice": 100, "stock": 1,
            "startsAt": later(minutes=-1), "endsAt": later(hours=1)}
    car_park = {"code": unique("P"), "name": "停车场", "freeMinutes": 15, "hourlyFen": 500, "offsetPointsPerYuan": 100}
    goods = {"kind": "GOODS", "name": "杯子", "pointsPrice": 100, "stock": 1}
    cases = [
        (GAME_CREATE, "drawGameCreate", {**game, "name": f"转{bad}盘"}, ["input", "name"]),
        (GAME_CREATE, "drawGameCreate", {**game, "prizes": [{"name": f"谢{bad}谢", "kind": "NOTHING", "weight": 1}]},
         ["input", "prizes", "0", "name"]),
        (SALE_CREATE, "flashSaleCreate", {**sale, "title": f"秒{bad}杀"}, ["input", "title"]),
        (CAR_PARK_CREATE, "carParkCreate", {**car_park, "name": f"停{bad}车场"}, ["input", "name"]),
        (CAR_PARK_CREATE, "carParkCreate", {**car_park, "code": f"P{bad}1"}, ["input", "code"]),
        (PRODUCT_CREATE, "productCreate", {**goods, "name": f"杯{bad}子"}, ["input", "name"]),
        (PRODUCT_CREATE, "productCreate", {**goods, "zone": f"金{bad}卡"}, ["input", "zone"]),
    ]
    wrong = []
    for query, name, data, field in cases:
        result = await api.post(query, {"i": data}, token=op, admin=True)
        answer = result.get("errors") or [{"code": e["code"], "field": e["field"]} for e in result["data"][name]["userErrors"]]
        if answer != [{"code": "INVALID_INPUT", "field": field}]:
            wrong.append((name, field, answer))
    assert wrong == [], wrong
    assert (await db.fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"] == audits  # nothing written


async def test_browsing_a_zone_with_a_control_character_finds_nothing(api):
    from tests.mall_helpers import create_product

    op = await operator_token(api)
    zone = unique("Z")[:16]
    product = await create_product(api, op, kind="GOODS", zone=zone, stock=1)
    browse = """query($z: String) { products(first: 5, zone: $z) { edges { node { id } } } }"""
    found = await api.post(browse, {"z": zone})
    assert [e["node"]["id"] for e in found["data"]["products"]["edges"]] == [product["id"]]
    nothing = await api.post(browse, {"z": zone + "\x00"})
    assert "errors" not in nothing, nothing
    assert nothing["data"]["products"]["edges"] == []


async def test_voucher_codes_with_control_characters_are_unknown(api):
    """Staff lookup, write-off and a parking offset's coupon: no voucher has such a code (it used to
    be an internal error on PostgreSQL)."""
    from tests.parking_helpers import CarParkSystem, bind, bound_key, member, new_car_park, new_plate, offset
    from tests.test_vouchers import LOOKUP, WRITE_OFF, make_staff

    merchant = await make_merchant()
    _, _, staff_token = await make_staff(merchant)
    for code in ("AB\x00CD", "MPV1:AB\x00CD", "\u202eABCD"):
        found = await api.post(LOOKUP, {"c": code}, token=staff_token)
        assert found == {"data": {"voucherLookup": None}}, found
        written = await api.post(WRITE_OFF, {"i": {"code": code, "idempotencyKey": unique("W")}}, token=staff_token)
        assert _errors(written, "voucherWriteOff") == [("NOT_FOUND", ["code"])]
    op = await operator_token(api)
    park_code = await new_car_park(api, op)
    park = CarParkSystem(api, await bound_key(park_code), park_code)
    member_id, token = await member(1000)
    plate = new_plate()
    assert (await bind(api, token, plate))["userErrors"] == []
    stay = (await park.entry(plate))["session"]
    result = await offset(api, token, stay["id"], 0, ["AB\x00CD"])
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("NOT_FOUND", ["input", "couponCodes", "0"])]


def test_the_command_line_refuses_an_as_of_in_1970_in_one_line(tmp_path):
    from tests.test_schema_and_cli import _cli

    assert _cli(tmp_path, "migrate").returncode == 0
    for command in ("expire", "orders-expire", "tiers-evaluate"):
        result = _cli(tmp_path, command, "--as-of", "1970-01-01T00:00:00+08:00")
        assert result.returncode != 0, (command, result.stdout)
        assert "asOf may be at most ten years ago (INVALID_INPUT)" in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
