"""Thin resolvers of parking (members, the car park's integration, operators)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import strawberry
from strawberry.types import Info

from api.resolvers import input_pk, user_errors
from api.schema import parking as s
from api.schema.base import Connection, check_first, from_cursor
from api.schema.errors import ApiError
from api.services import parking
from api.services.errors import DomainError, ErrorCode


async def _session(stay_id: int) -> s.ParkingSession:
    found = await parking.stay(stay_id)
    assert found is not None
    return s.ParkingSession.of(found)


# --- members -------------------------------------------------------------------------------------

@user_errors(s.VehicleBindPayload)
async def vehicle_bind(info: Info, input: s.VehicleBindInput) -> s.VehicleBindPayload:
    found = await parking.bind_vehicle(info.context.require_member(), input.plate, input.consent)
    return s.VehicleBindPayload(vehicle=s.Vehicle.of(found))


@user_errors(s.VehicleUnbindPayload)
async def vehicle_unbind(info: Info, input: s.VehicleUnbindInput) -> s.VehicleUnbindPayload:
    member_id = info.context.require_member()
    found = await parking.unbind_vehicle(member_id, input_pk(input.vehicle_id, "Vehicle", "vehicleId"))
    return s.VehicleUnbindPayload(vehicle=s.Vehicle.of(found))


@user_errors(s.ParkingOffsetApplyPayload)
async def parking_offset_apply(info: Info, input: s.ParkingOffsetApplyInput) -> s.ParkingOffsetApplyPayload:
    member_id = info.context.require_member()
    result = await parking.apply_offset(member_id, input_pk(input.session_id, "ParkingSession", "sessionId"),
                                        input.points, input.coupon_codes, input.idempotency_key)
    return s.ParkingOffsetApplyPayload(session=await _session(result.stay_id), points_held=result.points_held,
                                       points_balance=result.points_balance)


# --- node(id:) ------------------------------------------------------------------------------------

async def _stay_node(info: Info, pk: int) -> Optional[s.ParkingSession]:
    """Stays and vehicles for their member (and operators); car parks for operators."""
    found = await parking.stay(pk)
    if found is None or not (info.context.is_operator or found.member_id is not None
                             and info.context.may_read_member(found.member_id)):
        return None
    return s.ParkingSession.of(found)


async def _vehicle_node(info: Info, pk: int) -> Optional[s.Vehicle]:
    found = await parking.vehicle(pk)
    return s.Vehicle.of(found) if found and info.context.may_read_member(found.member_id) else None


async def _car_park_node(info: Info, pk: int) -> Optional[s.CarPark]:
    found = (await parking.car_parks_by_id([pk])).get(pk) if info.context.is_operator else None
    return s.CarPark.of(found) if found else None


NODES = {"ParkingSession": _stay_node, "Vehicle": _vehicle_node, "CarPark": _car_park_node}


# --- the car park (signed, scope parking) --------------------------------------------------------

async def _car_park_system(info: Info, car_park_code: str) -> None:
    """The caller is that car park's system: a signed key with the parking scope, bound to the car park."""
    identity = info.context.require_integration("parking")
    await parking.require_key(identity.key_id, car_park_code)


@user_errors(s.ParkingEntryRecordPayload)
async def parking_entry_record(info: Info, input: s.ParkingEntryRecordInput) -> s.ParkingEntryRecordPayload:
    await _car_park_system(info, input.car_park_code)
    found = await parking.record_entry(input.car_park_code, input.plate, input.entered_at, input.event_id)
    return s.ParkingEntryRecordPayload(session=s.ParkingSession.of(found))


@user_errors(s.ParkingExitRecordPayload)
async def parking_exit_record(info: Info, input: s.ParkingExitRecordInput) -> s.ParkingExitRecordPayload:
    await _car_park_system(info, input.car_park_code)
    result = await parking.record_exit(input.car_park_code, input.plate, input.exited_at, input.event_id, input.paid)
    found = await parking.stay(result.stay_id)
    assert found is not None  # the exit closed it just now
    return s.ParkingExitRecordPayload(session=s.ParkingSession.of(found), bill=s.ParkingBill.of(parking.final_bill(found)))


@user_errors(s.ParkingSessionQuotePayload)
async def parking_session_quote(info: Info, input: s.ParkingSessionQuoteInput) -> s.ParkingSessionQuotePayload:
    await _car_park_system(info, input.car_park_code)
    q = await parking.quote(input.car_park_code, input.plate, input.at)
    return s.ParkingSessionQuotePayload(session=s.ParkingSession.of(q.stay), bill=s.ParkingBill.of(q.bill), at=q.at)


# --- operators -----------------------------------------------------------------------------------

async def car_parks(info: Info) -> list[s.CarPark]:
    info.context.require_operator()
    return [s.CarPark.of(c) for c in await parking.car_parks()]


def _car_park_data(input: s.CarParkCreateInput | s.CarParkUpdateInput) -> parking.CarParkData:
    tiers = None if input.tier_free_minutes is None else {t.tier_code: t.minutes for t in input.tier_free_minutes}
    return parking.CarParkData(
        name=input.name, free_minutes=input.free_minutes, hourly_fen=input.hourly_fen,
        daily_cap_fen=input.daily_cap_fen, tier_free_minutes=tiers, purchase_min_fen=input.purchase_min_fen,
        purchase_free_minutes=input.purchase_free_minutes, offset_points_per_yuan=input.offset_points_per_yuan,
        offset_max_points=input.offset_max_points)


@user_errors(s.CarParkPayload)
async def car_park_create(info: Info, input: s.CarParkCreateInput) -> s.CarParkPayload:
    found = await parking.create_car_park(info.context.operator_actor(), input.code, _car_park_data(input))
    return s.CarParkPayload(car_park=s.CarPark.of(found))


_CLEARABLE = {"dailyCapFen": "daily_cap_fen", "purchaseMinFen": "purchase_min_fen"}


@user_errors(s.CarParkPayload)
async def car_park_update(info: Info, input: s.CarParkUpdateInput) -> s.CarParkPayload:
    actor = info.context.operator_actor()
    unknown = [c for c in input.clear or [] if c not in _CLEARABLE]
    if unknown:
        raise DomainError(ErrorCode.INVALID_INPUT, f"cannot clear {', '.join(unknown)}", ["input", "clear"])
    found = await parking.update_car_park(actor, input_pk(input.car_park_id, "CarPark", "carParkId"), _car_park_data(input),
                                          frozenset(_CLEARABLE[c] for c in input.clear or []))
    return s.CarParkPayload(car_park=s.CarPark.of(found))


async def parking_sessions(info: Info, first: int, after: Optional[str] = None, car_park_code: Optional[str] = None,
                           status: Optional[s.ParkingSessionStatus] = None) -> Connection[s.ParkingSession]:
    info.context.require_operator()
    check_first(first)
    car_park_id = None
    if car_park_code is not None:
        try:
            car_park_id = (await parking.car_park_by_code(car_park_code)).id
        except DomainError:
            return Connection.of([], first, after)
    rows = await parking.stays_page(car_park_id, status.value if status else None, first + 1, from_cursor(after))
    return Connection.of([s.ParkingSession.of(x) for x in rows], first, after)


async def parking_occupancy(info: Info) -> list[s.CarParkOccupancy]:
    info.context.require_operator()
    return [s.CarParkOccupancy(car_park=s.CarPark.of(o.car_park), open_stays=o.open_stays,
                               entries_today=o.entries_today, exits_today=o.exits_today)
            for o in await parking.occupancy()]


async def parking_offset_totals(info: Info, from_: Annotated[datetime, strawberry.argument(name="from")], to: datetime,
                                car_park_code: Optional[str] = None) -> list[s.ParkingOffsetTotals]:
    info.context.require_operator()
    try:
        rows = await parking.offset_totals(from_, to, car_park_code)
    except DomainError as err:
        raise ApiError(err.message, err.code.value) from None
    return [s.ParkingOffsetTotals.of(t) for t in rows]


@user_errors(s.ParkingAbandonRunPayload)
async def parking_abandon_run(info: Info, input: s.ParkingAbandonRunInput) -> s.ParkingAbandonRunPayload:
    result = await parking.abandon_stays(info.context.operator_actor(), input.older_than_hours, input.as_of)
    return s.ParkingAbandonRunPayload(stays_abandoned=result.stays_abandoned, points_released=result.points_released)


@user_errors(s.CarParkKeyBindPayload)
async def car_park_key_bind(info: Info, input: s.CarParkKeyBindInput) -> s.CarParkKeyBindPayload:
    actor = info.context.operator_actor()
    return s.CarParkKeyBindPayload(key_ids=await parking.bind_key(actor, input.car_park_code, input.key_id, input.bound))
