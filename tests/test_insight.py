"""Issue 13 items 1 and 2: KPIs of a seeded period recomputed independently (in Python, from the rows) and
compared with the live answer, the rolled-up answer and the mixed one; the rollup catches late rows; RFM
scores and lifecycle stages with their history; the operators' fields and their roles."""
from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from api.config import set_settings, settings
from api.db import transaction
from api.models import (
    DrawPlay,
    MallOrder,
    Member,
    MemberBehaviour,
    ParkingSession,
    PointsAccount,
    PointsEntry,
    Purchase,
    TaskClaim,
)
from api.models.insight import KpiDay, LifecycleChange, MemberInsight
from api.schema.base import global_id
from api.services import clock, insight, ledger, signing
from api.services.insight import rollup
from tests.conftest import PAY, PURCHASE, code_for, make_member, purchase_input, unique
from tests.mall_helpers import operator_token
from tests.parking_helpers import bind, car_park_system, new_plate
from tests.parking_helpers import offset as apply_offset
from tests.test_operator_roles import token_for

pytestmark = pytest.mark.asyncio

SH = clock.SHANGHAI
START = date(2031, 3, 1)  # a period no other test writes in


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SH)


def sh_day(value: datetime) -> date:
    return clock.business_day(value)


async def expected(start: date, end: date) -> dict:
    """Every KPI of [start, end] from the rows, in Python (docs/insight.md's definitions)."""
    end_at = clock.day_bounds(end)[1]
    owner = dict(await PointsAccount.all().values_list("id", "member_id"))
    members = await Member.all().values_list("id", "created_at")
    purchases = await Purchase.all().values_list("member_id", "amount_fen", "occurred_at")
    entries = await PointsEntry.all().values_list("account_id", "kind", "points", "occurred_at")
    inside = lambda t: t is not None and start <= sh_day(t) <= end  # noqa: E731
    buys = Counter(m for m, _, t in purchases if inside(t))
    active = set(buys) | {owner[a] for a, k, _, t in entries if k in ("EARN", "SPEND") and inside(t)}
    sales = sum(int(a) for _, a, t in purchases if inside(t))
    redeemed = -sum(int(p) for _, k, p, t in entries if k == "SPEND" and inside(t))
    expired = -sum(int(p) for _, k, p, t in entries if k == "EXPIRE" and inside(t))
    outstanding = sum(int(p) for _, _, p, t in entries if t < end_at)
    orders = await MallOrder.filter(paid_at__isnull=False).values_list("paid_at", "channel")
    n = len([1 for _, _, t in purchases if inside(t)])
    stays = await ParkingSession.filter(status="CLOSED", member_id__isnull=False).values_list(
        "exited_at", "tier_discount_fen", "purchase_discount_fen", "coupon_discount_fen", "points_discount_fen")
    offsets = [sum(int(d or 0) for d in cut) for t, *cut in stays if inside(t) and sum(int(d or 0) for d in cut) > 0]
    return {
        "membersTotal": sum(1 for _, t in members if t < end_at),
        "membersNew": sum(1 for _, t in members if inside(t)),
        "membersActive": len(active), "purchases": n,
        "memberSales": {"amountFen": sales}, "averageTicket": {"amountFen": sales // n if n else 0},
        "repurchaseRatePermille": (sum(1 for c in buys.values() if c >= 2) * 1000 // len(buys)) if buys else 0,
        "pointsIssued": sum(int(p) for _, k, p, t in entries if k == "EARN" and inside(t)),
        "pointsRedeemed": redeemed, "pointsExpired": expired, "pointsOutstanding": outstanding,
        "liability": {"amountFen": outstanding * 100 // settings().pay_points_per_yuan},
        "breakageRatePermille": expired * 1000 // (expired + redeemed) if expired + redeemed else 0,
        "checkIns": sum(1 for k, t in await MemberBehaviour.all().values_list("kind", "occurred_at")
                        if k == "CHECK_IN" and inside(t)),
        "taskCompletions": sum(1 for t in await TaskClaim.all().values_list("claimed_at", flat=True) if inside(t)),
        "redemptions": sum(1 for t, c in orders if c not in ("DRAW", "CAMPAIGN") and inside(t)),
        "flashSaleOrders": sum(1 for t, c in orders if c == "FLASH_SALE" and inside(t)),
        "drawPlays": sum(1 for t in await DrawPlay.all().values_list("played_at", flat=True) if inside(t)),
        "parkingOffsets": len(offsets), "parkingOffset": {"amountFen": sum(offsets)},
    }


FIELDS = ("membersTotal membersNew membersActive purchases memberSales { amountFen } averageTicket { amountFen }"
          " repurchaseRatePermille pointsIssued pointsRedeemed pointsExpired pointsOutstanding liability { amountFen }"
          " breakageRatePermille checkIns taskCompletions redemptions flashSaleOrders drawPlays"
          " parkingOffsets parkingOffset { amountFen }")
KPIS = f"query($from: Date!, $to: Date!) {{ kpis(from: $from, to: $to) {{ {FIELDS} daily {{ day {FIELDS} }} }} }}"


async def ask(api, token: str, start: date, end: date) -> dict:
    got = await api.post(KPIS, {"from": start.isoformat(), "to": end.isoformat()}, token=token, admin=True)
    assert "errors" not in got, got
    return got["data"]["kpis"]


async def check(api, token: str, start: date, end: date) -> dict:
    got = await ask(api, token, start, end)
    want = await expected(start, end)
    assert {k: got[k] for k in want} == want
    for day in got["daily"]:
        d = date.fromisoformat(day["day"])
        assert {k: day[k] for k in want} == await expected(d, d), d
    return got


async def seed(api) -> list[int]:
    """Three members over a month: repeat purchases on one day and across days, a till payment, an expiry."""
    old = settings()
    set_settings(dataclasses.replace(old, expiry_months=1))
    ids = []
    try:
        for offset in (0, 1, 3):
            clock.freeze(at(START + timedelta(days=offset), 9))
            ids.append((await make_member())[0])
        plan = [(0, 0, 12000), (0, 0, 3000), (1, 1, 50000), (0, 5, 8000), (2, 5, 7000), (1, 20, 9900)]
        for who, offset, fen in plan:
            clock.freeze(at(START + timedelta(days=offset), 15))
            got = await api.signed(PURCHASE, {"input": purchase_input(ids[who], fen)})
            assert got["data"]["purchaseRecord"]["userErrors"] == [], got
        clock.freeze(at(START + timedelta(days=6), 11))
        pay = {"memberCode": code_for(ids[1]), "merchantCode": "M001", "receiptNo": unique("P"), "points": 100,
               "idempotencyKey": unique("K")}
        got = await api.signed(PAY, {"input": pay})
        assert got["data"]["pointsPay"]["userErrors"] == [], got
        # Two stays of a member's car (one reduced by points, one within the free minutes) and a visitor's.
        clock.freeze(at(START + timedelta(days=6), 13))
        park = await car_park_system(api, await operator_token(api))
        plate, token = new_plate(), signing.issue_token("member", ids[1], 86400)
        assert (await bind(api, token, plate))["userErrors"] == []
        stay = (await park.entry(plate))["session"]
        visitor = new_plate()
        await park.entry(visitor)
        clock.freeze(at(START + timedelta(days=6), 16))  # 3 h: ¥15; the member offsets ¥4 with 400 points
        assert (await apply_offset(api, token, stay["id"], 400))["userErrors"] == []
        left = await park.exit(plate)
        assert left["bill"]["pointsDiscount"] == {"amountFen": 400}, left
        await park.exit(visitor)
        await park.entry(plate)
        clock.freeze(clock.now() + timedelta(minutes=10))
        assert (await park.exit(plate))["bill"]["discount"] == {"amountFen": 0}
        clock.freeze(at(START + timedelta(days=40), 3))
        assert (await ledger.expire_due(clock.now())).points_expired > 0
    finally:
        set_settings(old)
    return ids


async def test_kpis_match_an_independent_recomputation_live_rolled_and_mixed(api):
    ids = await seed(api)
    end = START + timedelta(days=42)
    clock.freeze(at(end, 20))  # `end` is today: computed live
    _, token = await token_for("AUDITOR")
    # Days rolled by earlier tests may have had rows added since (other tests backdate their clocks): the
    # scheduled run's step re-rolls them (and yesterday), as it would on a mall after late receipts.
    await insight.rollup_run(clock.now(), max_days=0)
    whole = (START - timedelta(days=1), end)
    live = await check(api, token, *whole)  # the period's days are answered live (yesterday rolled)
    assert live["purchases"] == 6 and live["membersNew"] == 3 and live["repurchaseRatePermille"] == 666
    assert live["pointsExpired"] > 0 and live["pointsRedeemed"] == 100 + 400 and 0 < live["breakageRatePermille"] < 1000
    assert (live["parkingOffsets"], live["parkingOffset"]) == (1, {"amountFen": 400})
    # Roll the period's closed days (the rollup is what answers them from now on).
    for i in range((end - whole[0]).days):
        async with transaction() as tx:
            await rollup.roll_day(tx, whole[0] + timedelta(days=i))
    rolled = await check(api, token, *whole)
    assert rolled == live
    # Change the rollup behind the KPIs' back: the answer comes from it (not recomputed live).
    await KpiDay.filter(day=START).update(purchases=999)
    assert (await ask(api, token, START, START + timedelta(days=1)))["purchases"] == 999 + 1
    async with transaction() as tx:
        await rollup.roll_day(tx, START)
    # Ranges inside the period, mixed with today's live figures.
    await check(api, token, START, START + timedelta(days=5))
    await check(api, token, START + timedelta(days=5), end)
    await check(api, token, START + timedelta(days=1), START + timedelta(days=1))
    assert ids


async def test_rollup_run_rolls_closed_days_and_late_rows(api):
    clock.freeze(at(date(2032, 5, 10), 10))
    member_id, _ = await make_member()
    got = await api.signed(PURCHASE, {"input": purchase_input(member_id, 20000)})
    assert got["data"]["purchaseRecord"]["userErrors"] == []
    clock.freeze(at(date(2032, 5, 12), 10))
    first = await insight.rollup_run(clock.now(), max_days=5)
    # Days with rows written since the last run (10 May here, and other tests' backdated rows) and
    # yesterday come first, whatever max_days; then the newest days never rolled.
    assert first.days_rolled >= 2
    assert await KpiDay.filter(day__in=[date(2032, 5, 10), date(2032, 5, 11)]).count() == 2
    day = await KpiDay.get(day=date(2032, 5, 10))
    assert (day.purchases, day.member_sales_fen, day.members_new) == (1, 20000, 1)
    # A receipt recorded late for 10 May (within the 30 days a till may send): the next runs roll 10 May again.
    late = purchase_input(member_id, 5000, occurred_at=at(date(2032, 5, 10), 18))
    got = await api.signed(PURCHASE, {"input": late})
    assert got["data"]["purchaseRecord"]["userErrors"] == [], got
    await insight.rollup_run(clock.now(), max_days=5)
    await insight.rollup_run(clock.now(), max_days=5)
    day = await KpiDay.get(day=date(2032, 5, 10))
    assert (day.purchases, day.member_sales_fen, day.repeat_buyers) == (2, 25000, 1)


async def test_rfm_scores_lifecycle_and_history(api):
    now = at(date(2033, 9, 1), 12)
    clock.freeze(now - timedelta(days=400))
    lost, _ = await make_member()
    clock.freeze(now - timedelta(days=200))
    declining, _ = await make_member()
    growing, _ = await make_member()
    clock.freeze(now - timedelta(days=190))
    assert (await api.signed(PURCHASE, {"input": purchase_input(lost, 1000)}))["data"]["purchaseRecord"]["userErrors"] == []
    clock.freeze(now - timedelta(days=100))
    assert (await api.signed(PURCHASE, {"input": purchase_input(declining, 90000)}))["data"]["purchaseRecord"]["userErrors"] == []
    for days in (20, 10, 5):
        clock.freeze(now - timedelta(days=days))
        assert (await api.signed(PURCHASE, {"input": purchase_input(growing, 30000)}))["data"]["purchaseRecord"]["userErrors"] == []
    clock.freeze(now - timedelta(days=3))
    new, _ = await make_member()
    clock.freeze(now)
    result = await insight.recompute(now)
    assert result.members >= 4
    rows = {r.member_id: r for r in await MemberInsight.filter(member_id__in=[lost, declining, growing, new])}
    assert rows[new].lifecycle == "NEW" and rows[growing].lifecycle == "GROWING"
    assert rows[declining].lifecycle == "DECLINING" and rows[lost].lifecycle == "LOST"
    assert (rows[growing].frequency, int(rows[growing].monetary_fen), rows[growing].recency_days) == (3, 90000, 5)
    assert rows[new].f == rows[new].m == rows[new].r == 0 and rows[new].recency_days == 3
    assert rows[growing].r >= rows[declining].r and rows[growing].f >= rows[declining].f
    assert rows[lost].lifecycle == "LOST" and rows[lost].frequency == 1  # bought 190 days ago, inside the window
    # Stage history: a first row for each, then a change when the stage moves.
    clock.freeze(now + timedelta(days=70))
    await insight.recompute(clock.now())
    moved = await LifecycleChange.filter(member_id=growing).order_by("id").values_list("from_stage", "to_stage")
    assert moved == [(None, "GROWING"), ("GROWING", "DECLINING")]
    _, token = await token_for("MARKETING")
    got = await api.post("query($id: ID!) { member(id: $id) { insight { recencyDays frequency monetary { amountFen }"
                         " r f m lifecycle history { fromStage toStage } } } }", {"id": global_id("Member", growing)},
                         token=token, admin=True)
    got = got["data"]["member"]["insight"]
    assert got["lifecycle"] == "DECLINING" and got["frequency"] == 3 and got["monetary"] == {"amountFen": 90000}
    assert [h["toStage"] for h in got["history"]] == ["DECLINING", "GROWING"]


async def test_insight_recompute_mutation_and_roles(api):
    clock.freeze(at(date(2034, 2, 2), 12))
    member_id, member_token = await make_member()
    mutation = "mutation { insightRecompute(input: {}) { members stageChanges kpiDaysRolled userErrors { code } } }"
    _, auditor = await token_for("AUDITOR")
    refused = await api.post(mutation, token=auditor, admin=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await MemberInsight.filter(member_id=member_id).count() == 0  # nothing changed
    _, marketing = await token_for("MARKETING")
    got = await api.post(mutation, token=marketing, admin=True)
    assert got["data"]["insightRecompute"]["userErrors"] == [] and got["data"]["insightRecompute"]["members"] >= 1
    assert (await MemberInsight.get(member_id=member_id)).lifecycle == "NEW"
    dist = await api.post("{ lifecycleDistribution { stage members } }", token=auditor, admin=True)
    assert {d["stage"]: d["members"] for d in dist["data"]["lifecycleDistribution"]}["NEW"] >= 1
    # Members never see it on the public endpoint.
    mine = await api.post("{ viewer { member { insight { lifecycle } } } }", token=member_token)
    assert mine["data"]["viewer"]["member"]["insight"] is None
    ahead = await ask(api, auditor, date(2034, 2, 2), date(2034, 2, 5))  # today and three days ahead
    assert [d["membersNew"] for d in ahead["daily"]][1:] == [0, 0, 0] and ahead["daily"][0]["membersNew"] >= 1
    assert ahead["membersTotal"] == ahead["daily"][0]["membersTotal"]
    bad = await api.post(KPIS, {"from": "2034-02-02", "to": "2034-02-01"}, token=auditor, admin=True)
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_history_is_append_only(backend):
    with pytest.raises(Exception):  # noqa: B017, PT011 - the trigger's error differs per database
        async with transaction() as tx:
            await tx.execute("INSERT INTO member_lifecycle_change (member_id, to_stage, changed_at) VALUES (1, 'NEW', $1)",
                             clock.now())
            await tx.execute("UPDATE member_lifecycle_change SET to_stage = 'LOST'")


async def test_chunk_size_does_not_change_the_results(api, monkeypatch):
    from api.services.insight import rfm
    from api.services.insight.settings import InsightSettings

    clock.freeze(at(date(2035, 1, 10), 12))
    ids = []
    for i in range(7):
        member_id, _ = await make_member()
        ids.append(member_id)
        clock.freeze(at(date(2035, 1, 10), 12) + timedelta(hours=i + 1))
        got = await api.signed(PURCHASE, {"input": purchase_input(member_id, 1000 * (i + 1))})
        assert got["data"]["purchaseRecord"]["userErrors"] == []

    async def scores(chunk: int) -> dict:
        monkeypatch.setattr(rfm, "insight_settings", lambda: InsightSettings(chunk_members=chunk))
        result = await rfm.recompute(clock.now())
        rows = await MemberInsight.filter(member_id__in=ids).values_list("member_id", "recency_days", "frequency",
                                                                          "monetary_fen", "r", "f", "m", "lifecycle")
        return result.members, sorted(rows)

    many_small, small = await scores(100)
    one_big, big = await scores(5000)
    assert small == big and many_small == one_big >= 7
    assert [r[6] for r in sorted(big, key=lambda r: r[3])][-1] == 5  # the biggest spender of the window: m = 5


async def test_the_scheduled_run_rolls_and_scores_once_a_day(api):
    from api.services import scheduler

    clock.freeze(at(date(2036, 4, 2), 12))
    member_id, _ = await make_member()
    first = await scheduler.run_once(("system", None), clock.now())
    assert first.kpi_days_rolled >= 1 and first.insight_members >= 1
    assert (await MemberInsight.get(member_id=member_id)).lifecycle == "NEW"
    again = await scheduler.run_once(("system", None), clock.now())
    assert again.insight_members == 0  # once per Asia/Shanghai day
    assert await KpiDay.filter(day=date(2036, 4, 1)).exists()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_recomputations_at_once_write_one_history_row(api):
    import asyncio

    from api.services.insight import rfm

    clock.freeze(at(date(2037, 6, 1), 12))
    member_id, _ = await make_member()
    first, second = await asyncio.gather(rfm.recompute(clock.now()), rfm.recompute(clock.now()))
    assert first.members == second.members >= 1
    changes = await LifecycleChange.filter(member_id=member_id).values_list("from_stage", "to_stage")
    assert changes == [(None, "NEW")]
