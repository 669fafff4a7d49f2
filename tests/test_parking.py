"""Parking end to end over GraphQL, driven by signed car-park calls and the member's own calls, with
exact fen and points; every refusal leaves everything as it was. Pure fee-function tests at the end.
On SQLite and PostgreSQL; the races are in test_parking_concurrency."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api import db
from api.services import clock
from api.services.parking.fees import DAY_MINUTES, Coupon, FeeRules, bill, fee, fen_for_points, points_for_fen
from tests.conftest import PURCHASE, purchase_input, unique, utc
from tests.mall_helpers import operator_token
from tests.parking_helpers import (
    ENTRY,
    ME_PARKING,
    QUOTE,
    UNBIND,
    CarParkSystem,
    bind,
    bound_key,
    car_park_system,
    member,
    new_car_park,
    new_plate,
    offset,
    parking_coupon,
    parking_state,
    pk,
)

T0 = utc(2026, 3, 10, 2, 0)  # 10:00 in Shanghai


def at(minutes: int):
    return T0 + timedelta(minutes=minutes)


def money(payload: dict) -> dict:
    """A bill's amounts in fen, flattened."""
    return {k: (v["amountFen"] if isinstance(v, dict) and "amountFen" in v else v) for k, v in payload.items()}


async def setup(api, **car_park):
    op = await operator_token(api)
    code = await new_car_park(api, op, **car_park)
    return op, CarParkSystem(api, await bound_key(code), code)


async def test_a_stay_end_to_end_through_signed_calls(api):
    clock.freeze(T0)
    op, park = await setup(api)
    member_id, token = await member(5100, "GOLD")
    coupon = await parking_coupon(api, op, token, face_value_fen=300, points_price=100)
    plate = new_plate()
    bound = await bind(api, token, plate)
    assert bound["userErrors"] == [] and bound["vehicle"]["consentVersion"] == "plate-v1"

    entry = await park.entry(plate, event="in-1")
    session = entry["session"]
    assert entry["userErrors"] == [] and session["status"] == "OPEN" and session["memberLinked"] is True
    assert (await park.entry(plate, event="in-1"))["session"]["id"] == session["id"]  # the same event again

    clock.freeze(at(310))  # 5 h 10 min: 295 charged minutes → 5 h → ¥25; GOLD's 120 min leave 175 → 3 h → ¥15
    quote = await park.quote(plate)
    assert money(quote["bill"]) == {
        "minutes": 310, "fee": 2500, "tierFreeMinutesUsed": 120, "tierDiscount": 1000, "purchaseFreeMinutesUsed": 0,
        "purchaseDiscount": 0, "couponDiscount": 0, "couponsUsed": [], "pointsDiscount": 0, "pointsApplied": 0,
        "pointsNeeded": 1500, "discount": 1000, "payable": 1500}

    before = await parking_state(member_id, plate)
    refused = await offset(api, token, session["id"], 3000, [coupon])
    assert [e["code"] for e in refused["userErrors"]] == ["OFFSET_CAP_EXCEEDED"]
    assert await parking_state(member_id, plate) == before

    # 2000 asked, but after the ¥3 coupon only ¥12 is left: 1200 points are held, never more than needed.
    applied = await offset(api, token, session["id"], 2000, [coupon])
    assert applied["userErrors"] == [] and applied["pointsHeld"] == 1200 and applied["pointsBalance"] == 3800
    assert money(applied["session"]["bill"])["payable"] == 0
    quote = await park.quote(plate)
    assert money(quote["bill"]) | {} == {
        "minutes": 310, "fee": 2500, "tierFreeMinutesUsed": 120, "tierDiscount": 1000, "purchaseFreeMinutesUsed": 0,
        "purchaseDiscount": 0, "couponDiscount": 300, "couponsUsed": [coupon], "pointsDiscount": 1200,
        "pointsApplied": 1200, "pointsNeeded": 1200, "discount": 2500, "payable": 0}
    me = (await api.post(ME_PARKING, token=token))["data"]["viewer"]["member"]
    assert (me["pointsBalance"], me["pointsHeld"], me["vehicles"]) == (3800, 1200, [{"plate": plate}])
    assert me["parkingSession"]["id"] == session["id"] and me["parkingSession"]["bill"]["payable"]["amountFen"] == 0

    clock.freeze(at(330))  # 20 more minutes: 315 charged → 6 h → ¥30; tier leaves 195 → 4 h → ¥20; −¥3 −¥12
    expected = {"minutes": 330, "fee": 3000, "tierFreeMinutesUsed": 120, "tierDiscount": 1000,
                "purchaseFreeMinutesUsed": 0, "purchaseDiscount": 0, "couponDiscount": 300, "couponsUsed": [coupon],
                "pointsDiscount": 1200, "pointsApplied": 1200, "pointsNeeded": 1700, "discount": 2500, "payable": 500}
    assert money((await park.quote(plate))["bill"]) == expected
    done = await park.exit(plate, event="out-1")
    assert done["userErrors"] == [] and done["session"]["status"] == "CLOSED" and done["session"]["paid"] is True
    assert money(done["bill"]) == {**expected, "pointsNeeded": 0, "purchaseFreeMinutesUsed": 0}
    again = await park.exit(plate, event="out-1")  # the same exit event again: the same stay, nothing more
    assert again["session"]["id"] == session["id"] and money(again["bill"])["payable"] == 500

    holds = await db.fetch("SELECT status, points FROM points_hold WHERE source_type = 'parking_session'"
                           " AND source_ref LIKE $1", f"{pk(session['id'])}:%")
    assert [(h["status"], int(h["points"])) for h in holds] == [("CAPTURED", 1200)]
    assert (await db.fetch("SELECT status FROM voucher WHERE code = $1", coupon))[0]["status"] == "USED"
    spend = await api.post("{ viewer { member { pointsBalance pointsHeld pointsLedger(first: 1) { edges { node {"
                           " kind points } } } } } }", token=token)
    viewer = spend["data"]["viewer"]["member"]
    assert (viewer["pointsBalance"], viewer["pointsHeld"]) == (3800, 0)
    assert viewer["pointsLedger"]["edges"][0]["node"] == {"kind": "SPEND", "points": -1200}

    ended = await park.quote(plate)
    assert [e["code"] for e in ended["userErrors"]] == ["STAY_ENDED"]

    # A second stay the same day: the tier's 120 minutes are used up.
    clock.freeze(at(400))
    assert (await park.entry(plate))["userErrors"] == []
    clock.freeze(at(460))
    second = await park.quote(plate)
    assert money(second["bill"])["tierFreeMinutesUsed"] == 0 and money(second["bill"])["payable"] == 500
    me = (await api.post(ME_PARKING, token=token))["data"]["viewer"]["member"]
    history = [e["node"] for e in me["parkingHistory"]["edges"]]
    assert [h["status"] for h in history] == ["OPEN", "CLOSED"]
    assert history[1]["bill"] == {"payable": {"amountFen": 500}, "pointsApplied": 1200}


async def test_same_day_purchase_benefit_new_energy_plate_and_daily_cap(api):
    clock.freeze(T0)
    _, park = await setup(api)
    member_id, token = await member()
    plate = f"粤BD{new_plate()[-5:]}"  # an 8-character new-energy plate
    assert (await bind(api, token, plate))["userErrors"] == []
    await park.entry(plate)
    bought = await api.signed(PURCHASE, {"input": purchase_input(member_id, 20000)})
    assert bought["data"]["purchaseRecord"]["userErrors"] == []
    # 26 h: 1545 charged minutes = one day (capped ¥50) + 105 min (2 h, ¥10) = ¥60; the purchase's 120 min
    # leave 1425 minutes: 24 h, capped at ¥50.
    clock.freeze(at(26 * 60))
    quote = await park.quote(plate)
    bill_ = money(quote["bill"])
    assert (bill_["fee"], bill_["purchaseFreeMinutesUsed"], bill_["purchaseDiscount"], bill_["tierDiscount"],
            bill_["payable"]) == (6000, 120, 1000, 0, 5000)


async def test_vehicle_refusals_change_nothing(api):
    member_id, token = await member()
    other_id, other_token = await member()
    plates = [new_plate() for _ in range(4)]
    lower = plates[0].replace("粤B", "粤b ")
    assert (await bind(api, token, lower))["vehicle"]["plate"] == plates[0]  # normalised
    first_id = (await bind(api, token, plates[0]))["vehicle"]["id"]
    assert (await bind(api, token, plates[0]))["vehicle"]["id"] == first_id  # own plate again: the same binding
    for p in plates[1:3]:
        assert (await bind(api, token, p))["userErrors"] == []
    cases = [
        (token, {"plate": "ABC123"}, "PLATE_INVALID"), (token, {"plate": "粤B1234"}, "PLATE_INVALID"),
        (token, {"plate": "粤BI2345"}, "PLATE_INVALID"), (token, {"plate": "粤B12345DD"}, "PLATE_INVALID"),
        (token, {"plate": plates[3], "consent": False}, "CONSENT_REQUIRED"),
        (token, {"plate": plates[3]}, "VEHICLE_LIMIT_REACHED"),
        (other_token, {"plate": plates[1]}, "PLATE_BOUND_ELSEWHERE"),
    ]
    for who, data, code in cases:
        before = (await parking_state(member_id), await parking_state(other_id))
        result = await bind(api, who, data["plate"], data.get("consent", True))
        assert [e["code"] for e in result["userErrors"]] == [code], (data, result)
        assert (await parking_state(member_id), await parking_state(other_id)) == before
    before = await parking_state(member_id)
    theirs = await api.post(UNBIND, {"i": {"vehicleId": first_id}}, token=other_token)
    assert [e["code"] for e in theirs["data"]["vehicleUnbind"]["userErrors"]] == ["NOT_FOUND"]
    assert await parking_state(member_id) == before
    mine = await api.post(UNBIND, {"i": {"vehicleId": first_id}}, token=token)
    assert mine["data"]["vehicleUnbind"]["vehicle"]["active"] is False
    twice = await api.post(UNBIND, {"i": {"vehicleId": first_id}}, token=token)
    assert [e["code"] for e in twice["data"]["vehicleUnbind"]["userErrors"]] == ["VEHICLE_NOT_BOUND"]
    # Unbound, the plate may go to another member; the limit counts active vehicles only.
    assert (await bind(api, other_token, plates[0]))["userErrors"] == []
    assert (await bind(api, token, plates[3]))["userErrors"] == []
    consent = await db.fetch("SELECT consent_version, consented_at FROM vehicle WHERE plate = $1 AND active", plates[3])
    assert consent[0]["consent_version"] == "plate-v1" and consent[0]["consented_at"] is not None


async def test_car_park_and_offset_refusals_change_nothing(api):
    clock.freeze(T0)
    op, park = await setup(api)
    member_id, token = await member(500, "GOLD")
    other_id, other_token = await member(5000)
    plate, stranger = new_plate(), new_plate()
    await bind(api, token, plate)

    before = await parking_state(member_id, plate)
    assert [e["code"] for e in (await park.exit(plate))["userErrors"]] == ["NO_OPEN_STAY"]  # an exit without an entry
    assert [e["code"] for e in (await park.quote(plate))["userErrors"]] == ["NO_OPEN_STAY"]
    assert await parking_state(member_id, plate) == before

    session = (await park.entry(plate, event="e1"))["session"]
    stranger_session = (await park.entry(stranger))["session"]
    assert stranger_session["memberLinked"] is False
    clock.freeze(at(600))
    cases = [
        (park.entry(plate, event="e2"), "parkingEntryRecord", "STAY_ALREADY_OPEN"),
        (park.entry(new_plate(), event="e1"), "parkingEntryRecord", "IDEMPOTENCY_KEY_REUSED"),
        (park.entry("粤B1234"), "parkingEntryRecord", "PLATE_INVALID"),
        (park.exit(plate, at=T0 - timedelta(minutes=1)), "parkingExitRecord", "INVALID_INPUT"),
        (park.entry(plate, at=at(700)), "parkingEntryRecord", "INVALID_INPUT"),  # in the future
        (offset(api, token, stranger_session["id"], 100), None, "NOT_FOUND"),  # an unbound plate's stay
        (offset(api, other_token, session["id"], 100), None, "NOT_FOUND"),  # another member's stay
        (offset(api, token, session["id"], 2001), None, "OFFSET_CAP_EXCEEDED"),
        (offset(api, token, session["id"], 1000), None, "INSUFFICIENT_POINTS"),
        (offset(api, token, session["id"], 100, ["NOSUCHCOUPON2345"]), None, "NOT_FOUND"),
        (offset(api, token, session["id"], -1), None, "INVALID_INPUT"),
    ]
    for call, name, code in cases:
        before = (await parking_state(member_id, plate), await parking_state(other_id), await parking_state(None, stranger))
        result = await call
        errors = result["userErrors"] if name is None else result["userErrors"]
        assert [e["code"] for e in errors] == [code], (code, result)
        assert (await parking_state(member_id, plate), await parking_state(other_id),
                await parking_state(None, stranger)) == before
    unknown = await CarParkSystem(api, (park.key_id, park.secret), "NOPE").quote(plate)
    assert [e["code"] for e in unknown["userErrors"]] == ["NOT_FOUND"]
    forbidden = await api.signed(QUOTE, {"i": {"carParkCode": park.code, "plate": plate}})  # the till's key
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unsigned = await api.post(ENTRY, {"i": {"carParkCode": park.code, "plate": plate, "enteredAt": T0.isoformat(),
                                            "eventId": "x"}})
    assert unsigned["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # A stay that ended: no offset, no quote.
    await park.exit(plate)
    before = await parking_state(member_id, plate)
    assert [e["code"] for e in (await offset(api, token, session["id"], 100))["userErrors"]] == ["STAY_ENDED"]
    assert [e["code"] for e in (await park.quote(plate))["userErrors"]] == ["STAY_ENDED"]
    assert await parking_state(member_id, plate) == before
    # The non-member's stay: the fee (585 charged minutes: 10 h, capped at ¥50), no discounts.
    out = await park.exit(stranger)
    assert money(out["bill"])["fee"] == money(out["bill"])["payable"] == 5000


async def test_offset_with_a_used_coupon_and_once_per_request(api):
    clock.freeze(T0)
    op, park = await setup(api)
    member_id, token = await member(1000)
    coupon = await parking_coupon(api, op, token, face_value_fen=500)
    await db.fetch("UPDATE voucher SET status = 'USED', used_at = $2 WHERE code = $1 RETURNING id", coupon, clock.now())
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate))["session"]
    before = await parking_state(member_id, plate)
    result = await offset(api, token, session["id"], 0, [coupon])
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [("VOUCHER_ALREADY_USED",
                                                                        ["input", "couponCodes", "0"])]
    assert await parking_state(member_id, plate) == before
    twice = await api.post("mutation($i: ParkingOffsetApplyInput!) { a: parkingOffsetApply(input: $i) { pointsHeld }"
                           " b: parkingOffsetApply(input: $i) { pointsHeld } }",
                           {"i": {"sessionId": session["id"], "points": 10, "idempotencyKey": unique("K")}}, token=token)
    assert "only field" in twice["errors"][0]["message"]


async def test_applying_again_replaces_the_hold_and_a_repeat_returns_the_first_result(api):
    clock.freeze(T0)
    _, park = await setup(api)
    member_id, token = await member(3000)
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate))["session"]
    clock.freeze(at(135))  # 120 charged minutes: ¥10
    first = await offset(api, token, session["id"], 400, key="k1")
    assert (first["pointsHeld"], first["pointsBalance"]) == (400, 2600)
    assert (await offset(api, token, session["id"], 400, key="k1"))["pointsHeld"] == 400  # repeat
    reused = await offset(api, token, session["id"], 300, key="k1")
    assert [e["code"] for e in reused["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    second = await offset(api, token, session["id"], 5000 - 3000)  # more than needed: only ¥10 → 1000 points
    assert (second["pointsHeld"], second["pointsBalance"]) == (1000, 2000)
    rows = await db.fetch("SELECT status, points FROM points_hold WHERE source_type = 'parking_session'"
                          " AND source_ref LIKE $1 ORDER BY id", f"{pk(session['id'])}:%")
    assert [(r["status"], int(r["points"])) for r in rows] == [("RELEASED", 400), ("HELD", 1000)]
    cancel = await offset(api, token, session["id"], 0)
    assert (cancel["pointsHeld"], cancel["pointsBalance"]) == (0, 3000)
    assert (await parking_state(member_id))["live_holds"] == 0


async def test_unpaid_exit_releases_the_hold_and_keeps_the_coupon(api):
    clock.freeze(T0)
    op, park = await setup(api)
    member_id, token = await member(2100, "GOLD")
    coupon = await parking_coupon(api, op, token, face_value_fen=500)
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate))["session"]
    clock.freeze(at(315))  # 300 charged → ¥25; tier: 180 → ¥15
    applied = await offset(api, token, session["id"], 2000, [coupon])
    assert applied["pointsHeld"] == 1000 and applied["pointsBalance"] == 1000
    out = await park.exit(plate, paid=False)
    bill_ = money(out["bill"])
    assert out["session"]["paid"] is False
    assert (bill_["fee"], bill_["tierDiscount"], bill_["couponDiscount"], bill_["pointsDiscount"], bill_["payable"],
            bill_["couponsUsed"]) == (2500, 1000, 0, 0, 1500, [])
    state = await parking_state(member_id)
    assert (state["balance"], state["held"], state["live_holds"], state["vouchers_issued"]) == (2000, 0, 0, 1)
    assert (await db.fetch("SELECT status FROM voucher WHERE code = $1", coupon))[0]["status"] == "ISSUED"


async def test_a_lapsed_hold_is_renewed_at_the_exit_when_the_points_are_still_there(api):
    clock.freeze(T0)
    _, park = await setup(api, dailyCapFen=None)
    member_id, token = await member(1000)
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate))["session"]
    clock.freeze(at(75))  # 60 charged minutes: ¥5
    assert (await offset(api, token, session["id"], 500))["pointsHeld"] == 500
    clock.freeze(at(75 + 25 * 60))  # the hold (24 h) has lapsed; the points are still spendable
    quote = await park.quote(plate)
    assert money(quote["bill"])["pointsApplied"] == 0  # a lapsed hold holds nothing
    out = await park.exit(plate)
    assert money(out["bill"])["pointsApplied"] == 500 and money(out["bill"])["pointsDiscount"] == 500
    state = await parking_state(member_id)
    assert (state["balance"], state["live_holds"]) == (500, 0)


async def test_binding_during_a_stay_links_it_and_unbinding_releases_its_hold(api):
    clock.freeze(T0)
    _, park = await setup(api)
    member_id, token = await member(1000)
    plate = new_plate()
    session = (await park.entry(plate))["session"]
    assert session["memberLinked"] is False
    vehicle = (await bind(api, token, plate))["vehicle"]
    me = (await api.post(ME_PARKING, token=token))["data"]["viewer"]["member"]
    assert me["parkingSession"]["id"] == session["id"]
    clock.freeze(at(135))
    assert (await offset(api, token, session["id"], 1000))["pointsHeld"] == 1000
    await api.post(UNBIND, {"i": {"vehicleId": vehicle["id"]}}, token=token)
    state = await parking_state(member_id, plate)
    assert (state["balance"], state["held"], state["plate_stays"][0]["member_id"]) == (1000, 0, None)
    out = await park.exit(plate)
    assert money(out["bill"])["payable"] == 1000 and out["session"]["memberLinked"] is False


async def test_abandoned_stays_release_their_holds_and_the_run_is_repeatable(api):
    op, park = await setup(api)
    member_id, token = await member(1000)
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate, at=clock.now() - timedelta(hours=80)))["session"]
    assert (await offset(api, token, session["id"], 700))["pointsHeld"] == 700
    fresh = (await park.entry(new_plate(), at=clock.now() - timedelta(hours=1)))["session"]
    run = """mutation($i: ParkingAbandonRunInput!) { parkingAbandonRun(input: $i) { staysAbandoned pointsReleased
      userErrors { code } } }"""
    first = (await api.post(run, {"i": {"olderThanHours": 72}}, token=op, admin=True))["data"]["parkingAbandonRun"]
    assert first["staysAbandoned"] >= 1 and first["pointsReleased"] >= 700
    second = (await api.post(run, {"i": {"olderThanHours": 72}}, token=op, admin=True))["data"]["parkingAbandonRun"]
    assert second == {"staysAbandoned": 0, "pointsReleased": 0, "userErrors": []}
    statuses = {r["id"]: r["status"] for r in await db.fetch(
        "SELECT id, status FROM parking_session WHERE id IN ($1, $2)", pk(session["id"]), pk(fresh["id"]))}
    assert statuses == {pk(session["id"]): "ABANDONED", pk(fresh["id"]): "OPEN"}
    state = await parking_state(member_id)
    assert (state["balance"], state["held"]) == (1000, 0)
    me = (await api.post(ME_PARKING, token=token))["data"]["viewer"]["member"]
    assert me["parkingSession"] is None and me["parkingHistory"]["edges"][0]["node"]["bill"] is None
    assert [e["code"] for e in (await park.exit(plate))["userErrors"]] == ["NO_OPEN_STAY"]
    audit = await db.fetch("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'parking.abandon_run'")
    assert int(audit[0]["n"]) >= 2
    bad = (await api.post(run, {"i": {"olderThanHours": 0}}, token=op, admin=True))["data"]["parkingAbandonRun"]
    assert bad["userErrors"] == [{"code": "INVALID_INPUT"}]


async def test_operators_manage_car_parks_and_see_occupancy_and_offset_totals(api):
    op, park = await setup(api)
    parks = (await api.post("{ carParks { id code } }", token=op, admin=True))["data"]["carParks"]
    gid = next(p["id"] for p in parks if p["code"] == park.code)
    updated = await api.post(
        """mutation($i: CarParkUpdateInput!) { carParkUpdate(input: $i) { carPark { hourlyFee { amountFen }
        dailyCap { amountFen } tierFreeMinutes { tierCode minutes } } userErrors { code field } } }""",
        {"i": {"carParkId": gid, "hourlyFen": 600, "clear": ["dailyCapFen"],
               "tierFreeMinutes": [{"tierCode": "GOLD", "minutes": 60}]}}, token=op, admin=True)
    car_park = updated["data"]["carParkUpdate"]["carPark"]
    assert car_park == {"hourlyFee": {"amountFen": 600}, "dailyCap": None,
                        "tierFreeMinutes": [{"tierCode": "GOLD", "minutes": 60}]}
    bad = await api.post("""mutation($i: CarParkUpdateInput!) { carParkUpdate(input: $i) { userErrors { code field } } }""",
                         {"i": {"carParkId": gid, "tierFreeMinutes": [{"tierCode": "NOPE", "minutes": 60}]}},
                         token=op, admin=True)
    assert bad["data"]["carParkUpdate"]["userErrors"][0]["code"] == "INVALID_INPUT"
    actions = await db.fetch("SELECT action FROM audit_log WHERE target_type = 'car_park' AND target_id = $1 ORDER BY id",
                             str(pk(gid)))
    assert [a["action"] for a in actions] == ["car_park.create", "car_park.key_bind", "car_park.update"]

    member_id, token = await member(1000)
    plate = new_plate()
    await bind(api, token, plate)
    start = clock.now()
    session = (await park.entry(plate, at=start - timedelta(minutes=135)))["session"]
    await offset(api, token, session["id"], 300)
    await park.exit(plate)
    await park.entry(new_plate(), at=start - timedelta(minutes=5))
    occupancy = await api.post("{ parkingOccupancy { carPark { code } openStays entriesToday exitsToday } }",
                               token=op, admin=True)
    mine = next(o for o in occupancy["data"]["parkingOccupancy"] if o["carPark"]["code"] == park.code)
    assert mine["openStays"] == 1 and mine["exitsToday"] == 1 and 1 <= mine["entriesToday"] <= 2
    totals = await api.post(
        """query($f: DateTime!, $t: DateTime!, $c: String) { parkingOffsetTotals(from: $f, to: $t, carParkCode: $c) {
        carPark { code } stays unpaidStays fee { amountFen } pointsDiscount { amountFen } pointsSpent
        payable { amountFen } } }""",
        {"f": (start - timedelta(hours=1)).isoformat(), "t": (start + timedelta(hours=1)).isoformat(), "c": park.code},
        token=op, admin=True)
    # 120 charged minutes at ¥6 = ¥12; 300 points = ¥3
    assert totals["data"]["parkingOffsetTotals"] == [{"carPark": {"code": park.code}, "stays": 1, "unpaidStays": 0,
                                                      "fee": {"amountFen": 1200}, "pointsDiscount": {"amountFen": 300},
                                                      "pointsSpent": 300, "payable": {"amountFen": 900}}]
    sessions = await api.post("""query($c: String) { parkingSessions(first: 5, carParkCode: $c, status: OPEN) {
        edges { node { status } } } }""", {"c": park.code}, token=op, admin=True)
    assert [e["node"]["status"] for e in sessions["data"]["parkingSessions"]["edges"]] == ["OPEN"]
    node = await api.post("query($id: ID!) { node(id: $id) { ... on ParkingSession { plate } } }",
                          {"id": session["id"]}, token=token)
    assert node["data"]["node"] == {"plate": plate}
    _, other_token = await member()
    hidden = await api.post("query($id: ID!) { node(id: $id) { ... on ParkingSession { plate } } }",
                            {"id": session["id"]}, token=other_token)
    assert hidden["data"]["node"] is None


def test_the_cli_has_parking_abandon():
    from api.cli import build_parser

    args = build_parser().parse_args(["parking-abandon", "--older-than-hours", "48"])
    assert args.older_than_hours == 48 and args.func.__name__ == "cmd_parking_abandon"


# --- the pure fee function ----------------------------------------------------------------------

P1 = FeeRules(free_minutes=15, hourly_fen=500, daily_cap_fen=5000, offset_points_per_yuan=100, offset_max_points=2000)


@pytest.mark.parametrize("minutes, expected", [
    (0, 0), (15, 0), (16, 500), (75, 500), (76, 1000), (135, 1000), (136, 1500),
    (15 + 600, 5000), (15 + 1440, 5000), (15 + 1441, 5500), (15 + 2880, 10000), (15 + 2881, 10500),
])
def test_fee_free_minutes_hours_or_part_and_daily_cap(minutes, expected):
    assert fee(P1, minutes) == expected


def test_fee_without_cap_and_a_cap_above_a_full_day():
    assert fee(FeeRules(0, 500, None), 24 * 60 * 2 + 1) == 49 * 500
    assert fee(FeeRules(0, 100, 100_000), 1440 + 30) == 2400 + 100  # a cap above 24 h of hours never bites


def test_points_round_in_the_members_favour():
    rules = FeeRules(0, 500, None, offset_points_per_yuan=150, offset_max_points=10_000)
    assert fen_for_points(rules, 2) == 2  # 1.33 fen, rounded up
    assert points_for_fen(rules, 2) == 2 and points_for_fen(rules, 3) == 4 and points_for_fen(rules, 0) == 0
    assert fen_for_points(P1, 1234) == 1234 and points_for_fen(P1, 1234) == 1234


def test_bill_applies_discounts_in_order():
    b = bill(P1, 330, tier_minutes_left=120, purchase_minutes=120,
             coupons=[Coupon("A", 300), Coupon("B", 5000), Coupon("C", 100)], points=2000)
    # fee ¥30 (315 charged); tier → 195 (4 h, ¥20); purchase → 75 (2 h, ¥10); coupon A ¥3, B ¥7 (C unused); no points
    assert (b.fee_fen, b.tier_discount_fen, b.purchase_discount_fen, b.coupon_discount_fen, b.coupons_used,
            b.points_discount_fen, b.points, b.payable_fen) == (3000, 1000, 1000, 1000, ("A", "B"), 0, 0, 0)
    short = bill(P1, 40, tier_minutes_left=120)  # 25 charged minutes: the tier uses 25 of its 120
    assert (short.fee_fen, short.tier_minutes, short.payable_fen) == (500, 25, 0)


def _hour_by_hour_fee(rules: FeeRules, minutes: int) -> int:
    """The fee counted the slow way, to check `fee` against: every hour (or part of one) after the free
    minutes adds hourly_fen, and each 24 hours' sum is cut at the daily cap."""
    total = day = 0
    for start in range(0, max(0, minutes - rules.free_minutes), 60):
        if start and start % DAY_MINUTES == 0:
            total, day = total + day, 0
        day += rules.hourly_fen
        if rules.daily_cap_fen is not None:
            day = min(day, rules.daily_cap_fen)
    return total + day


@hsettings(max_examples=300, deadline=None)
@given(
    free=st.integers(0, 120), hourly=st.integers(0, 2000), cap=st.one_of(st.none(), st.integers(0, 60000)),
    rate=st.integers(1, 1000), max_points=st.integers(0, 5000), minutes=st.integers(0, 5 * 1440),
    tier=st.integers(0, 300), purchase=st.integers(0, 300), coupons=st.lists(st.integers(0, 5000), max_size=4),
    points=st.integers(0, 5000),
)
def test_bill_properties(free, hourly, cap, rate, max_points, minutes, tier, purchase, coupons, points):
    rules = FeeRules(free, hourly, cap, rate, max_points)
    points = min(points, max_points)
    b = bill(rules, minutes, tier_minutes_left=tier, purchase_minutes=purchase,
             coupons=[Coupon(f"C{i}", v) for i, v in enumerate(coupons)], points=points)
    assert b.fee_fen == _hour_by_hour_fee(rules, minutes) and fee(rules, minutes + 1) >= b.fee_fen  # monotone
    parts = (b.tier_discount_fen, b.purchase_discount_fen, b.coupon_discount_fen, b.points_discount_fen, b.payable_fen)
    assert all(x >= 0 for x in parts) and sum(parts) == b.fee_fen
    assert b.tier_minutes <= tier and b.purchase_minutes <= purchase
    assert b.coupon_discount_fen <= sum(coupons)
    assert 0 <= b.points <= points and fen_for_points(rules, b.points) >= b.points_discount_fen
    if b.points:  # the fewest points for the discount
        assert fen_for_points(rules, b.points - 1) < b.points_discount_fen
    assert b.points_needed <= max_points


async def test_an_exit_event_id_closes_one_exit_only(api):
    op = await operator_token(api)
    park = await car_park_system(api, op)
    plate = new_plate()
    await park.entry(plate)
    clock.freeze(clock.now() + timedelta(hours=2))
    first = await park.exit(plate, event="OUT-REUSED")
    assert first["userErrors"] == []
    other_payment = await park.exit(plate, at=clock.now(), event="OUT-REUSED", paid=False)
    assert other_payment["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    clock.freeze(clock.now() + timedelta(days=1))
    await park.entry(plate)
    clock.freeze(clock.now() + timedelta(hours=1))
    reused = await park.exit(plate, event="OUT-REUSED")  # the car park reused the id for the next stay
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    rows = await db.fetch("SELECT status FROM parking_session WHERE plate = $1 ORDER BY id", plate)
    assert [r["status"] for r in rows] == ["CLOSED", "OPEN"]
    assert (await park.exit(plate))["userErrors"] == []


async def test_a_key_reports_only_for_the_car_parks_it_is_bound_to(api):
    op = await operator_token(api)
    mine = await car_park_system(api, op)
    other = await car_park_system(api, op)
    plate = new_plate()
    foreign = await CarParkSystem(api, (other.key_id, other.secret), mine.code).entry(plate)
    assert foreign["userErrors"][0]["code"] == "CAR_PARK_NOT_ALLOWED"
    assert await db.fetch("SELECT id FROM parking_session WHERE plate = $1", plate) == []
    bind_key = """mutation($i: CarParkKeyBindInput!) { carParkKeyBind(input: $i) { keyIds userErrors { code field } } }"""
    bound = await api.post(bind_key, {"i": {"carParkCode": mine.code, "keyId": other.key_id}}, token=op, admin=True)
    assert other.key_id in bound["data"]["carParkKeyBind"]["keyIds"]
    assert (await CarParkSystem(api, (other.key_id, other.secret), mine.code).entry(plate))["userErrors"] == []
    pos = await api.post(bind_key, {"i": {"carParkCode": mine.code, "keyId": "demo-pos"}}, token=op, admin=True)
    assert pos["data"]["carParkKeyBind"]["userErrors"][0]["code"] == "INVALID_INPUT"
