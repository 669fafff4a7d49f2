"""Notifications (issue 13 item 4): rows written in the events' transactions, the member's inbox and
preferences, expiry reminders once per lot and threshold, and the dispatcher (retries with backoff,
idempotent per notification, quiet hours, opt-out, masked logs)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from api.db import fetch, transaction
from api.models import Notification
from api.schema.ids import from_global_id, to_global_id
from api.services import clock, signing
from api.services.notifications import dispatcher, outbox, reminders
from api.services.notifications.channels.base import Message, Outcome
from api.services.purchases import import_purchase
from tests.conftest import PURCHASE, make_member, purchase_input, unique, utc
from tests.mall_helpers import operator_token

INBOX = """query($unread: Boolean) { viewer { member { notifications(first: 20, unreadOnly: $unread) {
  edges { node { id topic title body createdAt readAt } } } } } }"""
MARK = """mutation($ids: [ID!]!) { notificationMarkRead(input: {notificationIds: $ids}) {
  count userErrors { code field } } }"""
PREFS = """mutation($t: NotificationTopic!, $c: NotificationChannel!, $e: Boolean!) {
  notificationPreferencesUpdate(input: {topic: $t, channel: $c, enabled: $e}) {
  preferences { topic channel enabled } userErrors { code } } }"""
BATCH = """mutation($input: PurchaseRecordBatchInput!) { purchaseRecordBatch(input: $input) {
  results { pointsEarned userErrors { code } } userErrors { code } } }"""


async def inbox(api, token: str, unread: bool | None = None) -> list[dict]:
    data = await api.post(INBOX, {"unread": unread}, token=token)
    return [e["node"] for e in data["data"]["viewer"]["member"]["notifications"]["edges"]]


async def rows(member_id: int) -> list[dict]:
    return [dict(r) for r in await fetch(
        "SELECT id, topic, channel, status, source_ref, read_at FROM notification WHERE member_id = $1 ORDER BY id",
        member_id)]


async def test_a_receipt_writes_its_notification_and_the_member_reads_it(api):
    member_id, token = await make_member()
    answer = await api.signed(PURCHASE, {"input": purchase_input(member_id, 12300)})
    earned = answer["data"]["purchaseRecord"]["pointsEarned"]
    assert earned > 0
    found = await inbox(api, token)
    assert [(n["topic"], n["title"], n["readAt"]) for n in found] == [("POINTS_EARNED", "积分到账", None)]
    assert f"获得 {earned} 积分" in found[0]["body"]
    assert [(r["channel"], r["status"]) for r in await rows(member_id)] == [("INBOX", "DELIVERED")]
    marked = await api.post(MARK, {"ids": [found[0]["id"]]}, token=token)
    assert marked["data"]["notificationMarkRead"] == {"count": 1, "userErrors": []}
    again = await api.post(MARK, {"ids": [found[0]["id"]]}, token=token)
    assert again["data"]["notificationMarkRead"]["count"] == 0  # already read
    assert await inbox(api, token, unread=True) == []
    assert (await inbox(api, token))[0]["readAt"] is not None


async def test_a_batch_writes_one_notification_per_receipt_and_a_refused_receipt_none(api):
    member_id, token = await make_member()
    first = purchase_input(member_id, 5000)
    duplicate = {**purchase_input(member_id, 5000), "receiptNo": first["receiptNo"]}
    answer = await api.signed(BATCH, {"input": {"purchases": [first, purchase_input(member_id, 7000), duplicate]}})
    results = answer["data"]["purchaseRecordBatch"]["results"]
    assert [r["userErrors"] for r in results] == [[], [], [{"code": "DUPLICATE_RECEIPT"}]]
    assert [r["topic"] for r in await rows(member_id)] == ["POINTS_EARNED", "POINTS_EARNED"]


async def test_an_upgrade_on_a_receipt_is_notified(api):
    member_id, token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 120_000)})  # 1,200 growth: SILVER
    topics = sorted(n["topic"] for n in await inbox(api, token))
    assert topics == ["POINTS_EARNED", "TIER_CHANGED"]
    changed = next(n for n in await inbox(api, token) if n["topic"] == "TIER_CHANGED")
    assert "白银" in changed["body"] or "SILVER" in changed["body"] or "升级" in changed["body"]


async def test_marking_another_members_notification_is_not_found_and_changes_nothing(api):
    owner, owner_token = await make_member()
    _, other_token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(owner, 5000)})
    (note,) = await inbox(api, owner_token)
    answer = await api.post(MARK, {"ids": [note["id"]]}, token=other_token)
    assert answer["data"]["notificationMarkRead"] == {
        "count": None, "userErrors": [{"code": "NOT_FOUND", "field": ["input", "notificationIds", "0"]}]}
    assert [r["read_at"] for r in await rows(owner)] == [None]
    # nor may anyone else read the inbox: another member does not get the member, an operator is refused
    gid = to_global_id("Member", owner)
    peek = await api.post('query($id: ID!) { node(id: $id) { ... on Member { notifications(first: 5) { edges { node { id } } } } } }',
                          {"id": gid}, token=other_token)
    assert peek["data"]["node"] is None
    operator = await operator_token(api)
    peek = await api.post('query($id: ID!) { member(id: $id) { notifications(first: 5) { edges { node { id } } } } }',
                          {"id": gid}, token=operator, admin=True)
    assert peek["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_preferences_hide_a_topic_from_the_inbox(api):
    member_id, token = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000)})
    answer = await api.post(PREFS, {"t": "POINTS_EARNED", "c": "INBOX", "e": False}, token=token)
    prefs = answer["data"]["notificationPreferencesUpdate"]["preferences"]
    assert {"topic": "POINTS_EARNED", "channel": "INBOX", "enabled": False} in prefs
    assert len(prefs) == 7 * 3 and sum(not p["enabled"] for p in prefs) == 1
    assert await inbox(api, token) == []
    await api.post(PREFS, {"t": "POINTS_EARNED", "c": "INBOX", "e": True}, token=token)
    assert len(await inbox(api, token)) == 1


async def test_reminders_are_queued_once_per_lot_and_threshold(api):
    member_id, token = await make_member()
    now = clock.now()
    # A lot earned 12 months less 20 days ago expires in about 20 days (rolling 12-month expiry).
    await import_purchase(member_id, "M001", unique("R"), 8000, clock.add_months(now, -12) + timedelta(days=20))
    first = await reminders.queue_reminders(now)
    assert first.points_reminders >= 1
    mine = [r for r in await rows(member_id) if r["topic"] == "POINTS_EXPIRING"]
    assert len(mine) == 1 and mine[0]["source_ref"].endswith(":30")
    await reminders.queue_reminders(now)  # a rerun writes nothing new for this lot
    assert len([r for r in await rows(member_id) if r["topic"] == "POINTS_EXPIRING"]) == 1
    await reminders.queue_reminders(now + timedelta(days=15))  # 5 days left: the 7-day reminder
    refs = sorted(r["source_ref"].rsplit(":", 1)[1] for r in await rows(member_id) if r["topic"] == "POINTS_EXPIRING")
    assert refs == ["30", "7"]
    body = next(n["body"] for n in await inbox(api, token) if n["topic"] == "POINTS_EXPIRING")
    assert "80 积分将于" in body


class FakeSms:
    name = "SMS"

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[Message] = []

    async def send(self, message: Message) -> Outcome:
        self.sent.append(message)
        return self.outcomes.pop(0) if self.outcomes else Outcome(True, code="OK")


async def _pending_sms(member_id: int, topic: str = "CAMPAIGN") -> int:
    async with transaction() as tx:
        await outbox.emit(tx, outbox.Note(member_id, topic, "标题", "正文", unique("t:"), channel="SMS"))
    return max(r["id"] for r in await rows(member_id))


@pytest.fixture
def noon():
    at = utc(2026, 12, 7, 4, 0)  # 12:00 in Shanghai: outside the default quiet hours 22-8
    clock.freeze(at)
    yield at
    dispatcher.use_channels(None)


async def _state(nid: int) -> Notification:
    return await Notification.get(id=nid)


async def test_dispatch_retries_with_backoff_then_delivers_once(api, noon, caplog):
    member_id, _ = await make_member()
    nid = await _pending_sms(member_id)
    fake = FakeSms(Outcome(False, retry=True, code="isv.BUSINESS_LIMIT_CONTROL"))
    dispatcher.use_channels({"SMS": fake})
    with caplog.at_level(logging.DEBUG):
        await dispatcher.dispatch_due()
    row = await _state(nid)
    assert (row.status, row.attempts, row.error) == ("PENDING", 1, "isv.BUSINESS_LIMIT_CONTROL")
    assert clock.to_utc(row.next_attempt_at) == noon + timedelta(minutes=1)
    sent_before = len(fake.sent)
    await dispatcher.dispatch_due()  # not due yet
    assert len(fake.sent) == sent_before and (await _state(nid)).status == "PENDING"
    clock.freeze(noon + timedelta(minutes=2))
    await dispatcher.dispatch_due()
    row = await _state(nid)
    assert (row.status, row.attempts) == ("DELIVERED", 2) and row.sent_at is not None
    clock.freeze(noon + timedelta(hours=1))
    await dispatcher.dispatch_due()  # delivered is final: never sent again
    assert [m.notification_id for m in fake.sent].count(nid) == 2
    phone = (await fetch("SELECT phone FROM member WHERE id = $1", member_id))[0]["phone"]
    assert phone not in caplog.text and phone[-11:] not in caplog.text


async def test_dispatch_gives_up_after_the_last_attempt_and_on_a_refusal(api, noon, monkeypatch):
    monkeypatch.setenv("MALLPOINTS_NOTIFY_MAX_ATTEMPTS", "2")
    from api.services.notifications import settings as notify_settings

    notify_settings.reset()
    try:
        member_id, _ = await make_member()
        flaky, refused = await _pending_sms(member_id), await _pending_sms(member_id)
        answers = {flaky: Outcome(False, retry=True, code="HTTP_503"), refused: Outcome(False, code="isv.MOBILE_NUMBER_ILLEGAL")}

        class Fake:
            name = "SMS"

            async def send(self, message: Message) -> Outcome:
                return answers.get(message.notification_id, Outcome(True))

        dispatcher.use_channels({"SMS": Fake()})
        await dispatcher.dispatch_due()
        assert (await _state(refused)).status == "FAILED"
        assert (await _state(flaky)).status == "PENDING"
        clock.freeze(clock.now() + timedelta(minutes=5))
        await dispatcher.dispatch_due()
        row = await _state(flaky)
        assert (row.status, row.attempts, row.error) == ("FAILED", 2, "HTTP_503")
    finally:
        monkeypatch.delenv("MALLPOINTS_NOTIFY_MAX_ATTEMPTS")
        notify_settings.reset()


async def test_dispatch_skips_opted_out_members_and_waits_out_quiet_hours(api, noon):
    member_id, token = await make_member()
    await api.post(PREFS, {"t": "CAMPAIGN", "c": "SMS", "e": False}, token=token)
    skipped = await _pending_sms(member_id)
    other, _ = await make_member()
    later = await _pending_sms(other, "PRIZE")
    fake = FakeSms()
    dispatcher.use_channels({"SMS": fake})
    clock.freeze(utc(2026, 12, 7, 15, 0))  # 23:00 in Shanghai
    assert (await dispatcher.dispatch_due()).quiet
    assert (await _state(later)).status == "PENDING" and (await _state(later)).attempts == 0
    clock.freeze(utc(2026, 12, 8, 1, 0))  # 09:00
    await dispatcher.dispatch_due()
    assert ((await _state(skipped)).status, (await _state(skipped)).error) == ("SKIPPED", "OPTED_OUT")
    assert (await _state(later)).status == "DELIVERED"
    assert skipped not in [m.notification_id for m in fake.sent]
    # the member still sees it in the inbox (only SMS was switched off)
    clock.freeze(None)
    token = signing.issue_token("member", member_id, 3600)
    assert any(n["topic"] == "CAMPAIGN" for n in await inbox(api, token))


def test_quiet_hours_across_midnight_and_backoff():
    assert dispatcher.in_quiet_hours(utc(2026, 12, 7, 13, 59), (22, 8)) is False  # 21:59 in Shanghai
    assert dispatcher.in_quiet_hours(utc(2026, 12, 7, 14, 0), (22, 8)) is True  # 22:00 Shanghai
    assert dispatcher.in_quiet_hours(utc(2026, 12, 7, 23, 59), (22, 8)) is True  # 07:59
    assert dispatcher.in_quiet_hours(utc(2026, 12, 8, 0, 0), (22, 8)) is False  # 08:00
    assert dispatcher.in_quiet_hours(utc(2026, 12, 8, 0, 0), None) is False
    assert [dispatcher.backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]


async def test_a_paid_exit_with_an_offset_and_a_prize_are_notified(api):
    from tests.parking_helpers import bind, member, new_plate, offset
    from tests.test_draws import new_game, play
    from tests.test_parking import at, setup

    clock.freeze(at(0))
    op, park = await setup(api)
    member_id, token = await member(3000, "GOLD")
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate))["session"]
    clock.freeze(at(300))
    assert (await offset(api, token, session["id"], 500))["userErrors"] == []
    done = await park.exit(plate, event=unique("out"))
    assert done["session"]["paid"] is True
    note = [r for r in await rows(member_id) if r["topic"] == "PARKING"]
    assert len(note) == 1 and note[0]["source_ref"] == f"stay:{int(from_global_id(session['id'], 'ParkingSession')[1])}"
    body = (await fetch("SELECT body FROM notification WHERE id = $1", note[0]["id"]))[0]["body"]
    assert "积分" in body and plate not in body  # the plate is masked
    clock.freeze(None)  # tokens issued at the frozen time have expired
    op = await operator_token(api)
    game = await new_game(api, op, [{"name": "10积分", "kind": "POINTS", "points": 10, "weight": 1}], costPoints=0)
    token = signing.issue_token("member", member_id, 3600)
    assert (await play(api, token, game))["userErrors"] == []
    prize = [r for r in await rows(member_id) if r["topic"] == "PRIZE"]
    assert len(prize) == 1 and prize[0]["source_ref"].startswith("play:")


async def test_node_gives_a_notification_to_its_member_only(api):
    member_id, token = await make_member()
    _, other = await make_member()
    await api.signed(PURCHASE, {"input": purchase_input(member_id, 5000)})
    (note,) = await inbox(api, token)
    query = 'query($id: ID!) { node(id: $id) { ... on Notification { id topic } } }'
    assert (await api.post(query, {"id": note["id"]}, token=token))["data"]["node"] == {
        "id": note["id"], "topic": "POINTS_EARNED"}
    assert (await api.post(query, {"id": note["id"]}, token=other))["data"]["node"] is None
