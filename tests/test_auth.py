"""Sign-in, tokens, signatures and who may read what."""
from __future__ import annotations

import json
from datetime import timedelta

from api.db import fetch
from api.services import clock, installation
from api.services.members import mask_phone, normalize_phone
from tests.conftest import (
    PURCHASE,
    TEST_SMS_CODE,
    make_member,
    new_phone,
    purchase_input,
    redis_keys,
    snapshot,
    unique,
)

REQUEST = 'mutation($p: String!) { authSmsCodeRequest(input: {phone: $p}) { codeExpiresAt userErrors { code field } } }'
LOGIN = """mutation($p: String!, $c: String!) { authSmsLogin(input: {phone: $p, code: $c}) {
  token registered member { id phone phoneMasked tier { code } pointsBalance } userErrors { code field } } }"""
VIEWER = "{ viewer { member { id phone phoneMasked nickname memberCode { code expiresAt } } } }"


def test_phone_normalisation_and_masking():
    assert normalize_phone("138 0013 8000") == "+8613800138000"
    assert normalize_phone("+86 138-0013-8000") == "+8613800138000"
    assert mask_phone("+8613800138000") == "138****8000"


async def test_first_login_registers_then_logs_in(api):
    phone = new_phone()
    sent = (await api.post(REQUEST, {"p": phone}))["data"]["authSmsCodeRequest"]
    assert sent["userErrors"] == [] and sent["codeExpiresAt"]
    first = (await api.post(LOGIN, {"p": phone, "c": TEST_SMS_CODE}))["data"]["authSmsLogin"]
    assert first["registered"] is True and first["member"]["tier"]["code"] == "NORMAL"
    assert first["member"]["phone"] is None or first["member"]["phone"] == phone
    me = (await api.post(VIEWER, token=first["token"]))["data"]["viewer"]["member"]
    assert me["phone"] == phone and me["phoneMasked"] == mask_phone(phone)
    assert len(me["memberCode"]["code"]) == 32
    clock.freeze(clock.now() + timedelta(seconds=61))
    await api.post(REQUEST, {"p": phone})
    again = (await api.post(LOGIN, {"p": phone, "c": TEST_SMS_CODE}))["data"]["authSmsLogin"]
    assert again["registered"] is False and again["member"]["id"] == first["member"]["id"]


async def test_code_is_single_use_resend_is_limited_and_five_wrong_tries_burn_it(api):
    phone = new_phone()
    await api.post(REQUEST, {"p": phone})
    too_soon = (await api.post(REQUEST, {"p": phone}))["data"]["authSmsCodeRequest"]
    assert too_soon["userErrors"][0]["code"] == "RATE_LIMITED"
    for _ in range(5):
        wrong = (await api.post(LOGIN, {"p": phone, "c": "000000"}))["data"]["authSmsLogin"]
        assert wrong["userErrors"][0]["code"] == "SMS_CODE_INVALID" and wrong["token"] is None
    burnt = (await api.post(LOGIN, {"p": phone, "c": TEST_SMS_CODE}))["data"]["authSmsLogin"]
    assert burnt["userErrors"][0]["code"] == "SMS_CODE_INVALID"
    assert not await fetch("SELECT id FROM member WHERE phone = $1", normalize_phone(phone))


async def test_code_expires_after_five_minutes(api):
    phone = new_phone()
    await api.post(REQUEST, {"p": phone})
    clock.freeze(clock.now() + timedelta(minutes=5, seconds=1))
    late = (await api.post(LOGIN, {"p": phone, "c": TEST_SMS_CODE}))["data"]["authSmsLogin"]
    assert late["userErrors"][0]["code"] == "SMS_CODE_INVALID"


async def test_bad_phone_is_invalid_input(api):
    result = (await api.post(REQUEST, {"p": "12345"}))["data"]["authSmsCodeRequest"]
    assert result["userErrors"] == [{"code": "INVALID_INPUT", "field": ["phone"]}]


async def test_profile_update(api):
    _, token = await make_member()
    update = """mutation($i: MemberProfileUpdateInput!) { memberProfileUpdate(input: $i) {
      member { nickname gender birthday } userErrors { code field } } }"""
    ok = (await api.post(update, {"i": {"nickname": "小红", "gender": "FEMALE", "birthday": "1995-05-20"}}, token=token))
    assert ok["data"]["memberProfileUpdate"]["member"] == {"nickname": "小红", "gender": "FEMALE", "birthday": "1995-05-20"}
    bad = (await api.post(update, {"i": {"nickname": "x" * 33}}, token=token))["data"]["memberProfileUpdate"]
    assert bad["userErrors"] == [{"code": "INVALID_INPUT", "field": ["nickname"]}]
    anonymous = await api.post(update, {"i": {"nickname": "a"}})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- signatures --------------------------------------------------------------------------------

def _refused(result) -> bool:
    return result["data"] is None and result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_signature_faults_are_refused_and_record_nothing(api):
    member_id, _ = await make_member()
    variables = {"input": purchase_input(member_id, 10_000)}
    before = await snapshot(member_id)
    nonces_before = await fetch("SELECT COUNT(*) AS n FROM integration_nonce")
    assert _refused(await api.signed(PURCHASE, variables, secret="wrong-secret"))
    assert _refused(await api.signed(PURCHASE, variables, timestamp=int(clock.now().timestamp()) - 301))
    assert _refused(await api.signed(PURCHASE, variables, timestamp=int(clock.now().timestamp()) + 301))
    assert _refused(await api.signed(PURCHASE, variables, key_id="no-such-key"))
    tampered = json.dumps({"query": PURCHASE, "variables": {"input": {**variables["input"], "amountFen": 99_999}}})
    assert _refused(await api.signed(PURCHASE, variables, tamper=tampered.encode()))
    unsigned = await api.post(PURCHASE, variables)
    assert unsigned["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await snapshot(member_id) == before
    assert await fetch("SELECT COUNT(*) AS n FROM integration_nonce") == nonces_before


async def test_replayed_nonce_is_refused(api):
    member_id, _ = await make_member()
    variables = {"input": purchase_input(member_id, 10_000)}
    nonce = unique("nonce")
    first = await api.signed(PURCHASE, variables, nonce=nonce)
    assert first["data"]["purchaseRecord"]["pointsEarned"] == 100
    state = await snapshot(member_id)
    replay = await api.signed(PURCHASE, {"input": {**variables["input"], "idempotencyKey": unique("K"),
                                                   "receiptNo": unique("R")}}, nonce=nonce)
    assert _refused(replay)
    assert await snapshot(member_id) == state


async def test_revoked_key_stops_working(api):
    from api.services import integrations

    key, secret = await integrations.create_key("temp till", ["M001"], ("cli", None))
    member_id, _ = await make_member()
    ok = await api.signed(PURCHASE, {"input": purchase_input(member_id, 100)}, key_id=key.key_id, secret=secret)
    assert ok["data"]["purchaseRecord"]["userErrors"] == []
    wrong_merchant = await api.signed(PURCHASE, {"input": purchase_input(member_id, 100, merchant="M002")},
                                      key_id=key.key_id, secret=secret)
    assert wrong_merchant["data"]["purchaseRecord"]["userErrors"][0]["code"] == "MERCHANT_NOT_ALLOWED"
    await integrations.revoke_key(key.key_id, ("cli", None))
    assert _refused(await api.signed(PURCHASE, {"input": purchase_input(member_id, 100)},
                                     key_id=key.key_id, secret=secret))
    stored = await fetch("SELECT secret_encrypted FROM integration_key WHERE key_id = $1", key.key_id)
    assert secret not in stored[0]["secret_encrypted"]


# --- authorisation -----------------------------------------------------------------------------

NODE = "query($id: ID!) { node(id: $id) { id __typename ... on PointsEntry { points } ... on Member { phoneMasked } } }"


async def test_member_cannot_read_another_members_entry_or_profile(api):
    alice, alice_token = await make_member()
    bob, bob_token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(alice, 10_000)})
    ledger_q = "{ viewer { member { id pointsLedger(first: 5) { edges { node { id points } } } } } }"
    alice_view = (await api.post(ledger_q, token=alice_token))["data"]["viewer"]["member"]
    entry_id = alice_view["pointsLedger"]["edges"][0]["node"]["id"]
    assert (await api.post(NODE, {"id": entry_id}, token=alice_token))["data"]["node"]["points"] == 100
    assert (await api.post(NODE, {"id": entry_id}, token=bob_token))["data"]["node"] is None
    assert (await api.post(NODE, {"id": alice_view["id"]}, token=bob_token))["data"]["node"] is None
    assert (await api.post(NODE, {"id": entry_id}))["data"]["node"] is None
    assert (await api.post(NODE, {"id": "garbage"}, token=alice_token))["data"]["node"] is None


async def test_member_token_on_operators_endpoint_is_refused(api):
    _, token = await make_member()
    result = await api.post("{ members(first: 1) { edges { node { id } } } }", token=token, admin=True)
    assert result["data"] is None and result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await api.post("{ members(first: 1) { edges { node { id } } } }", admin=True)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_operator_token_on_public_endpoint_is_refused(api):
    login = await api.post('mutation { operatorLogin(input: {username: "admin", password: "admin-demo-password"})'
                           ' { token userErrors { code } } }', admin=True)
    token = login["data"]["operatorLogin"]["token"]
    result = await api.post("{ viewer { member { id } } }", token=token)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_forged_or_expired_member_token_is_unauthenticated(api):
    member_id, token = await make_member()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (await api.post(VIEWER, token=forged))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    clock.freeze(clock.now() + timedelta(hours=2))
    assert (await api.post(VIEWER, token=token))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_sms_requests_per_client_are_limited_through_redis(api, redis):
    api.client._transport.app.state.redis = redis
    codes = []
    for _ in range(21):
        result = await api.post(REQUEST, {"p": new_phone()})
        codes.append([e["code"] for e in result["data"]["authSmsCodeRequest"]["userErrors"]])
    assert codes[:20] == [[]] * 20 and codes[20] == ["RATE_LIMITED"]
    assert await redis_keys(redis, f"{await installation.key('mallpoints:rl:')}*")  # counted in Redis


async def test_nonce_replay_is_refused_with_redis_too(api, redis):
    api.client._transport.app.state.redis = redis
    member_id, _ = await make_member()
    nonce = unique("nonce")
    first = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)}, nonce=nonce)
    assert first["data"]["purchaseRecord"]["pointsEarned"] == 100
    assert await redis.ttl(await installation.key(f"mallpoints:nonce:demo-pos:{nonce}")) > 500
    replay = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000)}, nonce=nonce)
    assert _refused(replay)
    assert (await snapshot(member_id))["balance"] == 100
