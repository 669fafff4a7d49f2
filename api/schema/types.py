"""Output types. Computed fields delegate to DataLoaders and services in one line each."""
from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Generic, Optional, TypeVar

import strawberry
from strawberry.types import Info

from api.schema.errors import ApiError
from api.schema.ids import cursor_for, to_global_id
from api.services import ledger, members, tiers
from api.services.errors import forbidden

if TYPE_CHECKING:
    from api.schema.draws import DrawPlay
    from api.schema.mall import MallOrder, Voucher, VoucherStatus
    from api.schema.parking import ParkingSession, Vehicle
    from api.schema.staff import MerchantStaffViewer
if TYPE_CHECKING:  # earning (issue 3): lazy types, resolved by Strawberry
    from api.schema.earning import CheckInCalendar, EarnBreakdownItem, TaskProgress

MAX_PAGE = 100
T = TypeVar("T")


def check_first(first: int) -> None:
    if not 1 <= first <= MAX_PAGE:
        raise ApiError(f"first must be between 1 and {MAX_PAGE}", "INVALID_INPUT")


@strawberry.interface(description="An object with an opaque global ID, fetchable with node(id:).")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: Optional[str]


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @classmethod
    def of(cls, items: list, limit: int, key=lambda item: item.pk) -> "Connection":
        """`items` holds up to limit + 1 rows; the extra one only says that there is a next page."""
        page = items[:limit]
        edges = [Edge(node=item, cursor=cursor_for(key(item))) for item in page]
        return cls(edges=edges, page_info=PageInfo(has_next_page=len(items) > limit,
                                                   end_cursor=edges[-1].cursor if edges else None))


@strawberry.type(description="A membership level. Upgrades happen as soon as growth value reaches the threshold.")
class Tier(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    growth_threshold: int
    earn_multiplier_percent: int
    benefits: list[str] = strawberry.field(default_factory=list)  # issue 10
    active: bool = True  # issue 10: a deactivated tier is no longer reached

    @classmethod
    def of(cls, t: tiers.TierInfo) -> "Tier":
        return cls(id=strawberry.ID(to_global_id("Tier", t.id)), pk=t.id, code=t.code, name=t.name,
                   growth_threshold=t.growth_threshold, earn_multiplier_percent=t.earn_multiplier_percent,
                   benefits=list(t.benefits), active=t.active)


@strawberry.type
class TierProgress:
    tier: Tier
    growth_value_needed: int


@strawberry.type
class PointsExpiry:
    points: int
    earliest_expires_at: Optional[datetime]


@strawberry.enum
class PointsEntryKind(Enum):
    EARN = "EARN"
    SPEND = "SPEND"
    EXPIRE = "EXPIRE"
    REVERSE = "REVERSE"
    ADJUST = "ADJUST"


@strawberry.type(description="One line of the points history (积分明细). points < 0 for SPEND, EXPIRE, REVERSE.")
class PointsEntry(Node):
    pk: strawberry.Private[int]
    kind: PointsEntryKind
    points: int
    balance_after: int
    reason: str
    occurred_at: datetime
    expires_at: Optional[datetime]

    @strawberry.field(description="Why an earn has its points: the rules applied, each one's points, the caps"
                      " that cut them. Null for entries that are not earns.")
    async def breakdown(self, info: Info) -> Optional[list[Annotated["EarnBreakdownItem", strawberry.lazy(
            "api.schema.earning")]]]:
        from api.schema.earning import EarnBreakdownItem

        items = await info.context.loaders.breakdown.load(self.pk)
        return None if items is None else [EarnBreakdownItem.of(i) for i in items]

    @classmethod
    def of(cls, e: ledger.Entry) -> "PointsEntry":
        return cls(id=strawberry.ID(to_global_id("PointsEntry", e.id)), pk=e.id, kind=PointsEntryKind(e.kind),
                   points=e.points, balance_after=e.balance_after, reason=e.reason, occurred_at=e.occurred_at,
                   expires_at=e.expires_at)


@strawberry.type(description="A short-lived, signed code the member shows at the till.")
class MemberCode:
    code: str
    expires_at: datetime


@strawberry.enum
class Gender(Enum):
    MALE = "MALE"
    FEMALE = "FEMALE"
    UNDISCLOSED = "UNDISCLOSED"


@strawberry.type
class Member(Node):
    pk: strawberry.Private[int]
    rec: strawberry.Private[members.MemberRecord]
    phone_masked: str
    nickname: Optional[str]
    growth_value: int

    @classmethod
    def of(cls, rec: members.MemberRecord) -> "Member":
        return cls(id=strawberry.ID(to_global_id("Member", rec.id)), pk=rec.id, rec=rec,
                   phone_masked=rec.phone_masked, nickname=rec.nickname, growth_value=rec.growth_value)

    @strawberry.field(description="The full phone number: only in the member's own profile, else null.")
    def phone(self, info: Info) -> Optional[str]:
        return self.rec.phone if info.context.caller.member_id == self.pk else None

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
    async def tier(self) -> Tier:
        return Tier.of(await tiers.tier_by_id(self.rec.tier_id))

    @strawberry.field(description="How far the next tier is; null at the top tier.")
    async def next_tier(self) -> Optional[TierProgress]:
        nxt = tiers.next_tier(await tiers.all_tiers(), await tiers.tier_by_id(self.rec.tier_id))
        return nxt and TierProgress(tier=Tier.of(nxt), growth_value_needed=max(0, nxt.growth_threshold - self.growth_value))

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
        from api.schema.ids import from_cursor

        check_first(first)
        rows = await ledger.entries_page(self.pk, first + 1, from_cursor(after))
        return Connection.of([PointsEntry.of(r) for r in rows], first)

    # --- earning (issue 3) ---
    @strawberry.field(description="Points waiting for a return window to close: not spendable yet.")
    async def points_pending(self, info: Info) -> int:
        return await info.context.loaders.pending.load(self.pk)

    @strawberry.field(description="The member's invite code; only in the member's own profile, else null.")
    async def invite_code(self, info: Info) -> Optional[str]:
        from api.services.earning import invites

        return await invites.code_of(self.pk) if info.context.caller.member_id == self.pk else None

    @strawberry.field(description="Days in a row with a check-in (today's or yesterday's streak), 0 after a miss.")
    async def check_in_streak(self) -> int:
        from api.services.earning import behaviours

        return await behaviours.current_streak(self.pk)

    @strawberry.field(description="Check-ins of a month (YYYY-MM, Asia/Shanghai days).")
    async def check_in_calendar(self, month: str) -> Annotated["CheckInCalendar", strawberry.lazy(
            "api.schema.earning")]:
        from api.schema.earning import CheckInCalendar, CheckInDay
        from api.services.earning import behaviours
        from api.services.errors import DomainError

        try:
            days = await behaviours.calendar(self.pk, month)
        except DomainError as err:
            raise ApiError(err.message, "INVALID_INPUT") from None
        return CheckInCalendar(month=month, days=[CheckInDay(date=d.day, streak=d.streak, points=d.points) for d in days],
                               streak=await behaviours.current_streak(self.pk))

    @strawberry.field(description="Growth tasks open to the member, with progress in the current period.")
    async def tasks(self) -> list[Annotated["TaskProgress", strawberry.lazy("api.schema.earning")]]:
        from api.schema.earning import TaskProgress as Progress
        from api.services.earning import tasks

        return [Progress.of(t) for t in await tasks.member_tasks(self.pk)]

    @strawberry.field(description="A fresh till code, valid for two minutes. Only for the member themself.")
    def member_code(self, info: Info) -> MemberCode:
        if info.context.caller.member_id != self.pk:
            raise forbidden("only the member can show their member code")
        code, expires_at = members.member_code(self.pk)
        return MemberCode(code=code, expires_at=expires_at)

    @strawberry.field(description="The member's vouchers, newest first. Only for the member themself and operators.")
    async def vouchers(
        self, info: Info, first: int, after: Optional[str] = None,
        status: Optional[Annotated["VoucherStatus", strawberry.lazy("api.schema.mall")]] = None,
    ) -> Connection[Annotated["Voucher", strawberry.lazy("api.schema.mall")]]:
        from api.schema.ids import from_cursor
        from api.schema.mall import Voucher
        from api.services.mall import vouchers

        if not info.context.may_read_member(self.pk):
            raise forbidden("only the member can see their vouchers")
        check_first(first)
        rows = await vouchers.member_page(self.pk, first + 1, from_cursor(after), status.value if status else None)
        return Connection.of([Voucher.of(r.info, r.merchant_code) for r in rows], first)

    @strawberry.field(description="Points set aside for unpaid orders (not spendable until paid or released).")
    async def points_held(self, info: Info) -> int:
        from api.resolvers import mall as mall_resolvers

        return await mall_resolvers.points_held(info, self.pk)

    @strawberry.field(description="Points-mall orders, newest first. Only for the member themself and operators.")
    async def orders(
        self, info: Info, first: int, after: Optional[str] = None,
    ) -> Connection[Annotated["MallOrder", strawberry.lazy("api.schema.mall")]]:
        from api.resolvers import mall as mall_resolvers

        if not info.context.may_read_member(self.pk):
            raise forbidden("only the member can see their orders")
        return await mall_resolvers.member_orders(info, self.pk, first, after)

    @strawberry.field(description="Lucky-draw plays, newest first. Only for the member themself and operators.")
    async def draw_plays(
        self, info: Info, first: int, after: Optional[str] = None,
    ) -> Connection[Annotated["DrawPlay", strawberry.lazy("api.schema.draws")]]:
        from api.resolvers import draws as draw_resolvers

        if not info.context.may_read_member(self.pk):
            raise forbidden("only the member can see their plays")
        return await draw_resolvers.member_plays(self.pk, first, after)

    @strawberry.field(description="Bound vehicles. Only for the member themself and operators.")
    async def vehicles(self, info: Info) -> list[Annotated["Vehicle", strawberry.lazy("api.schema.parking")]]:
        from api.resolvers import parking as parking_resolvers

        return await parking_resolvers.member_vehicles(info, self.pk)

    @strawberry.field(description="The current parking stay (entry time, fee so far, discounts, left to pay); null "
                      "when none is open. Only for the member themself and operators.")
    async def parking_session(
        self, info: Info,
    ) -> Optional[Annotated["ParkingSession", strawberry.lazy("api.schema.parking")]]:
        from api.resolvers import parking as parking_resolvers

        return await parking_resolvers.member_parking_session(info, self.pk)

    @strawberry.field(description="Parking stays, newest first. Only for the member themself and operators.")
    async def parking_history(
        self, info: Info, first: int, after: Optional[str] = None,
    ) -> Connection[Annotated["ParkingSession", strawberry.lazy("api.schema.parking")]]:
        from api.resolvers import parking as parking_resolvers

        return await parking_resolvers.member_parking_history(info, self.pk, first, after)


@strawberry.type
class Viewer:
    member: Optional[Member]
    staff: Optional[Annotated["MerchantStaffViewer", strawberry.lazy("api.schema.staff")]] = strawberry.field(
        default=None, description="null unless merchant staff are signed in.")


@strawberry.type
class Merchant(Node):
    pk: strawberry.Private[int]
    code: str
    name: str
    category: Optional[str]
    active: bool = True  # issue 10: an inactive merchant records no new receipts

    @classmethod
    def of(cls, m) -> "Merchant":
        return cls(id=strawberry.ID(to_global_id("Merchant", m.id)), pk=m.id, code=m.code, name=m.name,
                   category=m.category, active=getattr(m, "active", True))


@strawberry.type
class Purchase(Node):
    pk: strawberry.Private[int]
    receipt_no: str
    amount_fen: int


__all__ = [
    "Connection", "Edge", "Gender", "Member", "MemberCode", "Merchant", "Node", "PageInfo", "PointsEntry",
    "PointsEntryKind", "PointsExpiry", "Purchase", "Tier", "TierProgress", "Viewer", "check_first",
]
