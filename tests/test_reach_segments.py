"""Tags, segments and campaigns (issue 13 items 3 and 5) through the operators' endpoint: tagging by hand,
from a segment and from uploaded CSV/XLSX lists; segments counted and paged set-based; campaigns sent to a
segment with a holdout, their counts and their effect."""
from __future__ import annotations

import asyncio
import base64
import io
from datetime import timedelta

from api.db import fetch, transaction
from api.schema.ids import from_global_id, to_global_id
from api.services import clock
from api.services.notifications import dispatcher
from api.services.segments import campaigns, segments
from tests.conftest import PURCHASE, make_member, new_phone, purchase_input, unique
from tests.mall_helpers import create_product, funded_member, operator_token

TAG_ADD = """mutation($ids: [ID!]!, $tag: String!) { memberTagAdd(input: {memberIds: $ids, tag: $tag}) {
  count userErrors { code field } } }"""
TAG_REMOVE = """mutation($ids: [ID!]!, $tag: String!) { memberTagRemove(input: {memberIds: $ids, tag: $tag}) {
  count userErrors { code field } } }"""
SEGMENT = """mutation($i: SegmentCreateInput!) { segmentCreate(input: $i) {
  segment { id name memberCount filter { tagsAll pointsBalanceMin birthdayMonths }
            members(first: 50) { edges { node { id tags } } pageInfo { hasNextPage } } }
  userErrors { code field } } }"""
IMPORT = """mutation($i: MemberTagImportInput!) { memberTagImport(input: $i) { rows count unknown userErrors { code field } } }"""
FROM_SEGMENT = """mutation($s: ID!, $tag: String!) { memberTagAddFromSegment(input: {segmentId: $s, tag: $tag}) {
  count userErrors { code } } }"""
CAMPAIGN = """mutation($i: CampaignCreateInput!) { campaignCreate(input: $i) {
  campaign { id name status channel sent delivered failed opened } userErrors { code field } } }"""
CAMPAIGNS = """{ campaigns(first: 20) { edges { node { id name status sent delivered failed opened holdoutPercent
  effect(days: 7) { days liftPermille target { members purchasers purchases sales { amountFen } redemptions }
                    holdout { members purchasers purchases } } } } } }"""


def gid(member_id: int) -> str:
    return to_global_id("Member", member_id)


async def tags_of(member_id: int) -> list[str]:
    return [r["tag"] for r in await fetch("SELECT tag FROM member_tag WHERE member_id = $1 ORDER BY tag", member_id)]


async def test_tags_by_hand_are_counted_audited_and_shown_to_operators(api):
    token = await operator_token(api)
    a, member_token = await make_member()
    b, _ = await make_member()
    tag = unique("高价值")
    added = await api.post(TAG_ADD, {"ids": [gid(a), gid(b)], "tag": tag}, token=token, admin=True)
    assert added["data"]["memberTagAdd"] == {"count": 2, "userErrors": []}
    again = await api.post(TAG_ADD, {"ids": [gid(a)], "tag": tag}, token=token, admin=True)
    assert again["data"]["memberTagAdd"]["count"] == 0
    shown = await api.post('query($id: ID!) { member(id: $id) { tags } }', {"id": gid(a)}, token=token, admin=True)
    assert shown["data"]["member"]["tags"] == [tag]
    removed = await api.post(TAG_REMOVE, {"ids": [gid(a)], "tag": tag}, token=token, admin=True)
    assert removed["data"]["memberTagRemove"]["count"] == 1
    assert await tags_of(a) == [] and await tags_of(b) == [tag]
    audited = await fetch("SELECT action FROM audit_log WHERE target_type = 'Tag' AND target_id = $1 ORDER BY id", tag)
    assert [r["action"] for r in audited] == ["member.tag_add", "member.tag_add", "member.tag_remove"]
    # a member never sees the operators' labels
    own = await api.post("{ viewer { member { tags } } }", token=member_token)
    assert own["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_bad_tag_input_changes_nothing(api):
    token = await operator_token(api)
    a, _ = await make_member()
    before = await fetch("SELECT COUNT(*) AS n FROM member_tag")
    unknown = await api.post(TAG_ADD, {"ids": [gid(a), to_global_id("Member", 999_999_999)], "tag": "x"}, token=token,
                             admin=True)
    assert unknown["data"]["memberTagAdd"]["userErrors"] == [{"code": "NOT_FOUND", "field": ["input", "memberIds", "1"]}]
    for bad in ("", "a" * 33, "tab\there"):
        answer = await api.post(TAG_ADD, {"ids": [gid(a)], "tag": bad}, token=token, admin=True)
        assert answer["data"]["memberTagAdd"]["userErrors"][0]["code"] == "INVALID_INPUT"
    assert await fetch("SELECT COUNT(*) AS n FROM member_tag") == before


async def test_a_segment_counts_and_pages_its_members_from_saved_conditions(api):
    token = await operator_token(api)
    tag = unique("seg")
    rich, _ = await funded_member(500)
    poor, _ = await funded_member(10)
    outsider, _ = await funded_member(900)
    await api.post(TAG_ADD, {"ids": [gid(rich), gid(poor)], "tag": tag}, token=token, admin=True)
    name = unique("段")
    answer = await api.post(SEGMENT, {"i": {"name": name, "filter": {"tagsAll": [tag], "pointsBalanceMin": 100}}},
                            token=token, admin=True)
    segment = answer["data"]["segmentCreate"]["segment"]
    assert segment["memberCount"] == 1
    assert [e["node"]["id"] for e in segment["members"]["edges"]] == [gid(rich)]
    assert segment["filter"] == {"tagsAll": [tag], "pointsBalanceMin": 100, "birthdayMonths": []}
    both = await api.post(SEGMENT, {"i": {"name": unique("段"), "filter": {"tagsAny": [tag]}}}, token=token, admin=True)
    assert {e["node"]["id"] for e in both["data"]["segmentCreate"]["segment"]["members"]["edges"]} == {gid(rich), gid(poor)}
    assert outsider not in (rich, poor)
    listed = await api.post("{ segments(first: 100) { edges { node { name memberCount } } } }", token=token, admin=True)
    assert {"name": name, "memberCount": 1} in [e["node"] for e in listed["data"]["segments"]["edges"]]
    fetched = await api.post('query($id: ID!) { node(id: $id) { ... on Segment { name memberCount } } }',
                             {"id": segment["id"]}, token=token, admin=True)
    assert fetched["data"]["node"] == {"name": name, "memberCount": 1}
    _, member_token = await make_member()
    hidden = await api.post('query($id: ID!) { node(id: $id) { id } }', {"id": segment["id"]}, token=member_token)
    assert hidden["data"]["node"] is None  # segments are the operators'
    taken = await api.post(SEGMENT, {"i": {"name": name, "filter": {}}}, token=token, admin=True)
    assert taken["data"]["segmentCreate"]["userErrors"] == [{"code": "CODE_TAKEN", "field": ["input", "name"]}]


async def test_segment_conditions_on_purchases_categories_tiers_and_birthdays(api):
    token = await operator_token(api)
    buyer, buyer_token = await make_member()
    idle, idle_token = await make_member()
    tag = unique("cond")
    await api.post(TAG_ADD, {"ids": [gid(buyer), gid(idle)], "tag": tag}, token=token, admin=True)
    await api.signed(PURCHASE, {"input": purchase_input(buyer, 5000)})
    month = clock.now().month
    await api.post('mutation($b: Date) { memberProfileUpdate(input: {birthday: $b}) { userErrors { code } } }',
                   {"b": f"1990-{month:02d}-15"}, token=idle_token)
    category = (await fetch("SELECT category FROM merchant WHERE code = 'M001'"))[0]["category"]

    async def members(filter_: dict) -> set[str]:
        answer = await api.post(SEGMENT, {"i": {"name": unique("c"), "filter": {"tagsAll": [tag], **filter_}}},
                                token=token, admin=True)
        assert answer["data"]["segmentCreate"]["userErrors"] == [], answer
        return {e["node"]["id"] for e in answer["data"]["segmentCreate"]["segment"]["members"]["edges"]}

    assert await members({"lastPurchaseWithinDays": 30}) == {gid(buyer)}
    assert await members({"noPurchaseForDays": 30}) == {gid(idle)}
    assert await members({"merchantCategories": [category]}) == {gid(buyer)}
    assert await members({"birthdayMonths": [month]}) == {gid(idle)}
    assert await members({"tierCodes": ["NORMAL"]}) == {gid(buyer), gid(idle)}
    assert await members({"tierCodes": ["DIAMOND"]}) == set()


async def test_bad_segment_input_changes_nothing(api):
    token = await operator_token(api)
    before = await fetch("SELECT COUNT(*) AS n FROM segment")
    for filter_, field in (({"birthdayMonths": [13]}, "birthdayMonths"),
                           ({"pointsBalanceMin": 10, "pointsBalanceMax": 5}, "pointsBalanceMin"),
                           ({"lastPurchaseWithinDays": 0}, "lastPurchaseWithinDays"),
                           ({"tagsAll": ["x" * 40]}, "tagsAll")):
        answer = await api.post(SEGMENT, {"i": {"name": unique("bad"), "filter": filter_}}, token=token, admin=True)
        errors = answer["data"]["segmentCreate"]["userErrors"]
        assert errors[0]["code"] == "INVALID_INPUT" and errors[0]["field"][:3] == ["input", "filter", field], answer
    assert await fetch("SELECT COUNT(*) AS n FROM segment") == before


def _xlsx(values: list) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for value in values:
        sheet.append([value])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_tags_from_uploaded_csv_and_xlsx_lists_and_from_a_segment(api):
    token = await operator_token(api)
    phone_a, phone_b = new_phone(), new_phone()
    a, _ = await make_member(phone_a)
    b, _ = await make_member(phone_b)
    tag = unique("upl")
    csv_file = f"手机号\n{phone_a[3:]}\n{new_phone()[3:]}\nnot-a-phone\n{phone_a}\n".encode()
    answer = await api.post(IMPORT, {"i": {"tag": tag, "fileName": "list.csv",
                                           "contentBase64": base64.b64encode(csv_file).decode()}}, token=token, admin=True)
    assert answer["data"]["memberTagImport"] == {"rows": 5, "count": 1, "unknown": 3, "userErrors": []}
    xlsx = _xlsx(["phone", int(phone_b[3:]), phone_a[3:]])
    answer = await api.post(IMPORT, {"i": {"tag": tag, "fileName": "LIST.XLSX",
                                           "contentBase64": base64.b64encode(xlsx).decode()}}, token=token, admin=True)
    assert answer["data"]["memberTagImport"] == {"rows": 3, "count": 1, "unknown": 1, "userErrors": []}
    assert await tags_of(a) == [tag] and await tags_of(b) == [tag]
    for name, content, field in (("list.txt", b"x", "fileName"), ("list.xlsx", b"not a workbook", "content")):
        bad = await api.post(IMPORT, {"i": {"tag": tag, "fileName": name, "contentBase64": base64.b64encode(content).decode()}},
                             token=token, admin=True)
        assert bad["data"]["memberTagImport"]["userErrors"] == [{"code": "INVALID_INPUT", "field": ["input", field]}]
    bad = await api.post(IMPORT, {"i": {"tag": tag, "fileName": "a.csv", "contentBase64": "@@@"}}, token=token, admin=True)
    assert bad["data"]["memberTagImport"]["userErrors"][0]["code"] == "INVALID_INPUT"
    # everyone with the uploaded tag gets a second tag through a segment
    segment = await api.post(SEGMENT, {"i": {"name": unique("s"), "filter": {"tagsAll": [tag]}}}, token=token, admin=True)
    second = unique("二")
    added = await api.post(FROM_SEGMENT, {"s": segment["data"]["segmentCreate"]["segment"]["id"], "tag": second},
                           token=token, admin=True)
    assert added["data"]["memberTagAddFromSegment"] == {"count": 2, "userErrors": []}
    assert await tags_of(a) == sorted([tag, second])


async def test_a_campaign_goes_to_the_segment_but_not_its_holdout_and_measures_the_effect(api):
    token = await operator_token(api)
    tag = unique("camp")
    people = [await make_member() for _ in range(12)]
    await api.post(TAG_ADD, {"ids": [gid(m) for m, _ in people], "tag": tag}, token=token, admin=True)
    seg = await api.post(SEGMENT, {"i": {"name": unique("camp"), "filter": {"tagsAll": [tag]}}}, token=token, admin=True)
    segment_id = seg["data"]["segmentCreate"]["segment"]["id"]
    created = await api.post(CAMPAIGN, {"i": {
        "name": unique("回归"), "segmentId": segment_id, "channel": "INBOX", "title": "{nickname}，好久不见",
        "body": "您是{tier}，还有 {points} 积分", "holdoutPercent": 40}}, token=token, admin=True)
    campaign = created["data"]["campaignCreate"]["campaign"]
    assert campaign["status"] == "SCHEDULED" and campaign["sent"] == 0
    campaign_pk = int((await fetch("SELECT MAX(id) AS id FROM campaign"))[0]["id"])
    held = {m for m, _ in people if campaigns.holdout(campaign_pk, m, 40)}
    target = [(m, t) for m, t in people if m not in held]
    assert held and target  # 12 members: both groups are populated for this campaign id (deterministic)
    await campaigns.send_due()
    await campaigns.send_due()  # a second run sends nothing twice
    notes = await fetch("SELECT member_id, title, body FROM notification WHERE campaign_id = $1", campaign_pk)
    assert sorted(n["member_id"] for n in notes) == sorted(m for m, _ in target)
    tier = (await fetch("SELECT name FROM tier WHERE code = 'NORMAL'"))[0]["name"]
    assert {(n["title"], n["body"]) for n in notes} == {("会员，好久不见", f"您是{tier}，还有 0 积分")}  # the template filled
    # one target member reads it, and buys something; one holdout member buys too
    reader, reader_token = target[0]
    inbox = await api.post("{ viewer { member { notifications(first: 5) { edges { node { id topic } } } } } }",
                           token=reader_token)
    note_id = next(e["node"]["id"] for e in inbox["data"]["viewer"]["member"]["notifications"]["edges"]
                   if e["node"]["topic"] == "CAMPAIGN")
    await api.post("mutation($ids: [ID!]!) { notificationMarkRead(input: {notificationIds: $ids}) { count } }",
                   {"ids": [note_id]}, token=reader_token)
    await api.signed(PURCHASE, {"input": purchase_input(reader, 8800)})
    await api.signed(PURCHASE, {"input": purchase_input(sorted(held)[0], 1000)})
    listed = await api.post(CAMPAIGNS, token=token, admin=True)
    node = next(e["node"] for e in listed["data"]["campaigns"]["edges"] if e["node"]["id"] == campaign["id"])
    assert (node["status"], node["sent"], node["delivered"], node["failed"], node["opened"]) == (
        "SENT", len(target), len(target), 0, 1)
    effect = node["effect"]
    assert effect["target"] == {"members": len(target), "purchasers": 1, "purchases": 1, "sales": {"amountFen": 8800},
                                "redemptions": 0}
    assert effect["holdout"] == {"members": len(held), "purchasers": 1, "purchases": 1}
    assert effect["liftPermille"] == 1000 // len(target) - 1000 // len(held)


async def test_a_pushed_campaign_is_throttled_through_its_channel(api):
    token = await operator_token(api)
    tag = unique("push")
    people = [await make_member() for _ in range(3)]
    await api.post(TAG_ADD, {"ids": [gid(m) for m, _ in people], "tag": tag}, token=token, admin=True)
    seg = await api.post(SEGMENT, {"i": {"name": unique("push"), "filter": {"tagsAll": [tag]}}}, token=token, admin=True)
    await api.post(CAMPAIGN, {"i": {"name": unique("短信"), "segmentId": seg["data"]["segmentCreate"]["segment"]["id"],
                                    "channel": "SMS", "title": "周末特惠", "body": "{nickname} 您好"}}, token=token, admin=True)
    campaign_pk = int((await fetch("SELECT MAX(id) AS id FROM campaign"))[0]["id"])
    await campaigns.send_due()
    statuses = await fetch("SELECT status FROM notification WHERE campaign_id = $1", campaign_pk)
    assert [r["status"] for r in statuses] == ["PENDING"] * 3

    class Recorder:
        name = "SMS"
        sent: list[int] = []

        async def send(self, message):
            from api.services.notifications.channels.base import Outcome
            Recorder.sent.append(message.notification_id)
            return Outcome(True, code="OK")

    clock.freeze((clock.now() + timedelta(days=1)).replace(hour=4, minute=0))  # noon in Shanghai: not quiet
    try:
        dispatcher.use_channels({"SMS": Recorder()})
        await dispatcher.dispatch_due()
    finally:
        dispatcher.use_channels(None)
        clock.freeze(None)
    counts = await campaigns.counts([campaign_pk])
    assert (counts[campaign_pk].sent, counts[campaign_pk].delivered) == (3, 3)


async def test_bad_campaign_input_changes_nothing(api):
    token = await operator_token(api)
    seg = await api.post(SEGMENT, {"i": {"name": unique("x"), "filter": {}}}, token=token, admin=True)
    segment_id = seg["data"]["segmentCreate"]["segment"]["id"]
    before = await fetch("SELECT COUNT(*) AS n FROM campaign")
    base = {"name": "n", "segmentId": segment_id, "channel": "INBOX", "title": "t", "body": "b"}
    for change, field in (({"body": "{secret}"}, "body"), ({"title": "{"}, "title"), ({"holdoutPercent": 95}, "holdoutPercent"),
                          ({"sendAt": (clock.now() - timedelta(days=2)).isoformat()}, "sendAt"),
                          ({"segmentId": to_global_id("Segment", 999_999)}, "segmentId")):
        answer = await api.post(CAMPAIGN, {"i": {**base, **change}}, token=token, admin=True)
        errors = answer["data"]["campaignCreate"]["userErrors"]
        assert errors and errors[0]["field"] == ["input", field], (change, answer)
    assert await fetch("SELECT COUNT(*) AS n FROM campaign") == before


async def test_segments_on_lifecycle_stages_and_rfm_scores_read_insights_table(api, backend):
    token = await operator_token(api)
    tag = unique("rfm")
    lost, _ = await make_member()
    loyal, _ = await make_member()
    await api.post(TAG_ADD, {"ids": [gid(lost), gid(loyal)], "tag": tag}, token=token, admin=True)
    query = {"name": unique("rfm"), "filter": {"tagsAll": [tag], "lifecycleStages": ["LOST", "DECLINING"], "mMin": 4}}
    if not await segments.insight_available():  # this tree without issue 13 item 2: refused, nothing saved
        refused = await api.post(SEGMENT, {"i": query}, token=token, admin=True)
        assert refused["data"]["segmentCreate"]["userErrors"] == [
            {"code": "INVALID_INPUT", "field": ["input", "filter", "lifecycleStages"]}]
        when = "TIMESTAMPTZ" if backend == "postgres" else "TEXT"
        async with transaction() as tx:  # the columns insight's migration gives member_insight
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS member_insight (member_id BIGINT PRIMARY KEY, recency_days INT NOT NULL,"
                " frequency INT NOT NULL, monetary_fen BIGINT NOT NULL, r SMALLINT NOT NULL, f SMALLINT NOT NULL,"
                f" m SMALLINT NOT NULL, lifecycle VARCHAR(10) NOT NULL, stage_since {when} NOT NULL,"
                f" computed_at {when} NOT NULL)")
    now = clock.now()
    async with transaction() as tx:
        for member_id, stage, m in ((lost, "LOST", 5), (loyal, "STABLE", 5)):
            await tx.execute("INSERT INTO member_insight (member_id, recency_days, frequency, monetary_fen, r, f, m,"
                             " lifecycle, stage_since, computed_at) VALUES ($1, 200, 3, 90000, 1, 3, $2, $3, $4, $4)",
                             member_id, m, stage, now)
    answer = await api.post(SEGMENT, {"i": query}, token=token, admin=True)
    segment = answer["data"]["segmentCreate"]["segment"]
    assert segment["memberCount"] == 1 and [e["node"]["id"] for e in segment["members"]["edges"]] == [gid(lost)]
    bad = await api.post(SEGMENT, {"i": {"name": unique("rfm"), "filter": {"rMin": 4, "rMax": 2}}}, token=token,
                         admin=True)
    assert bad["data"]["segmentCreate"]["userErrors"] == [{"code": "INVALID_INPUT", "field": ["input", "filter", "rMin"]}]
    high = await api.post(SEGMENT, {"i": {"name": unique("rfm"), "filter": {"tagsAll": [tag], "fMin": 3, "fMax": 3}}},
                          token=token, admin=True)
    assert high["data"]["segmentCreate"]["segment"]["memberCount"] == 2


OFFER_CAMPAIGN = """mutation($i: CampaignCreateInput!) { campaignCreate(input: $i) {
  campaign { id grantPoints couponProduct { id } } userErrors { code field } } }"""


async def offer_audience(api, token: str, n: int) -> tuple[list[int], str]:
    tag = unique("offer")
    people = [(await make_member())[0] for _ in range(n)]
    await api.post(TAG_ADD, {"ids": [gid(m) for m in people], "tag": tag}, token=token, admin=True)
    seg = await api.post(SEGMENT, {"i": {"name": unique("offer"), "filter": {"tagsAll": [tag]}}}, token=token, admin=True)
    return people, seg["data"]["segmentCreate"]["segment"]["id"]


async def offers_of(member_id: int, campaign_pk: int) -> tuple[int, int, int]:
    """(balance, campaign entries, campaign vouchers) of a member."""
    rows = await fetch(
        "SELECT a.balance, (SELECT COUNT(*) FROM points_entry e WHERE e.account_id = a.id AND e.source_type = 'campaign'"
        " AND e.source_ref = $2) AS entries, (SELECT COUNT(*) FROM voucher v JOIN mall_order o ON o.id = v.order_id"
        " WHERE v.member_id = a.member_id AND o.channel = 'CAMPAIGN' AND o.idempotency_key = $2) AS vouchers"
        " FROM points_account a WHERE a.member_id = $1", member_id, f"campaign:{campaign_pk}")
    return int(rows[0]["balance"]), int(rows[0]["entries"]), int(rows[0]["vouchers"])


async def test_a_campaign_offer_gives_each_target_member_points_and_a_voucher_once(api):
    token = await operator_token(api)
    people, segment_id = await offer_audience(api, token, 10)
    coupon = await create_product(api, token, kind="COUPON", stock=3)  # fewer than the audience: stock is not drawn on
    data = {"name": unique("回归礼"), "segmentId": segment_id, "channel": "INBOX", "title": "送您 {points} 积分",
            "body": "{nickname}，积分和券已到账", "holdoutPercent": 30, "grantPoints": 200,
            "couponProductId": coupon["id"], "idempotencyKey": unique("K")}
    first = (await api.post(OFFER_CAMPAIGN, {"i": data}, token=token, admin=True))["data"]["campaignCreate"]
    assert first["userErrors"] == [] and first["campaign"]["grantPoints"] == 200
    assert first["campaign"]["couponProduct"] == {"id": coupon["id"]}
    campaigns_before = await fetch("SELECT COUNT(*) AS n FROM campaign")
    again = (await api.post(OFFER_CAMPAIGN, {"i": data}, token=token, admin=True))["data"]["campaignCreate"]
    assert again == first and await fetch("SELECT COUNT(*) AS n FROM campaign") == campaigns_before
    other = (await api.post(OFFER_CAMPAIGN, {"i": {**data, "grantPoints": 300}}, token=token,
                            admin=True))["data"]["campaignCreate"]
    assert [e["code"] for e in other["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"] and other["campaign"] is None
    campaign_pk = int((await fetch("SELECT MAX(id) AS id FROM campaign"))[0]["id"])
    held = {m for m in people if campaigns.holdout(campaign_pk, m, 30)}
    assert held and len(held) < len(people)
    await asyncio.gather(campaigns.send_due(), campaigns.send_due())  # two runs at once give each member one offer
    await campaigns.send_due()
    for m in people:
        assert await offers_of(m, campaign_pk) == ((0, 0, 0) if m in held else (200, 1, 1)), m
    notes = await fetch("SELECT member_id, title FROM notification WHERE campaign_id = $1", campaign_pk)
    assert sorted(n["member_id"] for n in notes) == sorted(set(people) - held)
    assert {n["title"] for n in notes} == {"送您 200 积分"}  # the message is written after the grant
    stock = await fetch("SELECT stock FROM product WHERE id = $1", from_global_id(coupon["id"], "Product")[1])
    assert stock[0]["stock"] == 3


async def test_bad_campaign_offers_change_nothing(api):
    token = await operator_token(api)
    _, segment_id = await offer_audience(api, token, 1)
    goods = await create_product(api, token, kind="GOODS")
    base = {"name": unique("x"), "segmentId": segment_id, "channel": "INBOX", "title": "t", "body": "b",
            "idempotencyKey": unique("K")}
    before = await fetch("SELECT COUNT(*) AS n FROM campaign")
    for change, code, field in (({"grantPoints": 10_001}, "INVALID_INPUT", "grantPoints"),
                                ({"grantPoints": -1}, "INVALID_INPUT", "grantPoints"),
                                ({"grantPoints": 10, "idempotencyKey": None}, "INVALID_INPUT", "idempotencyKey"),
                                ({"couponProductId": goods["id"]}, "INVALID_INPUT", "couponProductId"),
                                ({"couponProductId": to_global_id("Product", 999_999)}, "NOT_FOUND", "couponProductId"),
                                ({"couponProductId": gid(1)}, "NOT_FOUND", "couponProductId")):
        answer = (await api.post(OFFER_CAMPAIGN, {"i": {**base, **change}}, token=token, admin=True))["data"]
        errors = answer["campaignCreate"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [(code, ["input", field])], (change, answer)
    assert await fetch("SELECT COUNT(*) AS n FROM campaign") == before
