"""The member and the viewer: the entry to a caller's own data, across every domain."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Connection, Node, check_first, from_cursor, global_id
from api.schema.core import Gender, MemberCode, PointsEntry, PointsExpiry, Tier, TierProgress
from api.schema.draws import DrawPlay
from api.schema.earning.types import CheckInCalendar, CheckInDay, TaskProgress
from api.schema.errors import ApiError
from api.schema.mall.types import MallOrder, Voucher, VoucherStatus
from api.schema.parking import ParkingSession, Vehicle
from api.schema.reach.notify_types import MemberReachFields
from api.schema.staff import MerchantStaffViewer
from api.services import draws, ledger, mall, members, parking, tiers
from api.services.earning import behaviours, invites, tasks
from api.services.errors import DomainError
from api.services.mall import vouchers


@strawberry.type
class Member(Node, MemberReachFields):
    pk: strawberry.Private[int]
    rec: strawberry.Private[members.MemberRecord]
    phone_masked: str
    nickname: Optional[str]
    growth_value: int

    @classmethod
    def of(cls, rec: members.MemberRecord) -> "Member":
        return cls(id=global_id("Member", rec.id), pk=rec.id, rec=rec, phone_masked=rec.phone_masked,
                   nickname=rec.nickname, growth_value=rec.growth_value)

    @strawberry.field(description="The full phone number: only in the member's own profile, else null.")
    def phone(self, info: Info) -> Optional[str]:
        return self.rec.phone if info.context.is_self(self.pk) else None

    @strawberry.field
    def gender(self) -> Optional[Gender]:
        return Gender(self.rec.gender) if self.rec.gender else None

    @strawberry.field
    def birthday(self) -> Optional[date]:
        return self.rec.birthday

    @strawberry.field
    def created_at(self) -> datetime:
        return self.rec.created_at

    @strawberry.field
    async def tier(self, info: Info) -> Tier:
        return Tier.of(await info.context.loaders.tier.load(self.rec.tier_id))

    @strawberry.field(description="How far the next tier is; null at the top tier.")
    async def next_tier(self, info: Info) -> Optional[TierProgress]:
        current = await info.context.loaders.tier.load(self.rec.tier_id)
        nxt = tiers.next_tier(await tiers.all_tiers(), current)
        if nxt is None:
            return None
        return TierProgress(tier=Tier.of(nxt), growth_value_needed=max(0, nxt.growth_threshold - self.growth_value))

    @strawberry.field(description="Points spendable now.")
    async def points_balance(self, info: Info) -> int:
        return await info.context.loaders.balance.load(self.pk)

    @strawberry.field
    async def points_expiring_soon(self, days: int = 30) -> PointsExpiry:
        if not 1 <= days <= 3660:
            raise ApiError("days must be between 1 and 3660", "INVALID_INPUT")
        points, earliest = await ledger.expiring_soon(self.pk, days)
        return PointsExpiry(points=points, earliest_expires_at=earliest)

    @strawberry.field(description="The points history, newest first.")
    async def points_ledger(self, first: int, after: Optional[str] = None) -> Connection[PointsEntry]:
        check_first(first)
        rows = await ledger.entries_page(self.pk, first + 1, from_cursor(after))
        return Connection.of([PointsEntry.of(r) for r in rows], first, after)

    # --- earning (issue 3) ---
    @strawberry.field(description="Points waiting for a return window to close: not spendable yet.")
    async def points_pending(self, info: Info) -> int:
        return await info.context.loaders.pending.load(self.pk)

    @strawberry.field(description="The member's invite code; only in the member's own profile, else null.")
    async def invite_code(self, info: Info) -> Optional[str]:
        return await invites.code_of(self.pk) if info.context.is_self(self.pk) else None

    @strawberry.field(description="Days in a row with a check-in (today's or yesterday's streak), 0 after a miss.")
    async def check_in_streak(self) -> int:
        return await behaviours.current_streak(self.pk)

    @strawberry.field(description="Check-ins of a month (YYYY-MM, Asia/Shanghai days).")
    async def check_in_calendar(self, month: str) -> CheckInCalendar:
        try:
            days = await behaviours.calendar(self.pk, month)
        except DomainError as err:
            raise ApiError(err.message, "INVALID_INPUT") from None
        return CheckInCalendar(month=month, days=[CheckInDay(date=d.day, streak=d.streak, points=d.points) for d in days],
                               streak=await behaviours.current_streak(self.pk))

    @strawberry.field(description="Growth tasks open to the member, with progress in the current period.")
    async def tasks(self) -> list[TaskProgress]:
        return [TaskProgress.of(t) for t in await tasks.member_tasks(self.pk)]

    @strawberry.field(description="A fresh till code, valid for two minutes. Only for the member themself.")
    def member_code(self, info: Info) -> MemberCode:
        info.context.require_self(self.pk, "show their member code")
        code, expires_at = members.member_code(self.pk)
        return MemberCode(code=code, expires_at=expires_at)

    @strawberry.field(description="The member's vouchers, newest first. Only for the member themself and operators.")
    async def vouchers(self, info: Info, first: int, after: Optional[str] = None,
                       status: Optional[VoucherStatus] = None) -> Connection[Voucher]:
        info.context.require_member_access(self.pk, "vouchers")
        check_first(first)
        rows = await vouchers.member_page(self.pk, first + 1, from_cursor(after), status.value if status else None)
        return Connection.of([Voucher.of(r.info, r.merchant_code) for r in rows], first, after)

    @strawberry.field(description="Points set aside for unpaid orders (not spendable until paid or released).")
    async def points_held(self, info: Info) -> int:
        return await info.context.loaders.held.load(self.pk)

    @strawberry.field(description="Points-mall orders, newest first. Only for the member themself and operators.")
    async def orders(self, info: Info, first: int, after: Optional[str] = None) -> Connection[MallOrder]:
        info.context.require_member_access(self.pk, "orders")
        check_first(first)
        rows = await mall.orders_page(self.pk, first + 1, from_cursor(after))
        return Connection.of([MallOrder.of(o) for o in rows], first, after)

    @strawberry.field(description="Lucky-draw plays, newest first. Only for the member themself and operators.")
    async def draw_plays(self, info: Info, first: int, after: Optional[str] = None) -> Connection[DrawPlay]:
        info.context.require_member_access(self.pk, "plays")
        check_first(first)
        rows = await draws.plays_page(member_id=self.pk, game_id=None, limit=first + 1, before_id=from_cursor(after))
        return Connection.of([DrawPlay.of(p) for p in rows], first, after)

    @strawberry.field(description="Bound vehicles. Only for the member themself and operators.")
    async def vehicles(self, info: Info) -> list[Vehicle]:
        info.context.require_member_access(self.pk, "vehicles")
        return [Vehicle.of(v) for v in await info.context.loaders.vehicles.load(self.pk)]

    @strawberry.field(description="The current parking stay (entry time, fee so far, discounts, left to pay); null "
                      "when none is open. Only for the member themself and operators.")
    async def parking_session(self, info: Info) -> Optional[ParkingSession]:
        info.context.require_member_access(self.pk, "parking")
        found = await parking.member_open_stay(self.pk)
        return ParkingSession.of(found) if found else None

    @strawberry.field(description="Parking stays, newest first. Only for the member themself and operators.")
    async def parking_history(self, info: Info, first: int,
                              after: Optional[str] = None) -> Connection[ParkingSession]:
        info.context.require_member_access(self.pk, "parking")
        check_first(first)
        rows = await parking.member_history(self.pk, first + 1, from_cursor(after))
        return Connection.of([ParkingSession.of(x) for x in rows], first, after)


@strawberry.type
class Viewer:
    member: Optional[Member]
    staff: Optional[MerchantStaffViewer] = strawberry.field(
        default=None, description="null unless merchant staff are signed in.")
