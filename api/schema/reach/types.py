"""Segments, their filters and campaigns (operators)."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import strawberry
from strawberry.types import Info

from api.schema.base import Connection, Money, Node, check_first, from_cursor, global_id
from api.schema.errors import ApiError
from api.schema.mall.types import Product
from api.schema.member import Member
from api.schema.reach.lifecycle import LifecycleStage
from api.schema.reach.notify_types import NotificationChannel
from api.services.segments import campaigns, segments
from api.services.segments.filters import SegmentFilter as Filter


@strawberry.type(description="A segment's saved conditions (all ANDed; empty lists and nulls: no condition).")
class SegmentFilter:
    tier_codes: list[str]
    tags_all: list[str]
    tags_any: list[str]
    tags_none: list[str]
    last_purchase_within_days: Optional[int]
    no_purchase_for_days: Optional[int]
    points_balance_min: Optional[int]
    points_balance_max: Optional[int]
    birthday_months: list[int]
    merchant_categories: list[str]
    merchant_category_within_days: int
    lifecycle_stages: list[LifecycleStage]
    r_min: Optional[int]
    r_max: Optional[int]
    f_min: Optional[int]
    f_max: Optional[int]
    m_min: Optional[int]
    m_max: Optional[int]

    @classmethod
    def of(cls, f: Filter) -> "SegmentFilter":
        return cls(tier_codes=list(f.tier_codes), tags_all=list(f.tags_all), tags_any=list(f.tags_any),
                   tags_none=list(f.tags_none), last_purchase_within_days=f.last_purchase_within_days,
                   no_purchase_for_days=f.no_purchase_for_days, points_balance_min=f.points_balance_min,
                   points_balance_max=f.points_balance_max, birthday_months=list(f.birthday_months),
                   merchant_categories=list(f.merchant_categories),
                   merchant_category_within_days=f.merchant_category_within_days,
                   lifecycle_stages=[LifecycleStage(s) for s in f.lifecycle_stages], r_min=f.r_min, r_max=f.r_max,
                   f_min=f.f_min, f_max=f.f_max, m_min=f.m_min, m_max=f.m_max)


@strawberry.type
class Segment(Node):
    pk: strawberry.Private[int]
    info: strawberry.Private[segments.SegmentInfo]
    name: str
    created_at: datetime

    @classmethod
    def of(cls, s: segments.SegmentInfo) -> "Segment":
        return cls(id=global_id("Segment", s.id), pk=s.id, info=s, name=s.name, created_at=s.created_at)

    @strawberry.field
    def filter(self) -> SegmentFilter:
        return SegmentFilter.of(self.info.filter)

    @strawberry.field(description="How many members match now (one counting query).")
    async def member_count(self) -> int:
        return await segments.count(self.info.filter)

    @strawberry.field(description="The members who match now, newest first.")
    async def members(self, first: int, after: Optional[str] = None) -> Connection[Member]:
        check_first(first)
        rows = await segments.members_page(self.info.filter, first + 1, from_cursor(after))
        return Connection.of([Member.of(r) for r in rows], first, after)


@strawberry.enum
class CampaignStatus(Enum):
    SCHEDULED = "SCHEDULED"
    SENDING = "SENDING"
    SENT = "SENT"
    CANCELLED = "CANCELLED"


@strawberry.type(description="One group of a campaign's audience in the days after sending began.")
class CampaignGroupEffect:
    members: int
    purchasers: int
    purchases: int
    sales: Money
    redemptions: int
    purchasers_permille: int = strawberry.field(description="purchasers × 1000 ÷ members (0 for an empty group).")


@strawberry.type(description="Target (received the message) against holdout (received nothing).")
class CampaignEffect:
    days: int
    target: CampaignGroupEffect
    holdout: CampaignGroupEffect
    lift_permille: int = strawberry.field(
        description="target purchasersPermille − holdout purchasersPermille: the campaign's effect on buying.")


def _group(g: campaigns.GroupEffect) -> CampaignGroupEffect:
    rate = g.purchasers * 1000 // g.members if g.members else 0
    return CampaignGroupEffect(members=g.members, purchasers=g.purchasers, purchases=g.purchases,
                               sales=Money(amount_fen=g.sales_fen), redemptions=g.redemptions, purchasers_permille=rate)


@strawberry.type
class Campaign(Node):
    pk: strawberry.Private[int]
    info: strawberry.Private[campaigns.CampaignInfo]
    counts: strawberry.Private[campaigns.CampaignCounts]
    name: str
    status: CampaignStatus
    channel: NotificationChannel
    title: str
    body: str
    send_at: datetime
    holdout_percent: int
    created_at: datetime
    started_at: Optional[datetime]
    grant_points: int = strawberry.field(description="Points each target member receives with the message (0: none).")

    @classmethod
    def of(cls, c: campaigns.CampaignInfo, counts: campaigns.CampaignCounts) -> "Campaign":
        return cls(id=global_id("Campaign", c.id), pk=c.id, info=c, counts=counts, name=c.name,
                   status=CampaignStatus(c.status), channel=NotificationChannel(c.channel), title=c.title, body=c.body,
                   send_at=c.send_at, holdout_percent=c.holdout_percent, created_at=c.created_at,
                   started_at=c.started_at, grant_points=c.grant_points)

    @strawberry.field(description="The product of the voucher each target member receives with the message.")
    async def coupon_product(self, info: Info) -> Optional[Product]:
        if self.info.coupon_product_id is None:
            return None
        return Product.of(await info.context.loaders.product.load(self.info.coupon_product_id))

    @strawberry.field(description="Notifications written for the target members.")
    def sent(self) -> int:
        return self.counts.sent

    @strawberry.field(description="Delivered: in the inbox, or accepted by the SMS / WeChat vendor.")
    def delivered(self) -> int:
        return self.counts.delivered

    @strawberry.field(description="Refused by the vendor or out of attempts.")
    def failed(self) -> int:
        return self.counts.failed

    @strawberry.field(description="Read by the member in their inbox.")
    def opened(self) -> int:
        return self.counts.opened

    @strawberry.field
    async def segment(self) -> Segment:
        return Segment.of(await segments.get(self.info.segment_id))  # segments are never deleted

    @strawberry.field(description="Purchases and redemptions of the target and of the holdout in the `days` days "
                      "from the start of sending (1 to 90); null before sending began.")
    async def effect(self, info: Info, days: int = 7) -> Optional[CampaignEffect]:
        if not 1 <= days <= 90:
            raise ApiError("days must be 1 to 90", "INVALID_INPUT")
        found = await campaigns.effect(self.info, days)
        if found is None:
            return None
        target, holdout = _group(found[0]), _group(found[1])
        return CampaignEffect(days=days, target=target, holdout=holdout,
                              lift_permille=target.purchasers_permille - holdout.purchasers_permille)
