"""The operators' figures: occupancy now and today, and what was taken off the fees over a period."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api import db
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.parking import sql
from api.services.parking.car_parks import CarParkInfo, car_park_by_code, car_parks


@dataclass(frozen=True)
class Occupancy:
    car_park: CarParkInfo
    open_stays: int
    entries_today: int
    exits_today: int


async def occupancy() -> list[Occupancy]:
    """Per car park: stays open now, and entries and exits on today's Asia/Shanghai day."""
    start, end = clock.day_bounds(clock.business_day(clock.now()))
    found = {int(r["car_park_id"]): r for r in await db.fetch(sql.OCCUPANCY, start, end)}
    out = []
    for cp in await car_parks():
        r = found.get(cp.id) or {}
        out.append(Occupancy(cp, *(int(r.get(k) or 0) for k in ("open_stays", "entries", "exits"))))
    return out


@dataclass(frozen=True)
class OffsetTotals:
    car_park: CarParkInfo
    stays: int
    fee_fen: int
    tier_discount_fen: int
    purchase_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    points_spent: int
    payable_fen: int
    unpaid_stays: int


async def offset_totals(start: datetime, end: datetime, car_park_code: str | None) -> list[OffsetTotals]:
    """Per car park, over the stays that exited in [start, end): fees, each kind of discount in fen,
    points spent and what was left to pay."""
    try:
        start, end = clock.to_utc(start), clock.to_utc(end)
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "times must carry a zone", ["from"]) from None
    if end <= start:
        raise DomainError(ErrorCode.INVALID_INPUT, "to must be after from", ["to"])
    parks = [await car_park_by_code(car_park_code, ["carParkCode"])] if car_park_code else await car_parks()
    found = {int(r["car_park_id"]): r for r in await db.fetch(sql.OFFSET_TOTALS, start, end)}
    out = []
    for cp in parks:
        r = found.get(cp.id) or {}
        out.append(OffsetTotals(cp, *(int(r.get(k) or 0) for k in ("stays", "fee", "tier", "purchase", "coupon",
                                                                    "points_fen", "points", "payable", "unpaid"))))
    return out
