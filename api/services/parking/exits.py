"""Exits: the car park's system reports a car leaving; the stay closes with its fee and discounts
fixed, the chosen coupons it needs written off and the points it needs spent."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from api import locks
from api.db import Tx, transaction
from api.locks import Rank
from api.models import ParkingSession, Voucher
from api.services import clock, ledger
from api.services.errors import DomainError, ErrorCode
from api.services.notifications import outbox
from api.services.parking.billing import check_time, compute, usable_coupons
from api.services.parking.car_parks import CarParkInfo, car_park_by_code
from api.services.parking.common import HOLD_SOURCE, PARKING_COUPON, is_unique_violation
from api.services.parking.entries import check_event
from api.services.parking.fees import Bill, Coupon
from api.services.parking.holds import live_hold, lock_account, release_hold
from api.services.parking.plates import normalize_plate
from api.services.parking.stays import StayInfo


@dataclass(frozen=True)
class ExitResult:
    stay_id: int


def _event_reused() -> DomainError:
    return DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, "this eventId was reported before for another exit",
                       ["input", "eventId"])


def _no_open_stay() -> DomainError:
    return DomainError(ErrorCode.NO_OPEN_STAY, "no open stay of this plate in this car park", ["input", "plate"])


async def record_exit(car_park_code: str, plate: str, exited_at: datetime, event_id: str, paid: bool) -> ExitResult:
    """parkingExitRecord: the stay closes with its fee and discounts fixed. Paid: the chosen coupons it
    needs are written off and the points it needs are spent (the rest of the hold released). Unpaid
    (the car left without paying the rest): no coupon is used, the hold is released; the minute benefits
    (tier, purchase) are recorded as given. The same event again returns the same stay."""
    plate = normalize_plate(plate)
    event_id = check_event(event_id)
    now = clock.now()
    exited_at = check_time(exited_at, "exitedAt", now)
    cp = await car_park_by_code(car_park_code)
    for _attempt in range(3):
        try:
            async with transaction() as tx:
                result = await _exit_once(tx, cp, plate, event_id, exited_at, paid, now)
        except IntegrityError as exc:  # the same exit event id closed another stay at this moment
            if not is_unique_violation(exc):
                raise
            raise _event_reused() from None
        if result is not None:
            return result
    raise _no_open_stay()


async def _exit_once(tx: Tx, cp: CarParkInfo, plate: str, event_id: str, exited_at: datetime, paid: bool,
                     now: datetime) -> ExitResult | None:
    """One attempt; None when the stay was closed or re-linked between the read and its lock."""
    repeat = await _exit_repeat(cp, plate, event_id, exited_at, paid)
    if repeat is not None:
        return repeat
    first = await ParkingSession.filter(car_park_id=cp.id, plate=plate, status="OPEN").first()
    if first is None:  # (a parallel report of this exit may have committed since the first read)
        repeat = await _exit_repeat(cp, plate, event_id, exited_at, paid)
        if repeat is not None:
            return repeat
        raise _no_open_stay()
    acct = await lock_account(tx, first.member_id, now) if first.member_id is not None else None
    locked = await locks.row(Rank.STAY, ParkingSession, first.id)
    assert locked is not None
    s = StayInfo.of(locked)
    if s.status != "OPEN" or s.member_id != first.member_id:
        return None  # closed or re-linked meanwhile: look again (a repeat of this event finds its stay)
    if exited_at < s.entered_at:
        raise DomainError(ErrorCode.INVALID_INPUT, "exitedAt is before the entry", ["input", "exitedAt"])
    await _close(tx, cp, s, acct, exited_at, event_id, paid, now)
    return ExitResult(s.id)


async def _exit_repeat(cp: CarParkInfo, plate: str, event_id: str, exited_at: datetime,
                       paid: bool) -> ExitResult | None:
    """The stay an exit event closed before, when this is a repeat of it; the same event id with another
    plate, time or payment is refused (a car park that reuses event ids must not close the wrong stay)."""
    found = await ParkingSession.filter(car_park_id=cp.id, exit_event=event_id).first()
    if found is None:
        return None
    if found.plate != plate or found.exited_at != exited_at or bool(found.paid) != paid:
        raise _event_reused()
    return ExitResult(found.id)


async def _close(tx: Tx, cp: CarParkInfo, s: StayInfo, acct: ledger.LockedAccount | None, exited_at: datetime,
                 event_id: str, paid: bool, now: datetime) -> None:
    entry_id = None
    if acct is None:
        b = await compute(cp, s, exited_at, now)
    elif not paid:
        b = await compute(cp, s, exited_at, now, coupons=[], points=0)
        await release_hold(tx, acct, s.hold_id, now)
    else:
        assert s.member_id is not None  # (an account was locked: the stay is a member's)
        coupons = await usable_coupons(s.member_id, s.coupon_codes, now, lock=True)
        b = await compute(cp, s, exited_at, now, coupons=coupons, points=s.offset_points if s.hold_id else 0)
        entry_id, b = await _spend_points(tx, cp, s, acct, b, exited_at, now, coupons)
        for code in b.coupons_used:
            used = await Voucher.filter(code=code, member_id=s.member_id, kind=PARKING_COUPON, status="ISSUED",
                                        valid_until__gt=now).update(status="USED", used_at=now)
            assert used == 1, f"parking coupon {code} was locked as usable yet could not be used"
    await ParkingSession.filter(id=s.id, status="OPEN").update(
        status="CLOSED", exit_event=event_id, exited_at=exited_at, fee_fen=b.fee_fen,
        tier_discount_fen=b.tier_discount_fen, tier_minutes_used=b.tier_minutes,
        purchase_discount_fen=b.purchase_discount_fen, coupon_discount_fen=b.coupon_discount_fen,
        points_discount_fen=b.points_discount_fen, points_spent=b.points, payable_fen=b.payable_fen, paid=paid,
        spend_entry_id=entry_id, coupon_codes=json.dumps(list(b.coupons_used)))
    if paid and s.member_id is not None:
        await outbox.on_parking(tx, s.member_id, s.id, b.points, len(b.coupons_used), s.plate)


async def _spend_points(tx: Tx, cp: CarParkInfo, s: StayInfo, acct: ledger.LockedAccount, b: Bill,
                        exited_at: datetime, now: datetime, coupons: list[Coupon]) -> tuple[int | None, Bill]:
    """Spends exactly the points the bill uses: the stay's hold when it is live and all of it is
    needed; otherwise the hold is released and just the points needed are held and captured at once
    (a hold that lapsed is renewed if the points are still spendable; if not, no points are used)."""
    found = await live_hold(s.hold_id, now)
    reason = f"停车抵扣 {cp.name} {s.plate}"

    async def capture(hold_id: int) -> int:
        return (await ledger.capture(tx, acct, hold_id, reason=reason, source_type=HOLD_SOURCE,
                                     source_ref=str(s.id), occurred_at=now)).id

    if b.points and found is not None and b.points == found.points:
        return await capture(found.id), b
    await release_hold(tx, acct, s.hold_id, now)
    if not b.points:
        return None, b
    hold_id = await ledger.hold(tx, acct, points=b.points, source_type=HOLD_SOURCE, source_ref=f"{s.id}:exit",
                                expires_at=now + timedelta(minutes=1))
    if hold_id is None:  # the lapsed hold's points were spent elsewhere: the car park is paid in cash
        return None, await compute(cp, s, exited_at, now, coupons=coupons, points=0)
    return await capture(hold_id), b
