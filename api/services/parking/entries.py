"""Entries: the car park's system reports a car coming in, and a stay opens."""
from __future__ import annotations

from datetime import datetime

from tortoise.exceptions import IntegrityError

from api.db import transaction
from api.models import ParkingSession, Vehicle
from api.services import clock
from api.services import text as hygiene
from api.services.errors import DomainError, ErrorCode
from api.services.parking.car_parks import car_park_by_code
from api.services.parking.common import MAX_EVENT_ID, is_unique_violation
from api.services.parking.plates import lock_plate, normalize_plate
from api.services.parking.stays import StayInfo


def check_event(event_id: str) -> str:
    """A car park's event id: 1 to MAX_EVENT_ID characters, no control characters."""
    return hygiene.identifier(event_id, ["input", "eventId"], MAX_EVENT_ID)


def _already_open() -> DomainError:
    return DomainError(ErrorCode.STAY_ALREADY_OPEN, "this plate has an open stay in this car park; report its exit first",
                       ["input", "plate"])


async def _earlier(car_park_id: int, plate: str, event_id: str, entered_at: datetime) -> StayInfo | None:
    """The stay this very entry opened before (a repeat), or None when the plate has no open stay;
    another open stay of the plate is refused. The event is looked for first, then the plate's open
    stay: a parallel report of the same entry may commit between the two reads."""
    stays = ParkingSession.filter(car_park_id=car_park_id)
    for found in (await stays.filter(entry_event=event_id).first(),
                  await stays.filter(plate=plate, status="OPEN").first()):
        if found is None:
            continue
        if found.entry_event != event_id:
            raise _already_open()
        if found.plate != plate or found.entered_at != entered_at:
            raise DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "this eventId was reported before for another entry",
                              ["input", "eventId"])
        return StayInfo.of(found)
    return None


async def record_entry(car_park_code: str, plate: str, entered_at: datetime, event_id: str) -> StayInfo:
    """parkingEntryRecord: a stay opens (linked to the member whose active vehicle has the plate). The
    same event again returns the same stay; another entry while the plate's stay is open is refused."""
    plate = normalize_plate(plate)
    event_id = check_event(event_id)
    now = clock.now()
    entered_at = hygiene.check_parking_entry(entered_at, ["input", "enteredAt"], now)  # 30 days ago … now + 5 min
    cp = await car_park_by_code(car_park_code)
    for _attempt in range(3):
        try:
            async with transaction():
                await lock_plate(plate)  # a bind or unbind of this plate commits before or after, not during
                earlier = await _earlier(cp.id, plate, event_id, entered_at)
                if earlier is not None:
                    return earlier
                member_id = await Vehicle.filter(plate=plate, active=True).first().values_list("member_id", flat=True)
                created = await ParkingSession.create(
                    car_park_id=cp.id, plate=plate, member_id=member_id, status="OPEN", entry_event=event_id,
                    entered_at=entered_at, offset_points=0, coupon_codes="[]", created_at=now)
                return StayInfo.of(created)
        except IntegrityError as exc:  # a parallel report of the same entry, or of another one
            if not is_unique_violation(exc):
                raise
    raise _already_open()
