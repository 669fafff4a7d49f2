"""Races in parking on real PostgreSQL: N parallel callers, exactly who wins, the final state."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from api import db
from api.services import clock, parking
from tests.conftest import unique
from tests.mall_helpers import operator_token
from tests.parking_helpers import (
    UNBIND,
    bind,
    car_park_system,
    member,
    new_plate,
    offset,
    parking_state,
    pk,
)
from tests.waiting import postgres_dsn, wait_for_lock_waiters

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def codes(payloads: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in payloads:
        code = p["userErrors"][0]["code"] if p["userErrors"] else "OK"
        out[code] = out.get(code, 0) + 1
    return out


async def test_20_parallel_offsets_on_one_stay_hold_points_once(api):
    op = await operator_token(api)
    park = await car_park_system(api, op, offsetMaxPoints=5000, dailyCapFen=None)
    member_id, token = await member(10_000)
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate, at=clock.now() - timedelta(hours=10, minutes=15)))["session"]  # ¥50 so far
    amounts = [100 * (i + 1) for i in range(20)]
    results = await asyncio.gather(*(offset(api, token, session["id"], n) for n in amounts))
    assert codes(results) == {"OK": 20}
    live = await db.fetch("SELECT id, points FROM points_hold WHERE source_type = 'parking_session' AND status = 'HELD'"
                          " AND source_ref LIKE $1", f"{pk(session['id'])}:%")
    assert len(live) == 1
    stay = await parking.stay(pk(session["id"]))
    assert stay.hold_id == live[0]["id"] and stay.offset_points == int(live[0]["points"]) and stay.offset_points in amounts
    state = await parking_state(member_id)
    assert (state["balance"], state["held"], state["live_holds"]) == (10_000, stay.offset_points, 1)
    me = await api.post("{ viewer { member { pointsBalance pointsHeld } } }", token=token)
    assert me["data"]["viewer"]["member"] == {"pointsBalance": 10_000 - stay.offset_points,
                                              "pointsHeld": stay.offset_points}
    released = await db.fetch("SELECT COUNT(*) AS n FROM points_hold WHERE source_type = 'parking_session'"
                              " AND status = 'RELEASED' AND source_ref LIKE $1", f"{pk(session['id'])}:%")
    assert int(released[0]["n"]) == 19
    out = await park.exit(plate)
    assert out["bill"]["pointsApplied"] == stay.offset_points
    assert (await parking_state(member_id))["balance"] == 10_000 - stay.offset_points


async def test_parallel_binds_of_one_plate_by_two_members_bind_it_once(api):
    for _ in range(5):
        plate = new_plate()
        (a, token_a), (b, token_b) = await member(), await member()
        results = await asyncio.gather(bind(api, token_a, plate), bind(api, token_b, plate))
        assert codes(results) == {"OK": 1, "PLATE_BOUND_ELSEWHERE": 1}
        rows = await db.fetch("SELECT member_id FROM vehicle WHERE plate = $1 AND active", plate)
        winner = a if not results[0]["userErrors"] else b
        assert [r["member_id"] for r in rows] == [winner]


async def test_one_member_binding_many_plates_at_once_stops_at_three(api):
    member_id, token = await member()
    results = await asyncio.gather(*(bind(api, token, new_plate()) for _ in range(8)))
    assert codes(results) == {"OK": 3, "VEHICLE_LIMIT_REACHED": 5}
    assert (await parking_state(member_id))["vehicles"] == 3


async def test_parallel_reports_of_one_exit_and_of_one_entry_count_once(api):
    op = await operator_token(api)
    park = await car_park_system(api, op)
    member_id, token = await member(1000)
    plate = new_plate()
    await bind(api, token, plate)
    entered = clock.now() - timedelta(minutes=135)
    entries = await asyncio.gather(*(park.entry(plate, at=entered, event="in-x") for _ in range(10)))
    assert codes(entries) == {"OK": 10} and len({e["session"]["id"] for e in entries}) == 1
    others = await asyncio.gather(*(park.entry(plate, event=unique("in")) for _ in range(5)))
    assert codes(others) == {"STAY_ALREADY_OPEN": 5}
    await offset(api, token, entries[0]["session"]["id"], 1000)
    left = clock.now()  # a car park repeats its report with the same time
    exits = await asyncio.gather(*(park.exit(plate, at=left, event="out-x") for _ in range(10)))
    assert codes(exits) == {"OK": 10} and {e["bill"]["pointsApplied"] for e in exits} == {1000}
    state = await parking_state(member_id)
    assert (state["balance"], state["held"], state["entries"]) == (0, 0, 2)  # the credit and one spend


async def test_two_abandon_runs_at_once_close_each_stay_once(api):
    op = await operator_token(api)
    park = await car_park_system(api, op)
    member_id, token = await member(5000)
    plates = [new_plate() for _ in range(6)]
    await bind(api, token, plates[0])
    for p in plates:
        await park.entry(p, at=clock.now() - timedelta(hours=100))
    session = (await api.post("{ viewer { member { parkingSession { id } } } }", token=token))
    await offset(api, token, session["data"]["viewer"]["member"]["parkingSession"]["id"], 2000)
    runs = await asyncio.gather(*(parking.abandon_stays(("cli", None), 72) for _ in range(2)))
    statuses = await db.fetch(f"SELECT status FROM parking_session WHERE plate IN ({', '.join(['$' + str(i + 1) for i in range(6)])})",
                              *plates)
    assert {r["status"] for r in statuses} == {"ABANDONED"}
    assert sum(r.points_released for r in runs) >= 2000
    state = await parking_state(member_id)
    assert (state["balance"], state["held"]) == (5000, 0)


async def test_an_entry_racing_an_unbind_never_links_the_stay_to_the_former_owner(api):
    op = await operator_token(api)
    park = await car_park_system(api, op)
    _, token = await member(0)
    for _ in range(20):
        plate = new_plate()
        vehicle = (await bind(api, token, plate))["vehicle"]
        await asyncio.gather(park.entry(plate), api.post(UNBIND, {"i": {"vehicleId": vehicle["id"]}}, token=token))
        rows = await db.fetch("SELECT s.member_id FROM parking_session s WHERE s.plate = $1 AND s.status = 'OPEN'",
                              plate)
        assert rows and rows[0]["member_id"] is None, plate


async def test_an_offset_waits_for_the_stay_another_move_has_locked(api):
    """parkingOffsetApply takes the stay's row lock (api/locks.py, Rank.STAY) before it writes: while
    another transaction holds it, the offset is seen waiting to lock it (a SELECT … FOR UPDATE, not
    its final UPDATE), and it goes through once the lock is released."""
    op = await operator_token(api)
    park = await car_park_system(api, op, offsetMaxPoints=5000, dailyCapFen=None)
    member_id, token = await member(10_000)
    plate = new_plate()
    await bind(api, token, plate)
    session = (await park.entry(plate, at=clock.now() - timedelta(hours=3)))["session"]
    holder = await asyncpg.connect(postgres_dsn())
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT id FROM parking_session WHERE id = $1 FOR UPDATE", pk(session["id"]))
        applying = asyncio.create_task(offset(api, token, session["id"], 300))
        waiting = await wait_for_lock_waiters(1, blocked_by=holder)
        assert waiting[0]["query"].lstrip().upper().startswith("SELECT"), waiting
        assert not applying.done() and (await parking_state(member_id))["held"] == 0
        await tx.rollback()
    finally:
        await holder.close()
    result = await asyncio.wait_for(applying, 10)
    assert result["userErrors"] == [] and result["pointsHeld"] == 300
    assert (await parking_state(member_id))["held"] == 300
