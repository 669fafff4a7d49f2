"""A stay's bill with the member's benefits and choices (the arithmetic is in `fees`), and the
quotes: the car park's `parkingSessionQuote` and the member's view of an open stay."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from tortoise.expressions import F
from tortoise.functions import Sum

from api import locks
from api.locks import Rank
from api.models import Member, ParkingSession, Purchase, Voucher
from api.services import clock, tiers
from api.services import text as hygiene
from api.services.errors import DomainError, ErrorCode
from api.services.parking.car_parks import CarParkInfo, car_park_by_code, car_park_by_id
from api.services.parking.common import FUTURE_SLACK, PARKING_COUPON
from api.services.parking.fees import Bill, Coupon, bill, minutes_between
from api.services.parking.holds import live_hold
from api.services.parking.plates import normalize_plate
from api.services.parking.stays import StayInfo


async def _tier_minutes_left(cp: CarParkInfo, s: StayInfo) -> int:
    """The member's tier allowance on the Shanghai day of the entry, less what that day's other closed
    stays used (in any car park)."""
    tier_id = cast("int | None", await Member.filter(id=s.member_id).first().values_list("tier_id", flat=True))
    allowance = cp.tier_free_minutes.get((await tiers.tier_by_id(tier_id)).code, 0) if tier_id is not None else 0
    if not allowance:
        return 0
    start, end = clock.day_bounds(clock.business_day(s.entered_at))
    used = cast("int | None", await (ParkingSession.filter(member_id=s.member_id, status="CLOSED", entered_at__gte=start,
                                        entered_at__lt=end).exclude(id=s.id)
                  .annotate(used=Sum("tier_minutes_used")).first().values_list("used", flat=True)))
    return max(0, allowance - int(used or 0))


async def _purchase_minutes(cp: CarParkInfo, s: StayInfo, at: datetime) -> int:
    """Free minutes for spending at least purchase_min_fen (net of refunds) from the start of the entry's
    Shanghai day to the end of the day of `at`."""
    if cp.purchase_min_fen is None or not cp.purchase_free_minutes:
        return 0
    start, _ = clock.day_bounds(clock.business_day(s.entered_at))
    _, end = clock.day_bounds(clock.business_day(max(at, s.entered_at)))
    spent = cast("int | None", await (Purchase.filter(member_id=s.member_id, occurred_at__gte=start, occurred_at__lt=end)
                   .annotate(net=Sum(F("amount_fen") - F("refunded_fen"))).first().values_list("net", flat=True)))
    return cp.purchase_free_minutes if int(spent or 0) >= cp.purchase_min_fen else 0


async def usable_coupons(member_id: int, codes: list[str], now: datetime, lock: bool = False) -> list[Coupon]:
    """The chosen codes that are still the member's usable parking coupons, in the member's order
    (`lock`: their rows locked, Rank.VOUCHER, for writing them off)."""
    if not codes:
        return []
    query = Voucher.filter(member_id=member_id, kind=PARKING_COUPON, code__in=codes)
    if lock:
        found = await locks.rows(Rank.VOUCHER, Voucher, cast(list[int], await query.values_list("id", flat=True)))
    else:
        found = await query.filter(status="ISSUED", valid_until__gt=now)
    value = {v.code: v.face_value_fen or 0 for v in found if v.status == "ISSUED" and v.valid_until > now}
    return [Coupon(c, value[c]) for c in codes if c in value]


async def _live_hold_points(s: StayInfo, now: datetime) -> int:
    if s.hold_id is None or not s.offset_points:
        return 0
    return s.offset_points if await live_hold(s.hold_id, now) else 0


async def compute(cp: CarParkInfo, s: StayInfo, at: datetime, now: datetime, *,
                  coupons: list[Coupon] | None = None, points: int | None = None) -> Bill:
    """The bill of a stay that ends (or is quoted) at `at`, with the member's benefits and choices
    (default: the coupons and live hold the stay has now)."""
    minutes = minutes_between(s.entered_at.timestamp(), at.timestamp())
    if s.member_id is None:
        return bill(cp.rules, minutes)
    return bill(
        cp.rules, minutes, tier_minutes_left=await _tier_minutes_left(cp, s),
        purchase_minutes=await _purchase_minutes(cp, s, at),
        coupons=coupons if coupons is not None else await usable_coupons(s.member_id, s.coupon_codes, now),
        points=points if points is not None else await _live_hold_points(s, now),
    )


def check_time(value: datetime, field: str, now: datetime) -> datetime:
    """A time a car park reports (an exit, a quote's moment): with a zone, between 1900 and 2199, and
    not in the future beyond the clocks' slack (text.check_time; INVALID_INPUT naming the field)."""
    return hygiene.check_time(value, ["input", field], not_after=now + FUTURE_SLACK)


@dataclass(frozen=True)
class Quote:
    stay: StayInfo
    bill: Bill
    at: datetime


async def quote(car_park_code: str, plate: str, at: datetime | None) -> Quote:
    """parkingSessionQuote: the open stay's fee at `at` (default now), each discount, the points
    applied and what is left to pay. A plate whose latest stay has ended: STAY_ENDED."""
    plate = normalize_plate(plate)
    now = clock.now()
    at = check_time(at, "at", now) if at is not None else now
    cp = await car_park_by_code(car_park_code)
    stays = ParkingSession.filter(car_park_id=cp.id, plate=plate)
    found = await stays.filter(status="OPEN").order_by("-id").first() or await stays.order_by("-id").first()
    if found is None:
        raise DomainError(ErrorCode.NO_OPEN_STAY, "no stay of this plate in this car park", ["input", "plate"])
    s = StayInfo.of(found)
    if s.status != "OPEN":
        raise DomainError(ErrorCode.STAY_ENDED, f"the plate's last stay has ended ({s.status})", ["input", "plate"])
    if at < s.entered_at:
        raise DomainError(ErrorCode.INVALID_INPUT, "at is before the entry", ["input", "at"])
    return Quote(s, await compute(cp, s, at, now), at)


async def open_stay_quote(s: StayInfo) -> Bill:
    """An open stay's bill now (members' views)."""
    now = clock.now()
    return await compute(await car_park_by_id(s.car_park_id), s, max(now, s.entered_at), now)
