"""Offsets: the member chooses parking coupons and points for an open stay; the points are held
until the exit (spent when the car park reports a paid exit, released when the car leaves unpaid,
the stay is abandoned or the member changes the amount: then a new hold replaces the old one)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta

from api import locks
from api.db import transaction
from api.locks import Rank
from api.models import ParkingSession, Voucher
from api.services import clock, idempotency, ledger
from api.services import text as hygiene
from api.services.errors import DomainError, ErrorCode
from api.services.mall import vouchers
from api.services.parking.billing import compute, usable_coupons
from api.services.parking.car_parks import car_park_by_id
from api.services.parking.common import HOLD_HOURS, HOLD_SOURCE, MAX_COUPONS, PARKING_COUPON
from api.services.parking.holds import lock_account, release_hold
from api.services.parking.stays import StayInfo


@dataclass(frozen=True)
class OffsetResult:
    stay_id: int
    points_held: int
    points_balance: int


def _codes(coupon_codes: list[str] | None) -> list[str]:
    codes: list[str] = []
    for text in coupon_codes or []:
        code = vouchers.code_from_scan(text)
        if code and code not in codes:
            codes.append(code)
    if len(codes) > MAX_COUPONS or any(len(c) > 24 for c in codes):
        raise DomainError(ErrorCode.INVALID_INPUT, f"at most {MAX_COUPONS} coupon codes", ["input", "couponCodes"])
    for index, code in enumerate(codes):  # no voucher has a control character; PostgreSQL refuses NUL in a query
        if hygiene.has_control(code):
            raise DomainError(ErrorCode.NOT_FOUND, "not one of your parking coupons", ["input", "couponCodes", str(index)])
    return codes


async def apply_offset(member_id: int, stay_id: int, points: int, coupon_codes: list[str],
                       idempotency_key: str) -> OffsetResult:
    """parkingOffsetApply: the member chooses parking coupons and points for an open stay. Points are
    capped per stay (OFFSET_CAP_EXCEEDED above the cap) and never more than the stay needs now (fewer
    are held then); they are HELD until the exit. Applying again replaces the choice and the hold
    (points 0 and no coupons cancel). Once per request; idempotent by key."""
    key = idempotency.check_key(idempotency_key, ["input", "idempotencyKey"])
    if not isinstance(points, int) or points < 0:
        raise DomainError(ErrorCode.INVALID_INPUT, "points must be 0 or more", ["input", "points"])
    codes = _codes(coupon_codes)
    digest = idempotency.request_hash("parkingOffsetApply", {"stayId": stay_id, "points": points, "coupons": codes})
    now = clock.now()
    async with transaction() as tx:
        record_id, stored = await idempotency.claim(tx, f"member:{member_id}", key, digest, ["input", "idempotencyKey"])
        if stored is not None:
            return OffsetResult(**stored)
        assert record_id is not None
        acct = await lock_account(tx, member_id, now)
        found = await locks.row(Rank.STAY, ParkingSession, stay_id)
        if found is None or found.member_id != member_id:
            raise DomainError(ErrorCode.NOT_FOUND, "no such parking stay", ["input", "sessionId"])
        s = StayInfo.of(found)
        if s.status != "OPEN":
            raise DomainError(ErrorCode.STAY_ENDED, f"this stay has ended ({s.status})", ["input", "sessionId"])
        cp = await car_park_by_id(s.car_park_id)
        if points > cp.offset_max_points:
            raise DomainError(ErrorCode.OFFSET_CAP_EXCEEDED,
                              f"at most {cp.offset_max_points} points per stay in this car park", ["input", "points"])
        coupons = await usable_coupons(member_id, codes, now)
        await _check_coupons(member_id, codes, {c.code for c in coupons})
        b = await compute(cp, s, max(now, s.entered_at), now, coupons=coupons, points=0)
        to_hold = min(points, b.points_needed)
        await release_hold(tx, acct, s.hold_id, now)
        hold_id = None
        if to_hold:
            hold_id = await ledger.hold(tx, acct, points=to_hold, source_type=HOLD_SOURCE,
                                        source_ref=f"{s.id}:{record_id}", expires_at=now + timedelta(hours=HOLD_HOURS))
            if hold_id is None:
                raise DomainError(ErrorCode.INSUFFICIENT_POINTS, f"{to_hold} points needed; {ledger.shortfall(acct)}",
                                  ["input", "points"])
        await ParkingSession.filter(id=s.id).update(offset_points=to_hold, hold_id=hold_id,
                                                     coupon_codes=json.dumps(codes))
        result = OffsetResult(s.id, to_hold, acct.spendable)
        await idempotency.remember(tx, record_id, asdict(result))
    return result


async def _check_coupons(member_id: int, codes: list[str], usable: set[str]) -> None:
    """Why a chosen code is not usable, as the error of its field."""
    for index, code in enumerate(codes):
        if code in usable:
            continue
        field = ["input", "couponCodes", str(index)]
        found = await Voucher.get_or_none(code=code, member_id=member_id)
        if found is None or found.kind != PARKING_COUPON:
            raise DomainError(ErrorCode.NOT_FOUND, f"{code} is not one of your parking coupons", field)
        if found.status == "USED":
            raise DomainError(ErrorCode.VOUCHER_ALREADY_USED, f"{code} has been used", field)
        if found.status == "VOID":
            raise DomainError(ErrorCode.VOUCHER_VOID, f"{code} was voided", field)
        raise DomainError(ErrorCode.VOUCHER_EXPIRED, f"{code} has expired", field)
