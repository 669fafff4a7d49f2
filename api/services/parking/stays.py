"""A stay as the rest of parking sees it (`StayInfo`), the bill fixed at its exit, and its look-ups."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime

from api.models import ParkingSession
from api.services.parking.fees import Bill, minutes_between


@dataclass(frozen=True)
class StayInfo:
    id: int
    car_park_id: int
    plate: str
    member_id: int | None
    status: str
    entry_event: str
    exit_event: str | None
    entered_at: datetime
    exited_at: datetime | None
    offset_points: int
    hold_id: int | None
    coupon_codes: list[str]
    fee_fen: int | None
    tier_discount_fen: int | None
    tier_minutes_used: int | None
    purchase_discount_fen: int | None
    coupon_discount_fen: int | None
    points_discount_fen: int | None
    points_spent: int | None
    payable_fen: int | None
    paid: bool | None

    @classmethod
    def of(cls, m: ParkingSession) -> StayInfo:
        values = {f.name: getattr(m, f.name) for f in fields(cls)}
        values["coupon_codes"] = json.loads(m.coupon_codes or "[]")
        return cls(**values)


def final_bill(s: StayInfo) -> Bill:
    """The bill fixed at a stay's exit (CLOSED stays only)."""
    assert s.status == "CLOSED" and s.exited_at is not None
    return Bill(
        minutes=minutes_between(s.entered_at.timestamp(), s.exited_at.timestamp()), fee_fen=s.fee_fen or 0,
        tier_minutes=s.tier_minutes_used or 0, tier_discount_fen=s.tier_discount_fen or 0, purchase_minutes=0,
        purchase_discount_fen=s.purchase_discount_fen or 0, coupon_discount_fen=s.coupon_discount_fen or 0,
        coupons_used=tuple(s.coupon_codes), points_discount_fen=s.points_discount_fen or 0,
        points=s.points_spent or 0, payable_fen=s.payable_fen or 0,
    )


async def stay(stay_id: int) -> StayInfo | None:
    found = await ParkingSession.get_or_none(id=stay_id)
    return StayInfo.of(found) if found else None


async def member_open_stay(member_id: int) -> StayInfo | None:
    found = await (ParkingSession.filter(member_id=member_id, status="OPEN")
                   .order_by("-entered_at", "-id").first())
    return StayInfo.of(found) if found else None


async def member_history(member_id: int, limit: int, before_id: int | None) -> list[StayInfo]:
    """A member's stays, newest first (open, closed and abandoned)."""
    query = ParkingSession.filter(member_id=member_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return [StayInfo.of(s) for s in await query.order_by("-id").limit(limit)]


async def stays_page(car_park_id: int | None, status: str | None, limit: int, before_id: int | None) -> list[StayInfo]:
    """Stays for operators, newest first, optionally of one car park and status."""
    query = ParkingSession.all()
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    if car_park_id is not None:
        query = query.filter(car_park_id=car_park_id)
    if status is not None:
        query = query.filter(status=status)
    return [StayInfo.of(s) for s in await query.order_by("-id").limit(limit)]
