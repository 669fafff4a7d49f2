"""The earning engine end to end, through the real context builder: rules configured by operators,
breakdowns, previews, pending points, check-in, shares, reviews, events, invites, tasks, runs."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from api import db
from api.services import clock, scheduler, signing
from api.services.errors import DomainError
from tests.conftest import (
    PURCHASE,
    REFUND,
    TEST_SMS_CODE,
    bind_demo_key,
    code_for,
    make_member,
    make_merchant,
    new_phone,
    purchase_input,
    snapshot,
    unique,
)

RULE_CREATE = """mutation($i: EarnRuleCreateInput!) { earnRuleCreate(input: $i) {
  rule { id code status stacking conditions { merchantCodes weekdays } capDailyTimes } userErrors { code field } } }"""
LEDGER = """{ viewer { member { pointsBalance pointsPending pointsLedger(first: 10) { edges { node {
  kind points reason breakdown { ruleCode points uncappedPoints cappedBy superseded pendingDays } } } } } } }"""
PREVIEW = """mutation($i: PointsEarnPreviewInput!) { pointsEarnPreview(input: $i) {
  points pointsNow pointsPending growthValue breakdown { ruleCode points } userErrors { code field } } }"""
CHECK_IN = """mutation($k: String!) { memberCheckIn(input: {idempotencyKey: $k}) {
  checkIn { date streak points } pointsEarned pointsBalance userErrors { code } } }"""
SHARE = """mutation($k: String!) { shareRecord(input: {channel: "WECHAT", idempotencyKey: $k}) {
  pointsEarned pointsBalance userErrors { code } } }"""
TASK_CLAIM = """mutation($t: ID!, $k: String!) { taskClaim(input: {taskId: $t, idempotencyKey: $k}) {
  pointsEarned growthValueEarned pointsBalance userErrors { code field } } }"""


async def admin_token() -> str:
    operator_id = (await db.fetch("SELECT id FROM operator WHERE username = 'admin'"))[0]["id"]
    return signing.issue_token("operator", operator_id, 3600)


async def create_rule(api, token: str, **fields) -> dict:
    data = {"code": unique("RULE"), "name": "测试规则", "trigger": "PURCHASE", "action": "FIXED_POINTS", **fields}
    result = (await api.post(RULE_CREATE, {"i": data}, token=token, admin=True))["data"]["earnRuleCreate"]
    assert result["userErrors"] == [], result
    return result["rule"]


async def test_campaign_rules_stack_and_every_entry_explains_itself(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, code=unique("DOUBLE"), action="MULTIPLIER_PERCENT", actionValue=200,
                      conditions={"merchantCodes": [merchant]})
    await create_rule(api, token, action="FIXED_POINTS", actionValue=10, stacking="BEST_OF", stackGroup="g",
                      conditions={"merchantCodes": [merchant], "minAmountFen": 10000})
    await create_rule(api, token, action="FIXED_POINTS", actionValue=4, stacking="BEST_OF", stackGroup="g",
                      conditions={"merchantCodes": [merchant]})
    member_id, member_token = await make_member()
    preview = (await api.signed(PREVIEW, {"i": {"memberCode": code_for(member_id), "merchantCode": merchant,
                                                "amountFen": 12345}}))["data"]["pointsEarnPreview"]
    assert preview["userErrors"] == [] and preview["points"] == 123 + 123 + 10
    before = await snapshot(member_id)
    assert before["entries"] == 0  # a preview books nothing
    booked = await api.signed(PURCHASE, {"input": purchase_input(member_id, 12345, merchant=merchant)})
    assert booked["data"]["purchaseRecord"]["pointsEarned"] == 256
    entry = (await api.post(LEDGER, token=member_token))["data"]["viewer"]["member"]["pointsLedger"]["edges"][0]["node"]
    breakdown = entry["breakdown"]
    assert [(b["ruleCode"], b["points"]) for b in breakdown] == [(b["ruleCode"], b["points"]) for b in preview["breakdown"]]
    assert sum(b["points"] for b in breakdown) == entry["points"] == 256
    assert [b["superseded"] for b in breakdown].count(True) == 1
    # The default rule alone elsewhere: the foundation's earn is unchanged.
    plain = await api.signed(PURCHASE, {"input": purchase_input(member_id, 12345)})
    assert plain["data"]["purchaseRecord"]["pointsEarned"] == 123


async def test_operator_preview_and_default_rule_breakdown(api):
    token = await admin_token()
    member_id, _ = await make_member()
    gid = (await api.post("{ viewer { member { id } } }", token=signing.issue_token("member", member_id, 60)))
    member_gid = gid["data"]["viewer"]["member"]["id"]
    result = (await api.post(PREVIEW, {"i": {"memberId": member_gid, "merchantCode": "M001", "amountFen": 5000}},
                             token=token, admin=True))["data"]["pointsEarnPreview"]
    assert result["points"] == 50 and result["breakdown"] == [{"ruleCode": "DEFAULT_PURCHASE", "points": 50}]
    assert result["growthValue"] == 50
    other = await make_merchant()  # not bound to the demo key
    for change, code in (({"amountFen": 0}, "INVALID_INPUT"), ({"merchantCode": other}, "MERCHANT_NOT_ALLOWED"),
                         ({"memberCode": "garbage"}, "NOT_FOUND")):
        data = {"memberCode": code_for(member_id), "merchantCode": "M001", "amountFen": 5000, **change}
        refused = (await api.signed(PREVIEW, {"i": data}))["data"]["pointsEarnPreview"]
        assert refused["userErrors"][0]["code"] == code and refused["points"] is None, change


async def test_bad_rules_are_refused_and_nothing_is_created(api):
    token = await admin_token()
    count = (await db.fetch("SELECT COUNT(*) AS n FROM earn_rule"))[0]["n"]
    audits = (await db.fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"]
    base = {"code": unique("X"), "name": "x", "trigger": "SHARE", "action": "FIXED_POINTS", "actionValue": 5}
    cases = [
        ({"capDailyTimes": 0}, "CAP_INVALID"),
        ({"capDailyPoints": -5}, "CAP_INVALID"),
        ({"budgetPoints": 0}, "CAP_INVALID"),
        ({"action": "POINTS_PER_YUAN"}, "INVALID_INPUT"),  # per yuan needs a purchase
        ({"action": "NONE"}, "INVALID_INPUT"),
        ({"startsAt": "2026-12-01T00:00:00+08:00", "endsAt": "2026-11-01T00:00:00+08:00"}, "INVALID_INPUT"),
        ({"conditions": {"weekdays": [8]}}, "INVALID_INPUT"),
        ({"conditions": {"tierCodes": ["PLATINUM"]}}, "INVALID_INPUT"),
        ({"conditions": {"merchantCodes": ["NOPE"]}}, "NOT_FOUND"),
    ]
    for change, code in cases:
        result = (await api.post(RULE_CREATE, {"i": {**base, **change}}, token=token, admin=True))["data"]
        assert [e["code"] for e in result["earnRuleCreate"]["userErrors"]] == [code], change
    first = await create_rule(api, token, trigger="SHARE", actionValue=5)
    overlap = (await api.post(RULE_CREATE, {"i": {**base, "code": unique("Y")}}, token=token, admin=True))["data"]
    assert overlap["earnRuleCreate"]["userErrors"][0]["code"] == "RULE_CONFLICT"
    assert (await db.fetch("SELECT COUNT(*) AS n FROM earn_rule"))[0]["n"] == count + 1
    assert (await db.fetch("SELECT COUNT(*) AS n FROM audit_log"))[0]["n"] == audits + 1
    assert first["status"] == "ACTIVE"


async def test_rule_update_pause_archive_are_audited(api):
    token = await admin_token()
    rule = await create_rule(api, token, trigger="SHARE", actionValue=5)
    update = """mutation($i: EarnRuleUpdateInput!) { earnRuleUpdate(input: $i) {
      rule { actionValue capDailyTimes } userErrors { code } } }"""
    updated = (await api.post(update, {"i": {"ruleId": rule["id"], "actionValue": 8, "capDailyTimes": 2}},
                              token=token, admin=True))["data"]["earnRuleUpdate"]
    assert updated == {"rule": {"actionValue": 8, "capDailyTimes": 2}, "userErrors": []}
    cleared = (await api.post(update, {"i": {"ruleId": rule["id"], "clear": ["CAP_DAILY_TIMES"]}},
                              token=token, admin=True))["data"]["earnRuleUpdate"]
    assert cleared["rule"]["capDailyTimes"] is None
    for op, status in (("earnRulePause", "PAUSED"), ("earnRuleActivate", "ACTIVE"), ("earnRuleArchive", "ARCHIVED")):
        q = f'mutation($id: ID!) {{ {op}(input: {{ruleId: $id}}) {{ rule {{ status }} userErrors {{ code }} }} }}'
        result = (await api.post(q, {"id": rule["id"]}, token=token, admin=True))["data"][op]
        assert result == {"rule": {"status": status}, "userErrors": []}
    again = (await api.post('mutation($id: ID!) { earnRulePause(input: {ruleId: $id}) { userErrors { code } } }',
                            {"id": rule["id"]}, token=token, admin=True))["data"]["earnRulePause"]
    assert again["userErrors"][0]["code"] == "NOT_ACTIVE"
    from api.schema.ids import from_global_id

    actions = await db.fetch("SELECT action FROM audit_log WHERE target_type = 'earn_rule' AND target_id = $1 ORDER BY id",
                             str(from_global_id(rule["id"])[1]))
    assert [a["action"] for a in actions] == ["earn_rule.create", "earn_rule.update", "earn_rule.update",
                                              "earn_rule.paused", "earn_rule.active", "earn_rule.archived"]
    node = await api.post('query($id: ID!) { node(id: $id) { ... on EarnRule { code status } } }', {"id": rule["id"]},
                          token=token, admin=True)
    assert node["data"]["node"] == {"code": rule["code"], "status": "ARCHIVED"}
    listed = await api.post('{ earnRules(first: 100, status: ARCHIVED) { edges { node { code } } } }', token=token,
                            admin=True)
    assert rule["code"] in [e["node"]["code"] for e in listed["data"]["earnRules"]["edges"]]
    # Members cannot reach the operators' endpoint.
    _, member_token = await make_member()
    hidden = await api.post('query($id: ID!) { node(id: $id) { id } }', {"id": rule["id"]}, token=member_token)
    assert hidden["data"]["node"] is None
    denied = await api.post('{ earnRules(first: 1) { edges { node { code } } } }', token=member_token, admin=True)
    assert denied["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED")


async def test_pending_points_wait_for_the_return_window_and_a_refund_cancels_them(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=100, returnDays=7,
                      conditions={"merchantCodes": [merchant]})
    member_id, member_token = await make_member()
    start = clock.now()
    kept = purchase_input(member_id, 10_000, merchant=merchant)
    refunded = purchase_input(member_id, 10_000, merchant=merchant)
    for data in (kept, refunded):
        result = await api.signed(PURCHASE, {"input": data})
        assert result["data"]["purchaseRecord"]["pointsEarned"] == 100  # spendable now: the default rule
    me = (await api.post(LEDGER, token=member_token))["data"]["viewer"]["member"]
    assert me["pointsBalance"] == 200 and me["pointsPending"] == 200
    refund = await api.signed(REFUND, {"input": {"merchantCode": merchant, "receiptNo": refunded["receiptNo"],
                                                 "refundAmountFen": 5_000, "idempotencyKey": unique("K")}})
    assert refund["data"]["purchaseRefund"]["pointsReversed"] == 50  # half of the spendable 100
    me = (await api.post(LEDGER, token=member_token))["data"]["viewer"]["member"]
    assert me["pointsBalance"] == 150 and me["pointsPending"] == 150  # 100 + the uncancelled 50
    run = "mutation { earningScheduleRun(input: {}) { pendingReleased pendingPointsReleased userErrors { code } } }"
    early = (await api.post(run, token=token, admin=True))["data"]["earningScheduleRun"]
    assert early["pendingPointsReleased"] == 0
    clock.freeze(start + timedelta(days=8))
    token = await admin_token()
    due = await db.fetch("SELECT COUNT(*) AS n, COALESCE(SUM(points - points_cancelled), 0) AS points"
                         " FROM points_pending WHERE status = 'PENDING' AND release_at <= $1", clock.now())
    released = (await api.post(run, token=token, admin=True))["data"]["earningScheduleRun"]
    assert released["pendingReleased"] == int(due[0]["n"]) >= 2  # this test's two, and any other that is due
    assert released["pendingPointsReleased"] == int(due[0]["points"]) >= 150
    me = (await api.post(LEDGER, token=signing.issue_token("member", member_id, 60)))["data"]["viewer"]["member"]
    assert me["pointsBalance"] == 300 and me["pointsPending"] == 0
    top = me["pointsLedger"]["edges"][0]["node"]
    assert top["kind"] == "EARN" and top["breakdown"][0]["pendingDays"] == 7
    again = (await api.post(run, token=token, admin=True))["data"]["earningScheduleRun"]
    assert again["pendingReleased"] == 0
    # A later full refund of the kept purchase takes back all of what it gave, pending part included.
    refund = await api.signed(REFUND, {"input": {"merchantCode": merchant, "receiptNo": kept["receiptNo"],
                                                 "refundAmountFen": 10_000, "idempotencyKey": unique("K")}})
    assert refund["data"]["purchaseRefund"]["pointsReversed"] == 200
    # ... from its own two lots (the immediate one and the released one), not from the other purchase's.
    own = await db.fetch(
        "SELECT l.remaining FROM points_lot l JOIN points_entry e ON e.id = l.entry_id JOIN purchase p"
        " ON e.source_type = 'purchase' AND e.source_ref = CAST(p.id AS TEXT) WHERE p.receipt_no = $1",
        kept["receiptNo"])
    assert len(own) == 2 and sum(r["remaining"] for r in own) == 0


async def test_daily_check_in_streaks_bonuses_and_calendar(api):
    token = await admin_token()
    await create_rule(api, token, trigger="CHECK_IN", actionValue=5)
    await create_rule(api, token, trigger="CHECK_IN", actionValue=20, conditions={"streakDays": [3]}, priority=1)
    member_id, member_token = await make_member()
    day1 = datetime(2026, 11, 20, 9, 0, tzinfo=clock.SHANGHAI)
    earned = []
    for offset in (0, 1, 2, 4):  # the 24th is missed: the streak starts again
        clock.freeze(day1 + timedelta(days=offset))
        member_token = signing.issue_token("member", member_id, 3600)
        raw = await api.post(CHECK_IN, {"k": unique("K")}, token=member_token)
        assert raw.get("data"), raw
        result = raw["data"]["memberCheckIn"]
        assert result["userErrors"] == []
        earned.append((result["checkIn"]["streak"], result["pointsEarned"]))
    assert earned == [(1, 5), (2, 5), (3, 25), (1, 5)]
    before = await snapshot(member_id)
    twice = (await api.post(CHECK_IN, {"k": unique("K")}, token=member_token))["data"]["memberCheckIn"]
    assert twice["userErrors"] == [{"code": "ALREADY_CHECKED_IN"}] and twice["pointsEarned"] is None
    assert await snapshot(member_id) == before
    calendar = """{ viewer { member { checkInStreak checkInCalendar(month: "2026-11") { month streak
      days { date streak points } } } } }"""
    me = (await api.post(calendar, token=member_token))["data"]["viewer"]["member"]
    assert me["checkInStreak"] == 1
    assert [(d["date"], d["streak"], d["points"]) for d in me["checkInCalendar"]["days"]] == [
        ("2026-11-20", 1, 5), ("2026-11-21", 2, 5), ("2026-11-22", 3, 25), ("2026-11-24", 1, 5)]
    bad = await api.post('{ viewer { member { checkInCalendar(month: "2026-13") { month } } } }', token=member_token)
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    # The Shanghai day cuts at 16:00 UTC: 23:59 on the 24th and 00:01 on the 25th are two days.
    clock.freeze(datetime(2026, 11, 25, 0, 1, tzinfo=clock.SHANGHAI))
    member_token = signing.issue_token("member", member_id, 3600)
    result = (await api.post(CHECK_IN, {"k": unique("K")}, token=member_token))["data"]["memberCheckIn"]
    assert result["checkIn"] == {"date": "2026-11-25", "streak": 2, "points": 5}


async def test_shares_are_capped_per_day(api):
    token = await admin_token()
    await create_rule(api, token, trigger="SHARE", actionValue=10, capDailyTimes=3)
    member_id, member_token = await make_member()
    results = [(await api.post(SHARE, {"k": unique("K")}, token=member_token))["data"]["shareRecord"]
               for _ in range(5)]
    assert [r["pointsEarned"] for r in results] == [10, 10, 10, 0, 0]
    assert (await snapshot(member_id))["balance"] == 30
    key = unique("K")
    first = await api.post(SHARE, {"k": key}, token=member_token)
    assert await api.post(SHARE, {"k": key}, token=member_token) == first  # a repeat returns the first result


async def test_review_once_per_purchase_and_only_for_a_real_one(api):
    token = await admin_token()
    await create_rule(api, token, trigger="REVIEW", actionValue=15)
    member_id, _ = await make_member()
    data = purchase_input(member_id, 1000)
    await api.signed(PURCHASE, {"input": data})
    review = """mutation($i: ReviewRecordInput!) { reviewRecord(input: $i) { pointsEarned userErrors { code field } } }"""
    ok = await api.signed(review, {"i": {"merchantCode": "M001", "receiptNo": data["receiptNo"], "rating": 5,
                                         "idempotencyKey": unique("K")}})
    assert ok["data"]["reviewRecord"] == {"pointsEarned": 15, "userErrors": []}
    before = await snapshot(member_id)
    twice = await api.signed(review, {"i": {"merchantCode": "M001", "receiptNo": data["receiptNo"], "rating": 4,
                                            "idempotencyKey": unique("K")}})
    assert twice["data"]["reviewRecord"]["userErrors"][0]["code"] == "ALREADY_RECORDED"
    missing = await api.signed(review, {"i": {"merchantCode": "M001", "receiptNo": "NO-SUCH", "rating": 4,
                                              "idempotencyKey": unique("K")}})
    assert missing["data"]["reviewRecord"]["userErrors"] == [{"code": "NOT_FOUND", "field": ["receiptNo"]}]
    other = await make_merchant()  # not bound to the demo key
    denied = await api.signed(review, {"i": {"merchantCode": other, "receiptNo": data["receiptNo"], "rating": 4,
                                             "idempotencyKey": unique("K")}})
    assert denied["data"]["reviewRecord"]["userErrors"][0]["code"] == "MERCHANT_NOT_ALLOWED"
    assert await snapshot(member_id) == before


async def test_event_check_in_once_per_event(api):
    token = await admin_token()
    code = unique("EV")
    create = """mutation($i: MallEventCreateInput!) { mallEventCreate(input: $i) { event { id code } userErrors { code } } }"""
    now = clock.now()
    event = (await api.post(create, {"i": {"code": code, "name": "周年庆", "merchantCode": "M001",
                                           "startsAt": (now - timedelta(hours=1)).isoformat(),
                                           "endsAt": (now + timedelta(hours=5)).isoformat()}},
                            token=token, admin=True))["data"]["mallEventCreate"]["event"]
    await create_rule(api, token, trigger="EVENT_ATTENDED", actionValue=30, conditions={"eventCodes": [code]})
    member_id, member_token = await make_member()
    gid = (await api.post("{ viewer { member { id } } }", token=member_token))["data"]["viewer"]["member"]["id"]
    q = """mutation($i: EventCheckInInput!) { eventCheckIn(input: $i) { pointsEarned userErrors { code } } }"""
    first = await api.post(q, {"i": {"eventId": event["id"], "memberId": gid, "idempotencyKey": unique("K")}},
                           token=token, admin=True)
    assert first["data"]["eventCheckIn"] == {"pointsEarned": 30, "userErrors": []}
    audited = await db.fetch("SELECT detail FROM audit_log WHERE action = 'event.check_in' AND target_id = $1",
                             str(member_id))
    assert len(audited) == 1 and '"points": 30' in audited[0]["detail"]
    by_pos = await api.signed(q, {"i": {"eventId": event["id"], "memberCode": code_for(member_id),
                                        "idempotencyKey": unique("K")}})
    assert by_pos["data"]["eventCheckIn"]["userErrors"] == [{"code": "ALREADY_RECORDED"}]
    assert (await snapshot(member_id))["balance"] == 30


async def _sms_login(api, phone: str, invite_code: str | None = None) -> dict:
    from api.services import members

    # Straight to the service (no client address): the per-address SMS limit belongs to other tests.
    clock.freeze(clock.now() + timedelta(seconds=61))  # past the per-phone resend interval
    await members.request_sms_code(phone)
    q = """mutation($i: AuthSmsLoginInput!) { authSmsLogin(input: $i) { token registered member { id }
      userErrors { code field } } }"""
    data = {"phone": phone, "code": TEST_SMS_CODE, **({"inviteCode": invite_code} if invite_code else {})}
    return (await api.post(q, {"i": data}))["data"]["authSmsLogin"]


async def test_invites_reward_both_on_the_first_purchase_once(api):
    token = await admin_token()
    await create_rule(api, token, trigger="INVITE_ACCEPTED", actionValue=100, conditions={"inviteRole": "INVITER"},
                      capMonthlyPoints=150)
    await create_rule(api, token, trigger="INVITE_ACCEPTED", actionValue=50, conditions={"inviteRole": "INVITEE"})
    inviter_phone = new_phone()
    inviter = await _sms_login(api, inviter_phone)
    code = (await api.post("{ viewer { member { inviteCode } } }", token=inviter["token"]))["data"]["viewer"]["member"][
        "inviteCode"]
    assert len(code) == 8
    own = await _sms_login(api, inviter_phone, code)
    assert own["userErrors"] == [{"code": "INVITE_CODE_OWN", "field": ["inviteCode"]}] and own["token"] is None
    login = """mutation($i: AuthSmsLoginInput!) { authSmsLogin(input: $i) { token userErrors { code } } }"""
    again = (await api.post(login, {"i": {"phone": inviter_phone, "code": TEST_SMS_CODE}}))["data"]["authSmsLogin"]
    assert again["token"]  # the refused login consumed nothing: the same SMS code still works
    unknown = await _sms_login(api, new_phone(), "ZZZZZZZZ")
    assert unknown["userErrors"][0]["code"] == "INVITE_CODE_INVALID"
    no_oracle = (await api.post(login, {"i": {"phone": new_phone(), "code": "000000", "inviteCode": "ZZZZZZZZ"}}))
    assert no_oracle["data"]["authSmsLogin"]["userErrors"] == [{"code": "SMS_CODE_INVALID"}]
    invitees = []
    for _ in range(2):
        invitee = await _sms_login(api, new_phone(), code.lower())
        assert invitee["registered"] is True
        invitees.append(int((await db.fetch("SELECT member_id FROM member_invite WHERE inviter_id = (SELECT member_id"
                                            " FROM member_invite WHERE code = $1) ORDER BY id DESC LIMIT 1", code)
                             )[0]["member_id"]))
    inviter_id = (await db.fetch("SELECT member_id FROM member_invite WHERE code = $1", code))[0]["member_id"]
    assert (await snapshot(inviter_id))["balance"] == 0  # nothing at sign-up
    for invitee_id in invitees:
        for _ in range(2):  # only the first purchase counts
            await api.signed(PURCHASE, {"input": purchase_input(invitee_id, 1000)})
        assert (await snapshot(invitee_id))["balance"] == 20 + 50
    assert (await snapshot(inviter_id))["balance"] == 150  # 100 + 50: the monthly cap of 150 cut the second


async def test_tasks_show_progress_and_pay_once_per_period(api):
    token = await admin_token()
    create = """mutation($i: TaskCreateInput!) { taskCreate(input: $i) { task { id code } userErrors { code field } } }"""
    task = (await api.post(create, {"i": {"code": unique("T"), "name": "每日分享两次", "period": "DAILY",
                                          "metric": "SHARE", "target": 2, "rewardPoints": 30,
                                          "rewardGrowthValue": 5}}, token=token, admin=True))["data"]["taskCreate"]
    assert task["userErrors"] == []
    task_id = task["task"]["id"]
    bad = (await api.post(create, {"i": {"code": unique("T"), "name": "x", "period": "DAILY", "metric": "SHARE",
                                         "target": 2}}, token=token, admin=True))["data"]["taskCreate"]
    assert bad["userErrors"][0]["code"] == "INVALID_INPUT"  # no reward
    member_id, member_token = await make_member()
    tasks = "{ viewer { member { tasks { task { id } progress completed claimed period } } } }"

    def mine(data):
        return next(t for t in data["data"]["viewer"]["member"]["tasks"] if t["task"]["id"] == task_id)

    assert mine(await api.post(tasks, token=member_token))["progress"] == 0
    early = (await api.post(TASK_CLAIM, {"t": task_id, "k": unique("K")}, token=member_token))["data"]["taskClaim"]
    assert early["userErrors"][0]["code"] == "TASK_NOT_COMPLETED"
    for _ in range(2):
        await api.post(SHARE, {"k": unique("K")}, token=member_token)
    assert mine(await api.post(tasks, token=member_token))["completed"] is True
    key = unique("K")
    claimed = (await api.post(TASK_CLAIM, {"t": task_id, "k": key}, token=member_token))["data"]["taskClaim"]
    assert claimed["pointsEarned"] == 30 and claimed["growthValueEarned"] == 5
    repeat = (await api.post(TASK_CLAIM, {"t": task_id, "k": key}, token=member_token))["data"]["taskClaim"]
    assert repeat == claimed
    before = await snapshot(member_id)
    twice = (await api.post(TASK_CLAIM, {"t": task_id, "k": unique("K")}, token=member_token))["data"]["taskClaim"]
    assert twice["userErrors"][0]["code"] == "TASK_ALREADY_CLAIMED"
    assert await snapshot(member_id) == before
    assert mine(await api.post(tasks, token=member_token))["claimed"] is True
    # The next day is a new period.
    period = mine(await api.post(tasks, token=member_token))["period"]
    clock.freeze(clock.now() + timedelta(days=1))
    member_token = signing.issue_token("member", member_id, 3600)
    tomorrow = mine(await api.post(tasks, token=member_token))
    assert (tomorrow["progress"], tomorrow["claimed"]) == (0, False) and tomorrow["period"] != period


async def test_profile_completion_and_birthday_month_rules(api):
    token = await admin_token()
    await create_rule(api, token, trigger="PROFILE_COMPLETED", actionValue=20)
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="MULTIPLIER_PERCENT", actionValue=300,
                      conditions={"birthday": "MONTH", "merchantCodes": [merchant]})
    member_id, member_token = await make_member()
    update = 'mutation($b: Date) { memberProfileUpdate(input: {nickname: "小满", gender: FEMALE, birthday: $b}) { userErrors { code } } }'
    today = clock.now().astimezone(clock.SHANGHAI).date()
    birthday = date(1990, today.month, 1)
    await api.post(update, {"b": birthday.isoformat()}, token=member_token)
    assert (await snapshot(member_id))["balance"] == 20
    await api.post(update, {"b": birthday.isoformat()}, token=member_token)
    assert (await snapshot(member_id))["balance"] == 20  # once
    result = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, merchant=merchant)})
    assert result["data"]["purchaseRecord"]["pointsEarned"] == 300  # 100 + 200 in the birthday month


async def test_another_members_invite_code_and_breakdown_stay_private(api):
    member_id, member_token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 1000)})
    _, other_token = await make_member()
    node = '{ viewer { member { id pointsLedger(first: 1) { edges { node { id } } } } } }'
    mine = (await api.post(node, token=member_token))["data"]["viewer"]["member"]
    entry_id = mine["pointsLedger"]["edges"][0]["node"]["id"]
    peek = await api.post('query($id: ID!) { node(id: $id) { ... on PointsEntry { breakdown { points } } } }',
                          {"id": entry_id}, token=other_token)
    assert peek["data"]["node"] is None
    peek = await api.post('query($id: ID!) { node(id: $id) { ... on Member { inviteCode } } }', {"id": mine["id"]},
                          token=other_token)
    assert peek["data"]["node"] is None


async def test_first_purchase_bonus_once_and_a_paused_rule_stops(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    rule = await create_rule(api, token, action="FIXED_POINTS", actionValue=88, conditions={"firstPurchase": True})
    member_id, _ = await make_member()
    code = code_for(member_id)
    first = await api.signed(PURCHASE, {"input": purchase_input(member_id, 1000, code=code)})
    second = await api.signed(PURCHASE, {"input": purchase_input(member_id, 1000, code=code)})
    assert [first["data"]["purchaseRecord"]["pointsEarned"], second["data"]["purchaseRecord"]["pointsEarned"]] == [98, 10]
    other, _ = await make_member()
    paused = await api.post('mutation($id: ID!) { earnRulePause(input: {ruleId: $id}) { rule { status } } }',
                            {"id": rule["id"]}, token=token, admin=True)
    assert paused["data"]["earnRulePause"]["rule"]["status"] == "PAUSED"
    result = await api.signed(PURCHASE, {"input": purchase_input(other, 1000)})
    assert result["data"]["purchaseRecord"]["pointsEarned"] == 10


async def test_budget_runs_out_and_the_breakdown_says_so(api):
    token = await admin_token()
    await create_rule(api, token, trigger="SHARE", actionValue=40, budgetPoints=100)
    a, a_token = await make_member()
    b, b_token = await make_member()
    earned = [(await api.post(SHARE, {"k": unique("K")}, token=t))["data"]["shareRecord"]["pointsEarned"]
              for t in (a_token, b_token, a_token, b_token)]
    assert earned == [40, 40, 20, 0]
    ledger = (await api.post(LEDGER, token=a_token))["data"]["viewer"]["member"]["pointsLedger"]["edges"]
    assert ledger[0]["node"]["breakdown"][0]["cappedBy"] == "BUDGET"
    assert ledger[0]["node"]["breakdown"][0]["uncappedPoints"] == 40


async def test_weekly_purchase_amount_task_and_tier_restriction(api):
    token = await admin_token()
    create = """mutation($i: TaskCreateInput!) { taskCreate(input: $i) { task { id } userErrors { code field } } }"""
    weekly = (await api.post(create, {"i": {"code": unique("T"), "name": "本周消费满¥100", "period": "WEEKLY",
                                            "metric": "PURCHASE_AMOUNT", "target": 10_000, "rewardPoints": 50}},
                             token=token, admin=True))["data"]["taskCreate"]["task"]
    gold = (await api.post(create, {"i": {"code": unique("T"), "name": "金卡专享", "period": "ONCE", "metric": "SHARE",
                                          "target": 1, "rewardPoints": 5, "tierCodes": ["GOLD"]}},
                           token=token, admin=True))["data"]["taskCreate"]["task"]
    bad_tier = (await api.post(create, {"i": {"code": unique("T"), "name": "x", "period": "ONCE", "metric": "SHARE",
                                              "target": 1, "rewardPoints": 5, "tierCodes": ["NOPE"]}},
                               token=token, admin=True))["data"]["taskCreate"]
    assert bad_tier["userErrors"][0]["code"] == "INVALID_INPUT"
    member_id, member_token = await make_member()
    for _ in range(2):
        await api.signed(PURCHASE, {"input": purchase_input(member_id, 6_000)})
    listed = (await api.post("{ viewer { member { tasks { task { id } progress completed } } } }",
                             token=member_token))["data"]["viewer"]["member"]["tasks"]
    ids = [t["task"]["id"] for t in listed]
    assert gold["id"] not in ids  # not for this tier
    assert next(t for t in listed if t["task"]["id"] == weekly["id"]) == {
        "task": {"id": weekly["id"]}, "progress": 12_000, "completed": True}
    claim = await api.post(TASK_CLAIM, {"t": weekly["id"], "k": unique("K")}, token=member_token)
    assert claim["data"]["taskClaim"]["pointsEarned"] == 50
    denied = await api.post(TASK_CLAIM, {"t": gold["id"], "k": unique("K")}, token=member_token)
    assert denied["data"]["taskClaim"]["userErrors"][0]["code"] == "NOT_ACTIVE"
    paused = await api.post('mutation($id: ID!) { taskPause(input: {taskId: $id}) { task { status } userErrors { code } } }',
                            {"id": weekly["id"]}, token=token, admin=True)
    assert paused["data"]["taskPause"] == {"task": {"status": "PAUSED"}, "userErrors": []}
    update = await api.post('mutation($id: ID!) { taskUpdate(input: {taskId: $id, target: 20000}) { task { target } } }',
                            {"id": weekly["id"]}, token=token, admin=True)
    assert update["data"]["taskUpdate"]["task"]["target"] == 20_000
    actions = await db.fetch("SELECT action FROM audit_log WHERE target_type = 'earn_task' ORDER BY id DESC LIMIT 2")
    assert [a["action"] for a in actions] == ["task.update", "task.paused"]


async def test_scheduler_lease_and_command_line(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=30, returnDays=1,
                      conditions={"merchantCodes": [merchant]})
    member_id, _ = await make_member()
    result = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, merchant=merchant)})
    assert result["data"]["purchaseRecord"]["userErrors"] == []
    before = await snapshot(member_id)
    clock.freeze(clock.now() + timedelta(days=2))  # the return window has closed
    assert await scheduler.acquire_lease(60, holder="server-a")
    assert not await scheduler.acquire_lease(60, holder="server-b")  # a second server waits
    assert await scheduler.acquire_lease(60, holder="server-a")  # the holder renews
    clock.freeze(clock.now() + timedelta(seconds=61))
    assert await scheduler.acquire_lease(60, holder="server-b")  # the holder stopped: taken over
    await scheduler.release_lease("server-b")
    due = await db.fetch("SELECT COUNT(*) AS n, COALESCE(SUM(points - points_cancelled), 0) AS points"
                         " FROM points_pending WHERE status = 'PENDING' AND release_at <= $1", clock.now())
    result = await scheduler.run_once(("cli", None))
    assert result.pending_released == int(due[0]["n"]) >= 1  # this test's purchase, and any other that is due
    assert result.pending_points_released == int(due[0]["points"]) >= 30
    assert (await snapshot(member_id))["balance"] == before["balance"] + 30
    again = await scheduler.run_once(("cli", None))
    assert again.pending_released == 0 and again.pending_points_released == 0
    with pytest.raises(DomainError) as refused:
        await scheduler.run_once(("cli", None), clock.now() + timedelta(days=1))
    assert refused.value.code.value == "INVALID_INPUT"


async def test_registration_reward_and_event_rules_for_integrations(api):
    token = await admin_token()
    await create_rule(api, token, trigger="REGISTER", actionValue=100, growthAction="FIXED_GROWTH", growthValue=10)
    member_id, member_token = await make_member()
    state = await snapshot(member_id)
    assert state["balance"] == 100 and state["growth_value"] == 10
    create = """mutation($i: MallEventCreateInput!) { mallEventCreate(input: $i) { event { id } userErrors { code } } }"""
    now = clock.now()
    window = {"startsAt": (now - timedelta(hours=1)).isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}
    mall_wide = (await api.post(create, {"i": {"code": unique("EV"), "name": "商场活动", **window}}, token=token,
                                admin=True))["data"]["mallEventCreate"]["event"]
    other = await make_merchant()
    elsewhere = (await api.post(create, {"i": {"code": unique("EV"), "name": "别家活动", "merchantCode": other,
                                               **window}}, token=token, admin=True))["data"]["mallEventCreate"]["event"]
    q = """mutation($i: EventCheckInInput!) { eventCheckIn(input: $i) { pointsEarned userErrors { code } } }"""
    for event in (mall_wide, elsewhere):
        denied = await api.signed(q, {"i": {"eventId": event["id"], "memberCode": code_for(member_id),
                                            "idempotencyKey": unique("K")}})
        assert denied["data"]["eventCheckIn"]["userErrors"] == [{"code": "MERCHANT_NOT_ALLOWED"}]
    archive = await api.post('mutation($id: ID!) { mallEventArchive(input: {eventId: $id}) { event { status } } }',
                             {"id": mall_wide["id"]}, token=token, admin=True)
    assert archive["data"]["mallEventArchive"]["event"]["status"] == "ARCHIVED"
    gid = (await api.post("{ viewer { member { id } } }", token=member_token))["data"]["viewer"]["member"]["id"]
    closed = await api.post(q, {"i": {"eventId": mall_wide["id"], "memberId": gid, "idempotencyKey": unique("K")}},
                            token=token, admin=True)
    assert closed["data"]["eventCheckIn"]["userErrors"] == [{"code": "NOT_ACTIVE"}]
    assert (await snapshot(member_id)) == state
    listed = await api.post("{ mallEvents(first: 100) { edges { node { id status } } } }", token=token, admin=True)
    assert {"id": mall_wide["id"], "status": "ARCHIVED"} in [e["node"] for e in listed["data"]["mallEvents"]["edges"]]


async def test_a_refund_gives_back_cap_room_and_budget(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=60, capDailyPoints=100, budgetPoints=1000,
                      conditions={"merchantCodes": [merchant]})
    member_id, _ = await make_member()
    code = code_for(member_id)
    first = purchase_input(member_id, 1000, merchant=merchant, code=code)
    earned = [(await api.signed(PURCHASE, {"input": data}))["data"]["purchaseRecord"]["pointsEarned"]
              for data in (first, purchase_input(member_id, 1000, merchant=merchant, code=code))]
    assert earned == [70, 50]  # 10 + 60, then 10 + the 40 left of the daily 100
    half = await api.signed(REFUND, {"input": {"merchantCode": merchant, "receiptNo": first["receiptNo"],
                                               "refundAmountFen": 500, "idempotencyKey": unique("K")}})
    assert half["data"]["purchaseRefund"]["pointsReversed"] == 35
    third = await api.signed(PURCHASE, {"input": purchase_input(member_id, 1000, merchant=merchant, code=code)})
    assert third["data"]["purchaseRecord"]["pointsEarned"] == 10 + 30  # the refund gave 30 of the cap back
    used = await db.fetch("SELECT c.points FROM earn_counter c JOIN earn_rule r ON r.id = c.rule_id"
                          " WHERE c.member_id = 0 AND c.period = 'TOTAL' AND r.conditions LIKE $1", f"%{merchant}%")
    assert used[0]["points"] == 60 + 40 - 30 + 30


async def test_birthday_day_rule_knows_each_members_birthday_without_a_lookup_per_receipt(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, actionValue=50, conditions={"birthday": "DAY", "merchantCodes": [merchant]})
    update = 'mutation($b: Date) { memberProfileUpdate(input: {birthday: $b}) { userErrors { code } } }'
    today = clock.now().astimezone(clock.SHANGHAI).date()
    other_day = 2 if today.day == 1 else 1
    earned = {}
    for label, born in (("today", date(1991, today.month, today.day)), ("same month", date(1991, today.month, other_day)),
                        ("none", None)):
        member_id, member_token = await make_member()
        if born is not None:
            await api.post(update, {"b": born.isoformat()}, token=member_token)
        result = await api.signed(PURCHASE, {"input": purchase_input(member_id, 10_000, merchant=merchant)})
        earned[label] = result["data"]["purchaseRecord"]["pointsEarned"]
    assert earned == {"today": 150, "same month": 100, "none": 100}


async def test_refunding_a_purchase_whose_points_are_all_pending_gives_back_its_cap_room(api):
    token = await admin_token()
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    await create_rule(api, token, action="FIXED_POINTS", actionValue=100, returnDays=7, capDailyPoints=100,
                      budgetPoints=1000, conditions={"merchantCodes": [merchant]})
    member_id, _ = await make_member()
    first = purchase_input(member_id, 50, merchant=merchant)  # below ¥1: the default rule gives nothing now
    assert (await api.signed(PURCHASE, {"input": first}))["data"]["purchaseRecord"]["pointsEarned"] == 0
    refund = await api.signed(REFUND, {"input": {"merchantCode": merchant, "receiptNo": first["receiptNo"],
                                                 "refundAmountFen": 50, "idempotencyKey": unique("K")}})
    assert refund["data"]["purchaseRefund"]["userErrors"] == []
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 50, merchant=merchant)})
    pending = await db.fetch("SELECT status, points FROM points_pending WHERE member_id = $1 ORDER BY id", member_id)
    # The first purchase's 100 came back to the daily cap, so the second one gets its 100 again.
    assert [(p["status"], int(p["points"])) for p in pending][-1] == ("PENDING", 100)


async def test_a_failing_scheduled_job_does_not_stop_the_others(api, monkeypatch):
    from api.services import ledger, mall, scheduler

    async def broken(as_of=None):
        raise RuntimeError("the order lapse is broken")

    ran = []
    original = ledger.expire_due

    async def expire(as_of):
        ran.append("expiry")
        return await original(as_of)

    monkeypatch.setattr(mall, "expire_orders", broken)
    monkeypatch.setattr(ledger, "expire_due", expire)
    result = await scheduler.run_once(("cli", None))
    assert ran == ["expiry"] and result.orders_expired == 0
    rows = await db.fetch("SELECT detail FROM audit_log WHERE action = 'earning.scheduled_run' ORDER BY id DESC LIMIT 1")
    assert '"failed": ["order_lapse"]' in rows[0]["detail"]
