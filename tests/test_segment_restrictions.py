"""Segment restrictions (issue 13 item 3): earning rules, tasks, draw games and points-mall products restricted
to a saved segment, on SQLite and PostgreSQL. Operators set and clear the segment; a member in the segment
gets the thing, a member outside does not (and a refusal writes nothing); an earn whose rules have no segment
asks nothing about segments."""
from __future__ import annotations

import pytest

from api import db
from api.config import settings
from api.schema.ids import from_global_id, to_global_id
from api.services import clock, earning
from api.services.segments import membership
from tests.conftest import (
    PURCHASE,
    bind_demo_key,
    make_member,
    make_merchant,
    purchase_input,
    snapshot,
    unique,
)
from tests.mall_helpers import FLASH, REDEEM, create_product, funded_member, later, operator_token, state

TAG_ADD = """mutation($ids: [ID!]!, $tag: String!) { memberTagAdd(input: {memberIds: $ids, tag: $tag}) {
  count userErrors { code } } }"""
SEGMENT = """mutation($i: SegmentCreateInput!) { segmentCreate(input: $i) { segment { id name } userErrors { code } } }"""
RULE_CREATE = """mutation($i: EarnRuleCreateInput!) { earnRuleCreate(input: $i) {
  rule { id code segment { id name } } userErrors { code field } } }"""
RULE_UPDATE = """mutation($i: EarnRuleUpdateInput!) { earnRuleUpdate(input: $i) {
  rule { id segment { id } } userErrors { code field } } }"""
TASK_CREATE = """mutation($i: TaskCreateInput!) { taskCreate(input: $i) {
  task { id segment { id name } } userErrors { code field } } }"""
TASK_UPDATE = """mutation($i: TaskUpdateInput!) { taskUpdate(input: $i) { task { id segment { id } } userErrors { code field } } }"""
TASK_CLAIM = """mutation($t: ID!, $k: String!) { taskClaim(input: {taskId: $t, idempotencyKey: $k}) {
  pointsEarned pointsBalance userErrors { code field } } }"""
TASKS = "{ viewer { member { tasks { task { id } completed } } } }"
SHARE = """mutation($k: String!) { shareRecord(input: {channel: "WECHAT", idempotencyKey: $k}) { userErrors { code } } }"""
GAME_CREATE = """mutation($i: DrawGameCreateInput!) { drawGameCreate(input: $i) {
  game { id segment { id name } } userErrors { code field } } }"""
GAME_UPDATE = """mutation($i: DrawGameUpdateInput!) { drawGameUpdate(input: $i) { game { segment { id } } userErrors { code field } } }"""
PLAY = """mutation($i: LuckyDrawPlayInput!) { luckyDrawPlay(input: $i) {
  play { id costPoints prize { kind } } pointsBalance userErrors { code field } } }"""
PRODUCT_CREATE = """mutation($i: ProductCreateInput!) { productCreate(input: $i) {
  product { id segment { id name } } userErrors { code field } } }"""
PRODUCT_UPDATE = """mutation($i: ProductUpdateInput!) { productUpdate(input: $i) {
  product { segment { id } } userErrors { code field } } }"""
SALE_CREATE = """mutation($i: FlashSaleCreateInput!) { flashSaleCreate(input: $i) { flashSale { id } userErrors { code } } }"""
BATCH = """mutation($input: PurchaseRecordBatchInput!) { purchaseRecordBatch(input: $input) {
  results { pointsEarned userErrors { code } } userErrors { code } } }"""
PREVIEW = """mutation($i: PointsEarnPreviewInput!) { pointsEarnPreview(input: $i) {
  points breakdown { ruleCode points } userErrors { code field } } }"""
CHECK_IN = """mutation($k: String!) { memberCheckIn(input: {idempotencyKey: $k}) { pointsEarned userErrors { code } } }"""
BREAKDOWNS = """{ viewer { member { pointsLedger(first: 20) { edges { node { kind points breakdown { ruleCode points } } } } } } }"""
UNKNOWN_SEGMENT = to_global_id("Segment", 999_999_999)


async def segment_of(api, op: str, *member_ids: int) -> dict:
    """A segment whose members are exactly these (a fresh tag on them)."""
    tag = unique("段")
    if member_ids:
        ids = [to_global_id("Member", m) for m in member_ids]
        added = await api.post(TAG_ADD, {"ids": ids, "tag": tag}, token=op, admin=True)
        assert added["data"]["memberTagAdd"] == {"count": len(member_ids), "userErrors": []}
    name = unique("段")
    made = await api.post(SEGMENT, {"i": {"name": name, "filter": {"tagsAll": [tag]}}}, token=op, admin=True)
    segment = made["data"]["segmentCreate"]["segment"]
    assert segment == {"id": segment["id"], "name": name}
    return segment


async def count(table: str) -> int:
    return int((await db.fetch(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"])


def base_points(amount_fen: int) -> int:
    """What the seeded default rule gives a NORMAL member for a receipt (points per yuan, ×100%)."""
    return amount_fen * settings().points_per_yuan // 100


# --- earning rules -------------------------------------------------------------------------------------

async def test_a_segment_rule_adds_points_only_for_members_of_the_segment(api):
    op = await operator_token(api)
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    inside, inside_token = await make_member()
    outside, outside_token = await make_member()
    segment = await segment_of(api, op, inside)
    code = unique("SEGRULE")
    made = (await api.post(RULE_CREATE, {"i": {
        "code": code, "name": "会员段加赠", "trigger": "PURCHASE", "action": "FIXED_POINTS", "actionValue": 77,
        "conditions": {"merchantCodes": [merchant]}, "segmentId": segment["id"]}}, token=op, admin=True))
    rule = made["data"]["earnRuleCreate"]
    assert rule["userErrors"] == [] and rule["rule"]["segment"] == segment
    base = base_points(10_000)
    got_in = (await api.signed(PURCHASE, {"input": purchase_input(inside, 10_000, merchant=merchant)}))
    got_out = (await api.signed(PURCHASE, {"input": purchase_input(outside, 10_000, merchant=merchant)}))
    assert got_in["data"]["purchaseRecord"]["pointsEarned"] == base + 77
    assert got_out["data"]["purchaseRecord"]["pointsEarned"] == base
    assert (await snapshot(inside))["balance"] == base + 77 and (await snapshot(outside))["balance"] == base

    async def rules_listed(token: str) -> list[list[str]]:
        edges = (await api.post(BREAKDOWNS, token=token))["data"]["viewer"]["member"]["pointsLedger"]["edges"]
        return [[b["ruleCode"] for b in e["node"]["breakdown"] or []] for e in edges if e["node"]["kind"] == "EARN"]

    assert await rules_listed(inside_token) == [["DEFAULT_PURCHASE", code]]
    assert await rules_listed(outside_token) == [["DEFAULT_PURCHASE"]]  # the segment's rule is not listed


async def test_previews_and_check_ins_apply_segment_rules_to_members_of_the_segment(api):
    op = await operator_token(api)
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    inside, inside_token = await make_member()
    outside, outside_token = await make_member()
    segment = await segment_of(api, op, inside)
    for trigger, conditions, value in (("PURCHASE", {"merchantCodes": [merchant]}, 31), ("CHECK_IN", {}, 13)):
        made = await api.post(RULE_CREATE, {"i": {
            "code": unique("SEGRULE"), "name": "会员段加赠", "trigger": trigger, "action": "FIXED_POINTS",
            "actionValue": value, "conditions": conditions, "segmentId": segment["id"]}}, token=op, admin=True)
        assert made["data"]["earnRuleCreate"]["userErrors"] == []
    previews = []
    for member in (inside, outside):
        answer = await api.post(PREVIEW, {"i": {"memberId": to_global_id("Member", member), "merchantCode": merchant,
                                                "amountFen": 10_000}}, token=op, admin=True)
        previews.append(answer["data"]["pointsEarnPreview"])
    base = base_points(10_000)
    assert previews[0]["points"] == base + 31 and previews[1]["points"] == base
    assert [b["ruleCode"] for b in previews[1]["breakdown"]] == ["DEFAULT_PURCHASE"]
    earned = []
    for token in (inside_token, outside_token):
        checked = (await api.post(CHECK_IN, {"k": unique("K")}, token=token))["data"]["memberCheckIn"]
        assert checked["userErrors"] == []
        earned.append(checked["pointsEarned"])
    assert earned[0] == earned[1] + 13  # what other active check-in rules give, both get; the segment's 13 one
    assert (await snapshot(inside))["balance"] == earned[0] and (await snapshot(outside))["balance"] == earned[1]


async def test_a_batch_applies_the_segment_rule_receipt_by_receipt(api):
    op = await operator_token(api)
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    inside = [(await make_member())[0] for _ in range(3)]
    outside = [(await make_member())[0] for _ in range(3)]
    segment = await segment_of(api, op, *inside)
    made = await api.post(RULE_CREATE, {"i": {
        "code": unique("SEGRULE"), "name": "会员段加赠", "trigger": "PURCHASE", "action": "FIXED_POINTS",
        "actionValue": 40, "conditions": {"merchantCodes": [merchant]}, "segmentId": segment["id"]}},
        token=op, admin=True)
    assert made["data"]["earnRuleCreate"]["userErrors"] == []
    receipts = [purchase_input(m, 5_000, merchant=merchant) for m in inside + outside]  # 6: the set-based path
    answer = (await api.signed(BATCH, {"input": {"purchases": receipts}}))["data"]["purchaseRecordBatch"]
    assert answer["userErrors"] == []
    base = base_points(5_000)
    assert [r["pointsEarned"] for r in answer["results"]] == [base + 40] * 3 + [base] * 3
    assert [(await snapshot(m))["balance"] for m in inside + outside] == [base + 40] * 3 + [base] * 3


async def test_one_membership_query_per_segment_per_receipt_and_none_without_segment_rules(api, monkeypatch):
    op = await operator_token(api)
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    member, _ = await make_member()
    asked: list[int] = []
    real = membership.is_member

    async def counted(f, member_id):
        asked.append(member_id)
        return await real(f, member_id)

    monkeypatch.setattr(membership, "is_member", counted)
    # No rule has a segment: nothing is asked, the earn is the seeded rule's (and the fast path's plan stands).
    plain = await api.signed(PURCHASE, {"input": purchase_input(member, 10_000)})
    assert plain["data"]["purchaseRecord"]["pointsEarned"] == base_points(10_000) and asked == []
    plan = await earning.purchase_plan(member, "M001", None, 10_000, clock.now())
    assert plan is not None and plan.segments is None and asked == []
    # Two rules of one segment on another merchant: a receipt at M001 still asks nothing.
    segment = await segment_of(api, op, member)
    for value in (5, 6):
        made = await api.post(RULE_CREATE, {"i": {
            "code": unique("SEGRULE"), "name": f"加赠{value}", "trigger": "PURCHASE", "action": "FIXED_POINTS",
            "actionValue": value, "stacking": "ADD", "conditions": {"merchantCodes": [merchant], "minAmountFen": value},
            "segmentId": segment["id"]}}, token=op, admin=True)
        assert made["data"]["earnRuleCreate"]["userErrors"] == []
    elsewhere = await api.signed(PURCHASE, {"input": purchase_input(member, 10_000)})
    assert elsewhere["data"]["purchaseRecord"]["pointsEarned"] == base_points(10_000) and asked == []
    # At the segment rules' merchant: one question for the two rules of the one segment.
    there = await api.signed(PURCHASE, {"input": purchase_input(member, 10_000, merchant=merchant)})
    assert there["data"]["purchaseRecord"]["pointsEarned"] == base_points(10_000) + 11
    assert asked == [member]


async def test_operators_set_check_and_clear_a_rules_segment(api):
    op = await operator_token(api)
    merchant = await make_merchant()
    await bind_demo_key(merchant)
    member, _ = await make_member()
    segment = await segment_of(api, op, member)
    data = {"code": unique("SEGRULE"), "name": "会员段加赠", "trigger": "PURCHASE", "action": "FIXED_POINTS",
            "actionValue": 9, "conditions": {"merchantCodes": [merchant]}}
    rules_before = await count("earn_rule")
    unknown = (await api.post(RULE_CREATE, {"i": {**data, "segmentId": UNKNOWN_SEGMENT}}, token=op, admin=True))
    assert unknown["data"]["earnRuleCreate"] == {"rule": None,
                                                 "userErrors": [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]}
    not_a_segment = (await api.post(RULE_CREATE, {"i": {**data, "segmentId": to_global_id("Member", member)}},
                                    token=op, admin=True))["data"]["earnRuleCreate"]
    assert not_a_segment["userErrors"] == [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]
    assert await count("earn_rule") == rules_before
    rule = (await api.post(RULE_CREATE, {"i": data}, token=op, admin=True))["data"]["earnRuleCreate"]["rule"]
    assert rule["segment"] is None
    bad = (await api.post(RULE_UPDATE, {"i": {"ruleId": rule["id"], "segmentId": UNKNOWN_SEGMENT}}, token=op,
                          admin=True))["data"]["earnRuleUpdate"]
    assert bad["userErrors"] == [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]
    set_ = (await api.post(RULE_UPDATE, {"i": {"ruleId": rule["id"], "segmentId": segment["id"]}}, token=op,
                           admin=True))["data"]["earnRuleUpdate"]
    assert set_ == {"rule": {"id": rule["id"], "segment": {"id": segment["id"]}}, "userErrors": []}
    kept = (await api.post(RULE_UPDATE, {"i": {"ruleId": rule["id"], "name": "改名", "segmentId": None}}, token=op,
                           admin=True))["data"]["earnRuleUpdate"]
    assert kept["rule"]["segment"] == {"id": segment["id"]}  # null leaves it, as every optional field of the input
    cleared = (await api.post(RULE_UPDATE, {"i": {"ruleId": rule["id"], "clear": ["SEGMENT_ID"]}}, token=op,
                              admin=True))["data"]["earnRuleUpdate"]
    assert cleared == {"rule": {"id": rule["id"], "segment": None}, "userErrors": []}
    outsider, _ = await make_member()
    earned = await api.signed(PURCHASE, {"input": purchase_input(outsider, 10_000, merchant=merchant)})
    assert earned["data"]["purchaseRecord"]["pointsEarned"] == base_points(10_000) + 9  # everyone's again


# --- tasks ---------------------------------------------------------------------------------------------

async def test_a_segment_task_is_offered_and_paid_only_inside_the_segment(api):
    op = await operator_token(api)
    inside, inside_token = await make_member()
    outside, outside_token = await make_member()
    segment = await segment_of(api, op, inside)
    made = (await api.post(TASK_CREATE, {"i": {"code": unique("T"), "name": "段内分享", "period": "ONCE",
                                               "metric": "SHARE", "target": 1, "rewardPoints": 25,
                                               "segmentId": segment["id"]}}, token=op, admin=True))["data"]["taskCreate"]
    assert made["userErrors"] == [] and made["task"]["segment"] == segment
    task_id = made["task"]["id"]
    for token in (inside_token, outside_token):
        assert (await api.post(SHARE, {"k": unique("K")}, token=token))["data"]["shareRecord"]["userErrors"] == []

    async def offered(token: str) -> list[str]:
        return [t["task"]["id"] for t in (await api.post(TASKS, token=token))["data"]["viewer"]["member"]["tasks"]]

    assert task_id in await offered(inside_token)
    assert task_id not in await offered(outside_token)
    before = await snapshot(outside)
    claims = await count("task_claim")
    refused = (await api.post(TASK_CLAIM, {"t": task_id, "k": unique("K")}, token=outside_token))["data"]["taskClaim"]
    assert refused == {"pointsEarned": None, "pointsBalance": None,
                       "userErrors": [{"code": "SEGMENT_NOT_ELIGIBLE", "field": ["taskId"]}]}
    assert await snapshot(outside) == before and await count("task_claim") == claims
    balance = (await snapshot(inside))["balance"]
    paid = (await api.post(TASK_CLAIM, {"t": task_id, "k": unique("K")}, token=inside_token))["data"]["taskClaim"]
    assert paid == {"pointsEarned": 25, "pointsBalance": balance + 25, "userErrors": []}


async def test_operators_set_check_and_clear_a_tasks_segment(api):
    op = await operator_token(api)
    member, token = await make_member()
    segment = await segment_of(api, op)  # nobody in it
    data = {"code": unique("T"), "name": "段内任务", "period": "ONCE", "metric": "SHARE", "target": 1, "rewardPoints": 5}
    tasks_before = await count("earn_task")
    unknown = (await api.post(TASK_CREATE, {"i": {**data, "segmentId": UNKNOWN_SEGMENT}}, token=op,
                              admin=True))["data"]["taskCreate"]
    assert unknown == {"task": None, "userErrors": [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]}
    assert await count("earn_task") == tasks_before
    task = (await api.post(TASK_CREATE, {"i": {**data, "segmentId": segment["id"]}}, token=op,
                           admin=True))["data"]["taskCreate"]["task"]
    offered = [t["task"]["id"] for t in (await api.post(TASKS, token=token))["data"]["viewer"]["member"]["tasks"]]
    assert task["id"] not in offered
    bad = (await api.post(TASK_UPDATE, {"i": {"taskId": task["id"], "segmentId": UNKNOWN_SEGMENT}}, token=op,
                          admin=True))["data"]["taskUpdate"]
    assert bad["userErrors"] == [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]
    cleared = (await api.post(TASK_UPDATE, {"i": {"taskId": task["id"], "clear": ["SEGMENT_ID"]}}, token=op,
                              admin=True))["data"]["taskUpdate"]
    assert cleared == {"task": {"id": task["id"], "segment": None}, "userErrors": []}
    offered = [t["task"]["id"] for t in (await api.post(TASKS, token=token))["data"]["viewer"]["member"]["tasks"]]
    assert task["id"] in offered


# --- draw games ----------------------------------------------------------------------------------------

async def new_game(api, op: str, segment_id: str | None) -> dict:
    data = {"name": unique("转盘"), "kind": "WHEEL", "costPoints": 10, "startsAt": later(minutes=-1),
            "endsAt": later(days=1), "prizes": [{"name": "谢谢参与", "kind": "NOTHING", "weight": 1}],
            "segmentId": segment_id}
    return (await api.post(GAME_CREATE, {"i": data}, token=op, admin=True))["data"]["drawGameCreate"]


async def test_a_segment_game_is_played_only_inside_the_segment(api):
    op = await operator_token(api)
    inside, inside_token = await funded_member(100)
    outside, outside_token = await funded_member(100)
    segment = await segment_of(api, op, inside)
    made = await new_game(api, op, segment["id"])
    assert made["userErrors"] == [] and made["game"]["segment"] == segment
    game = made["game"]
    before, plays = await state(outside), await count("draw_play")
    key = unique("K")
    refused = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}},
                              token=outside_token))["data"]["luckyDrawPlay"]
    assert refused == {"play": None, "pointsBalance": None,
                       "userErrors": [{"code": "SEGMENT_NOT_ELIGIBLE", "field": ["input", "gameId"]}]}
    assert await state(outside) == before and await count("draw_play") == plays
    again = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}},
                            token=outside_token))["data"]["luckyDrawPlay"]
    assert again == refused and await state(outside) == before  # the key was not taken by the refusal
    key = unique("K")
    played = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}},
                             token=inside_token))["data"]["luckyDrawPlay"]
    assert played["userErrors"] == [] and played["play"]["costPoints"] == 10 and played["pointsBalance"] == 90
    repeat = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": key}},
                             token=inside_token))["data"]["luckyDrawPlay"]
    assert repeat["play"]["id"] == played["play"]["id"] and repeat["pointsBalance"] == 90
    assert await count("draw_play") == plays + 1


async def test_operators_set_check_and_clear_a_games_segment(api):
    op = await operator_token(api)
    games_before = await count("draw_game")
    unknown = await new_game(api, op, UNKNOWN_SEGMENT)
    assert unknown == {"game": None, "userErrors": [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]}
    assert await count("draw_game") == games_before
    member, token = await funded_member(50)
    segment = await segment_of(api, op)  # nobody in it
    game = (await new_game(api, op, segment["id"]))["game"]
    bad = (await api.post(GAME_UPDATE, {"i": {"gameId": game["id"], "segmentId": UNKNOWN_SEGMENT}}, token=op,
                          admin=True))["data"]["drawGameUpdate"]
    assert bad == {"game": None, "userErrors": [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]}
    kept = (await api.post(GAME_UPDATE, {"i": {"gameId": game["id"], "costPoints": 5}}, token=op,
                           admin=True))["data"]["drawGameUpdate"]
    assert kept == {"game": {"segment": {"id": segment["id"]}}, "userErrors": []}
    cleared = (await api.post(GAME_UPDATE, {"i": {"gameId": game["id"], "clear": ["segmentId"]}}, token=op,
                              admin=True))["data"]["drawGameUpdate"]
    assert cleared == {"game": {"segment": None}, "userErrors": []}
    played = (await api.post(PLAY, {"i": {"gameId": game["id"], "idempotencyKey": unique("K")}},
                             token=token))["data"]["luckyDrawPlay"]
    assert played["userErrors"] == [] and played["pointsBalance"] == 45


# --- products ------------------------------------------------------------------------------------------

async def test_a_segment_product_is_sold_only_inside_the_segment(api):
    op = await operator_token(api)
    inside, inside_token = await funded_member(500)
    outside, outside_token = await funded_member(500)
    segment = await segment_of(api, op, inside)
    zone = unique("专享")
    made = (await api.post(PRODUCT_CREATE, {"i": {"kind": "COUPON", "name": unique("商品"), "pointsPrice": 100,
                                                  "stock": 5, "segmentId": segment["id"], "zone": zone}}, token=op,
                           admin=True))["data"]["productCreate"]
    assert made["userErrors"] == [] and made["product"]["segment"] == segment
    product = made["product"]
    # The catalogue shows it to the segment's members only (as an exclusive zone shows to its tiers).
    browse = """query($z: String) { products(first: 5, zone: $z) { edges { node { id } } } }"""
    for token, seen in ((inside_token, [product["id"]]), (outside_token, []), (None, [])):
        listed = await api.post(browse, {"z": zone}, token=token)
        assert [e["node"]["id"] for e in listed["data"]["products"]["edges"]] == seen
    before = await state(outside, product["id"])
    refused = (await api.post(REDEEM, {"i": {"productId": product["id"], "quantity": 1, "idempotencyKey": unique("K")}},
                              token=outside_token))["data"]["pointsMallRedeem"]
    assert refused["order"] is None and refused["userErrors"] == [
        {"code": "SEGMENT_NOT_ELIGIBLE", "field": ["input", "productId"], "message": refused["userErrors"][0]["message"]}]
    assert await state(outside, product["id"]) == before
    sold = (await api.post(REDEEM, {"i": {"productId": product["id"], "quantity": 1, "idempotencyKey": unique("K")}},
                           token=inside_token))["data"]["pointsMallRedeem"]
    assert sold["userErrors"] == [] and sold["pointsBalance"] == 400 and sold["order"]["points"] == 100
    assert (await state(inside, product["id"]))["stock"] == 4


async def test_a_flash_sale_of_a_segment_product_is_sold_only_inside_the_segment(api):
    op = await operator_token(api)
    inside, inside_token = await funded_member(300)
    outside, outside_token = await funded_member(300)
    segment = await segment_of(api, op, inside)
    product = await create_product(api, op, kind="COUPON", stock=0, segmentId=segment["id"])
    sale = (await api.post(SALE_CREATE, {"i": {"productId": product["id"], "title": unique("秒杀"), "pointsPrice": 100,
                                               "stock": 2, "startsAt": later(minutes=-1), "endsAt": later(hours=1)}},
                           token=op, admin=True))["data"]["flashSaleCreate"]
    assert sale["userErrors"] == []
    sale_id = sale["flashSale"]["id"]
    before = await state(outside)
    stock = (await db.fetch("SELECT stock FROM flash_sale WHERE id = $1", from_global_id(sale_id)[1]))[0]["stock"]
    refused = (await api.post(FLASH, {"i": {"flashSaleId": sale_id, "idempotencyKey": unique("K")}},
                              token=outside_token))["data"]["flashSaleRedeem"]
    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [("SEGMENT_NOT_ELIGIBLE", ["input", "flashSaleId"])]
    assert await state(outside) == before
    assert (await db.fetch("SELECT stock FROM flash_sale WHERE id = $1", from_global_id(sale_id)[1]))[0]["stock"] == stock
    sold = (await api.post(FLASH, {"i": {"flashSaleId": sale_id, "idempotencyKey": unique("K")}},
                           token=inside_token))["data"]["flashSaleRedeem"]
    assert sold["userErrors"] == [] and sold["pointsBalance"] == 200


async def test_operators_set_check_and_clear_a_products_segment(api):
    op = await operator_token(api)
    member, token = await funded_member(300)
    products_before = await count("product")
    unknown = (await api.post(PRODUCT_CREATE, {"i": {"kind": "COUPON", "name": unique("商品"), "pointsPrice": 100,
                                                     "stock": 5, "segmentId": UNKNOWN_SEGMENT}}, token=op,
                              admin=True))["data"]["productCreate"]
    assert unknown == {"product": None, "userErrors": [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]}
    assert await count("product") == products_before
    segment = await segment_of(api, op)  # nobody in it
    product = await create_product(api, op, segmentId=segment["id"])
    bad = (await api.post(PRODUCT_UPDATE, {"i": {"productId": product["id"], "segmentId": UNKNOWN_SEGMENT}}, token=op,
                          admin=True))["data"]["productUpdate"]
    assert bad == {"product": None, "userErrors": [{"code": "NOT_FOUND", "field": ["input", "segmentId"]}]}
    kept = (await api.post(PRODUCT_UPDATE, {"i": {"productId": product["id"], "stockDelta": 1}}, token=op,
                           admin=True))["data"]["productUpdate"]
    assert kept == {"product": {"segment": {"id": segment["id"]}}, "userErrors": []}
    cleared = (await api.post(PRODUCT_UPDATE, {"i": {"productId": product["id"], "clear": ["segmentId"]}}, token=op,
                              admin=True))["data"]["productUpdate"]
    assert cleared == {"product": {"segment": None}, "userErrors": []}
    sold = (await api.post(REDEEM, {"i": {"productId": product["id"], "quantity": 1, "idempotencyKey": unique("K")}},
                           token=token))["data"]["pointsMallRedeem"]
    assert sold["userErrors"] == [] and sold["pointsBalance"] == 200


# --- the public schema ---------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name", ["Product", "DrawGame", "Task"])
async def test_members_cannot_ask_for_a_segment(api, type_name):
    _, token = await make_member()
    fragment = {"Product": "products(first: 1) { edges { node { segment { name } } } }",
                "DrawGame": "drawGames(first: 1) { edges { node { segment { name } } } }",
                "Task": "viewer { member { tasks { task { segment { name } } } } }"}[type_name]
    answer = await api.post("{ " + fragment + " }", token=token)
    assert answer["data"] is None and "segment" in answer["errors"][0]["message"]
