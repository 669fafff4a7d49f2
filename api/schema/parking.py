"""Parking types: vehicles, car parks, stays and their bills; inputs and payloads (docs/parking.md)."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Money, Node, global_id, money
from api.schema.errors import UserError
from api.services import clock, parking
from api.services.parking.fees import Bill


@strawberry.type(description="A plate bound to a member (at most 3 at a time), with the consent given.")
class Vehicle(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    plate: str
    active: bool
    consent_version: str = strawberry.field(description="The version of the plate-records consent text agreed to.")
    consented_at: datetime
    bound_at: datetime
    unbound_at: Optional[datetime]

    @classmethod
    def of(cls, v: parking.VehicleInfo) -> "Vehicle":
        return cls(id=global_id("Vehicle", v.id), pk=v.id, plate=v.plate, active=v.active,
                   consent_version=v.consent_version, consented_at=v.consented_at, bound_at=v.bound_at,
                   unbound_at=v.unbound_at)


@strawberry.type
class TierFreeMinutes:
    tier_code: str
    minutes: int


@strawberry.type(description="A car park and its fee rules (fen).")
class CarPark(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    code: str
    name: str
    free_minutes: int = strawberry.field(description="Minutes at the start of every stay that cost nothing.")
    hourly_fee: Money = strawberry.field(description="Per hour or part of one after the free minutes.")
    daily_cap: Optional[Money] = strawberry.field(description="At most this per 24 hours of charged time; null: no cap.")
    tier_free_minutes: list[TierFreeMinutes] = strawberry.field(
        description="Free minutes per member per Asia/Shanghai day, by tier.")
    purchase_min: Optional[Money] = strawberry.field(
        description="Spending at least this at the mall on the stay's day gives purchaseFreeMinutes; null: no benefit.")
    purchase_free_minutes: int
    offset_points_per_yuan: int = strawberry.field(description="Points worth ¥1 of parking fee.")
    offset_max_points: int = strawberry.field(description="At most this many points per stay.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: parking.CarParkInfo) -> "CarPark":
        return cls(
            id=global_id("CarPark", c.id), pk=c.id, code=c.code, name=c.name,
            free_minutes=c.free_minutes, hourly_fee=Money(amount_fen=c.hourly_fen), daily_cap=money(c.daily_cap_fen),
            tier_free_minutes=[TierFreeMinutes(tier_code=k, minutes=v) for k, v in sorted(c.tier_free_minutes.items())],
            purchase_min=money(c.purchase_min_fen), purchase_free_minutes=c.purchase_free_minutes,
            offset_points_per_yuan=c.offset_points_per_yuan, offset_max_points=c.offset_max_points,
            created_at=c.created_at, updated_at=c.updated_at,
        )


@strawberry.type(description="A stay's fee and discounts, in the order they apply: tier free minutes, the same-day "
                 "purchase benefit, parking coupons, points. So far for an open stay; fixed at the exit.")
class ParkingBill:
    minutes: int = strawberry.field(description="Whole minutes of the stay (seconds dropped).")
    fee: Money
    tier_free_minutes_used: int
    tier_discount: Money
    purchase_free_minutes_used: int
    purchase_discount: Money
    coupon_discount: Money
    coupons_used: list[str] = strawberry.field(description="Codes of the parking coupons this bill uses.")
    points_discount: Money
    points_applied: int = strawberry.field(description="Points this bill uses (held until the exit, then spent).")
    points_needed: int = strawberry.field(description="Points that would cover what is left after coupons (within the cap).")
    discount: Money = strawberry.field(description="All discounts together.")
    payable: Money = strawberry.field(description="What is left to pay in cash.")

    @classmethod
    def of(cls, b: Bill) -> "ParkingBill":
        return cls(
            minutes=b.minutes, fee=Money(amount_fen=b.fee_fen), tier_free_minutes_used=b.tier_minutes,
            tier_discount=Money(amount_fen=b.tier_discount_fen), purchase_free_minutes_used=b.purchase_minutes,
            purchase_discount=Money(amount_fen=b.purchase_discount_fen),
            coupon_discount=Money(amount_fen=b.coupon_discount_fen), coupons_used=list(b.coupons_used),
            points_discount=Money(amount_fen=b.points_discount_fen), points_applied=b.points,
            points_needed=b.points_needed, discount=Money(amount_fen=b.discount_fen),
            payable=Money(amount_fen=b.payable_fen),
        )


@strawberry.enum(description="OPEN until the exit is reported (CLOSED), or ABANDONED when no exit came in time.")
class ParkingSessionStatus(Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    ABANDONED = "ABANDONED"


@strawberry.type(description="A stay in a car park, from the entry the car park reports to its exit.")
class ParkingSession(Node):
    id: strawberry.ID
    pk: strawberry.Private[int]
    info: strawberry.Private[parking.StayInfo]
    plate: str
    status: ParkingSessionStatus
    entered_at: datetime
    exited_at: Optional[datetime]
    member_linked: bool = strawberry.field(description="The plate was bound to a member at entry (or since).")
    offset_points: int = strawberry.field(description="Points the member chose (held until the exit).")
    coupon_codes: list[str] = strawberry.field(description="Parking coupons chosen (used ones, once closed).")
    paid: Optional[bool] = strawberry.field(description="At the exit: the rest was paid (false: the car left unpaid).")

    @classmethod
    def of(cls, s: parking.StayInfo) -> "ParkingSession":
        return cls(id=global_id("ParkingSession", s.id), pk=s.id, info=s, plate=s.plate,
                   status=ParkingSessionStatus(s.status), entered_at=s.entered_at, exited_at=s.exited_at,
                   member_linked=s.member_id is not None, offset_points=s.offset_points, coupon_codes=s.coupon_codes,
                   paid=s.paid)

    @strawberry.field
    async def car_park(self, info: Info) -> CarPark:
        return CarPark.of(await info.context.loaders.car_park.load(self.info.car_park_id))

    @strawberry.field(description="Open: the bill so far (now); closed: the bill fixed at the exit; abandoned: null.")
    async def bill(self) -> Optional[ParkingBill]:
        if self.info.status == "CLOSED":
            return ParkingBill.of(parking.final_bill(self.info))
        if self.info.status == "OPEN":
            return ParkingBill.of(await parking.open_stay_quote(self.info))
        return None

    @strawberry.field(description="Minutes so far (open) or of the whole stay.")
    def minutes(self) -> int:
        end = self.info.exited_at or max(clock.now(), self.info.entered_at)
        return max(0, int((end - self.info.entered_at).total_seconds()) // 60)


@strawberry.type
class CarParkOccupancy:
    car_park: CarPark
    open_stays: int
    entries_today: int = strawberry.field(description="Entries on today's Asia/Shanghai day.")
    exits_today: int


@strawberry.type(description="Stays that exited in the period, with their fees and each kind of discount.")
class ParkingOffsetTotals:
    car_park: CarPark
    stays: int
    unpaid_stays: int
    fee: Money
    tier_discount: Money
    purchase_discount: Money
    coupon_discount: Money
    points_discount: Money
    points_spent: int
    payable: Money

    @classmethod
    def of(cls, t: parking.OffsetTotals) -> "ParkingOffsetTotals":
        m = lambda fen: Money(amount_fen=fen)  # noqa: E731
        return cls(car_park=CarPark.of(t.car_park), stays=t.stays, unpaid_stays=t.unpaid_stays, fee=m(t.fee_fen),
                   tier_discount=m(t.tier_discount_fen), purchase_discount=m(t.purchase_discount_fen),
                   coupon_discount=m(t.coupon_discount_fen), points_discount=m(t.points_discount_fen),
                   points_spent=t.points_spent, payable=m(t.payable_fen))


# --- inputs and payloads -------------------------------------------------------------------------


@strawberry.input
class VehicleBindInput:
    plate: str
    consent: bool = strawberry.field(description="The member agrees to the processing of plate records.")


@strawberry.type
class VehicleBindPayload:
    vehicle: Optional[Vehicle] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class VehicleUnbindInput:
    vehicle_id: strawberry.ID


@strawberry.type
class VehicleUnbindPayload:
    vehicle: Optional[Vehicle] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ParkingEntryRecordInput:
    car_park_code: str
    plate: str
    entered_at: datetime
    event_id: str = strawberry.field(description="The car park's id of the entry event: a repeat returns the same stay.")


@strawberry.type
class ParkingEntryRecordPayload:
    session: Optional[ParkingSession] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ParkingExitRecordInput:
    car_park_code: str
    plate: str
    exited_at: datetime
    event_id: str = strawberry.field(description="The car park's id of the exit event: a repeat returns the same stay.")
    paid: bool = strawberry.field(default=True, description="false: the car left without paying the rest.")


@strawberry.type
class ParkingExitRecordPayload:
    session: Optional[ParkingSession] = None
    bill: Optional[ParkingBill] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ParkingSessionQuoteInput:
    car_park_code: str
    plate: str
    at: Optional[datetime] = strawberry.field(default=None, description="Default: now.")


@strawberry.type
class ParkingSessionQuotePayload:
    session: Optional[ParkingSession] = None
    bill: Optional[ParkingBill] = None
    at: Optional[datetime] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ParkingOffsetApplyInput:
    session_id: strawberry.ID
    points: int = strawberry.field(description="Points to use (held until the exit); 0 uses none. At most the car "
                                               "park's cap; fewer are held when fewer cover the fee so far.")
    coupon_codes: list[str] = strawberry.field(default_factory=list, description="Parking coupons, in order of use.")
    idempotency_key: str


@strawberry.type
class ParkingOffsetApplyPayload:
    session: Optional[ParkingSession] = None
    points_held: Optional[int] = None
    points_balance: Optional[int] = strawberry.field(default=None, description="Spendable now (held points excluded).")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class TierFreeMinutesInput:
    tier_code: str
    minutes: int


@strawberry.input
class CarParkCreateInput:
    code: str
    name: str
    free_minutes: int = 0
    hourly_fen: int
    daily_cap_fen: Optional[int] = None
    tier_free_minutes: Optional[list[TierFreeMinutesInput]] = None
    purchase_min_fen: Optional[int] = None
    purchase_free_minutes: int = 0
    offset_points_per_yuan: int = 100
    offset_max_points: int = 0


@strawberry.input(description="Fields left null stay as they are; `clear` names optional fields to set to null.")
class CarParkUpdateInput:
    car_park_id: strawberry.ID
    name: Optional[str] = None
    free_minutes: Optional[int] = None
    hourly_fen: Optional[int] = None
    daily_cap_fen: Optional[int] = None
    tier_free_minutes: Optional[list[TierFreeMinutesInput]] = strawberry.field(
        default=None, description="Replaces the whole list.")
    purchase_min_fen: Optional[int] = None
    purchase_free_minutes: Optional[int] = None
    offset_points_per_yuan: Optional[int] = None
    offset_max_points: Optional[int] = None
    clear: Optional[list[str]] = strawberry.field(default=None, description="Any of: dailyCapFen, purchaseMinFen.")


@strawberry.type
class CarParkPayload:
    car_park: Optional[CarPark] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Binds (bound: true) or unbinds an integration key with the parking scope to a car park.")
class CarParkKeyBindInput:
    car_park_code: str
    key_id: str
    bound: bool = True


@strawberry.type
class CarParkKeyBindPayload:
    key_ids: Optional[list[str]] = strawberry.field(default=None, description="The keys that may report for it.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ParkingAbandonRunInput:
    older_than_hours: int = 72
    as_of: Optional[datetime] = None


@strawberry.type
class ParkingAbandonRunPayload:
    stays_abandoned: Optional[int] = None
    points_released: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
