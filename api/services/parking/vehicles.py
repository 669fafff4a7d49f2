"""Members' vehicles: binding a plate (with consent to process plate records) and unbinding it."""
from __future__ import annotations

from typing import cast

from tortoise.exceptions import IntegrityError

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import Member, ParkingSession, Vehicle
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.parking.common import CONSENT_VERSION, MAX_VEHICLES, is_unique_violation, no_member
from api.services.parking.holds import lock_account, release_hold
from api.services.parking.plates import lock_plate, normalize_plate

VehicleInfo = Vehicle  # a vehicle as the other layers see it: the model (member_id, plate, active, times)


def _bound_elsewhere() -> DomainError:
    return DomainError(ErrorCode.PLATE_BOUND_ELSEWHERE, "this plate is bound to another member", ["input", "plate"])


async def bind_vehicle(member_id: int, plate: str, consent: bool) -> Vehicle:
    """vehicleBind: at most MAX_VEHICLES active per member (counted under a lock of the member's row),
    a plate active for one member at a time (the partial unique index `vehicle_plate_active` has the
    final word); binding one's own plate again returns it. Open stays of the plate that have no member
    yet become the member's (the car is inside the car park while the member binds)."""
    plate = normalize_plate(plate)
    if consent is not True:
        raise DomainError(ErrorCode.CONSENT_REQUIRED, "binding a plate needs consent to process plate records",
                          ["input", "consent"])
    now = clock.now()
    try:
        async with transaction():
            await lock_plate(plate)  # the plate first, then the member (the order of an entry's FK check)
            if await locks.row(Rank.MEMBER, Member, member_id) is None:
                raise no_member()
            found = await Vehicle.filter(plate=plate, active=True).first()
            if found is not None:
                if found.member_id == member_id:
                    return found
                raise _bound_elsewhere()
            if await Vehicle.filter(member_id=member_id, active=True).count() >= MAX_VEHICLES:
                raise DomainError(ErrorCode.VEHICLE_LIMIT_REACHED, f"at most {MAX_VEHICLES} vehicles per member",
                                  ["input", "plate"])
            created = await Vehicle.create(member_id=member_id, plate=plate, active=True,
                                           consent_version=CONSENT_VERSION, consented_at=now, bound_at=now)
            await ParkingSession.filter(plate=plate, status="OPEN", member_id=None).update(member_id=member_id)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise _bound_elsewhere() from None
    return created


async def unbind_vehicle(member_id: int, vehicle_id: int) -> Vehicle:
    """vehicleUnbind (own vehicles only). The plate's open stays are no longer the member's: their points
    hold is released and their chosen coupons forgotten (a member who sold the car pays nothing more)."""
    now = clock.now()
    async with transaction() as tx:
        found = await Vehicle.get_or_none(id=vehicle_id, member_id=member_id)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such vehicle", ["input", "vehicleId"])
        await lock_plate(found.plate)  # the plate first, then the account (the order of an entry's FK check)
        acct = await lock_account(tx, member_id, now)
        await found.refresh_from_db()
        if not found.active:
            raise DomainError(ErrorCode.VEHICLE_NOT_BOUND, "this vehicle is no longer bound", ["input", "vehicleId"])
        found.active, found.unbound_at = False, now
        await found.save(update_fields=["active", "unbound_at"])
        open_ids = cast(list[int], await ParkingSession.filter(plate=found.plate, member_id=member_id,
                                                                status="OPEN").values_list("id", flat=True))
        for stay in await locks.rows(Rank.STAY, ParkingSession, open_ids):
            if stay.status != "OPEN" or stay.member_id != member_id:
                continue  # closed by an exit meanwhile
            await release_hold(tx, acct, stay.hold_id, now)
            await ParkingSession.filter(id=stay.id).update(member_id=None, offset_points=0, hold_id=None,
                                                           coupon_codes="[]")
    return found


async def vehicles_of(member_ids: list[int]) -> dict[int, list[Vehicle]]:
    """Active vehicles of each member (a DataLoader's batch), in binding order."""
    found: dict[int, list[Vehicle]] = {int(i): [] for i in member_ids}
    if member_ids:
        for v in await Vehicle.filter(active=True, member_id__in=list(member_ids)).order_by("id"):
            found[v.member_id].append(v)
    return found


async def vehicle(vehicle_id: int) -> Vehicle | None:
    return await Vehicle.get_or_none(id=vehicle_id)
