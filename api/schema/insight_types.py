"""Insight (issue 13): the output types of KPIs, RFM scores and lifecycle stages, and the dashboard's reads."""
from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Optional

import strawberry

from api.schema.base import Money
from api.schema.errors import UserError
from api.services import insight


@strawberry.enum(description="A member's lifecycle stage (docs/insight.md gives the thresholds).")
class LifecycleStage(Enum):
    NEW = "NEW"
    GROWING = "GROWING"
    STABLE = "STABLE"
    DECLINING = "DECLINING"
    LOST = "LOST"


@strawberry.type(description="KPI figures of a range or of one day (docs/insight.md defines each).")
class KpiFigures:
    members_total: int = strawberry.field(description="Members registered by the end of the range.")
    members_new: int
    members_active: int = strawberry.field(description="Distinct members with a purchase, an earn or a spend.")
    purchases: int
    member_sales: Money = strawberry.field(description="Σ amount of the members' receipts (refunds not deducted).")
    member_sales_yuan: int = strawberry.field(description="memberSales in whole yuan (fits an Int on any mall).")
    average_ticket: Money
    repurchase_rate_permille: int = strawberry.field(description="‰ of purchasers with two or more purchases.")
    points_issued: int
    points_redeemed: int
    points_expired: int
    points_outstanding: int = strawberry.field(description="Σ balances at the end of the range.")
    liability: Money = strawberry.field(description="pointsOutstanding at the till's points-to-fen rate.")
    liability_yuan: int = strawberry.field(description="liability in whole yuan (fits an Int on any mall).")
    breakage_rate_permille: int = strawberry.field(description="‰ of the points used up that expired unredeemed.")
    check_ins: int
    task_completions: int
    redemptions: int = strawberry.field(description="Points-mall orders paid (redeemed, checked out or bought in a "
                                        "flash sale; a draw's prize or a campaign's voucher is not one).")
    flash_sale_orders: int
    draw_plays: int
    parking_offsets: int = strawberry.field(description="Members' car-park exits whose fee the programme reduced "
                                            "(tier free time, a purchase, a parking coupon or points).")
    parking_offset: Money = strawberry.field(description="By how much those exits' fees were reduced, in all.")


def _figures(f: insight.KpiFigures) -> dict[str, object]:
    return dict(
        members_total=f.members_total, members_new=f.members_new, members_active=f.members_active,
        purchases=f.purchases, member_sales=Money(amount_fen=f.member_sales_fen),
        member_sales_yuan=f.member_sales_fen // 100, average_ticket=Money(amount_fen=f.average_ticket_fen),
        repurchase_rate_permille=f.repurchase_rate_permille, points_issued=f.points_issued,
        points_redeemed=f.points_redeemed, points_expired=f.points_expired, points_outstanding=f.points_outstanding,
        liability=Money(amount_fen=f.liability_fen), liability_yuan=f.liability_fen // 100,
        breakage_rate_permille=f.breakage_rate_permille,
        check_ins=f.check_ins, task_completions=f.task_completions, redemptions=f.redemptions,
        flash_sale_orders=f.flash_sale_orders, draw_plays=f.draw_plays, parking_offsets=f.parking_offsets,
        parking_offset=Money(amount_fen=f.parking_offset_fen))


@strawberry.type(description="One Asia/Shanghai day's KPIs (totals as at the end of the day).")
class KpiDay(KpiFigures):
    day: date

    @classmethod
    def of(cls, f: insight.KpiDayFigures) -> "KpiDay":
        return cls(day=f.day, **_figures(f))  # type: ignore[arg-type]


@strawberry.type(description="KPIs of a range of Asia/Shanghai days, with the daily series.")
class Kpis(KpiFigures):
    daily: list[KpiDay]

    @classmethod
    def of(cls, k: insight.Kpis) -> "Kpis":
        return cls(daily=[KpiDay.of(d) for d in k.daily], **_figures(k))  # type: ignore[arg-type]


@strawberry.type
class LifecycleChange:
    from_stage: Optional[LifecycleStage]
    to_stage: LifecycleStage
    changed_at: datetime


@strawberry.type(description="RFM over the configured window (scores 1–5, 0 without a purchase in it) and stage.")
class MemberInsight:
    rec: strawberry.Private[insight.InsightRecord]
    recency_days: int = strawberry.field(description="Days since the last purchase (since joining if none).")
    frequency: int = strawberry.field(description="Purchases in the window.")
    monetary: Money = strawberry.field(description="Σ purchases in the window.")
    r: int
    f: int
    m: int
    lifecycle: LifecycleStage
    stage_since: datetime
    computed_at: datetime

    @classmethod
    def of(cls, rec: insight.InsightRecord) -> "MemberInsight":
        return cls(rec=rec, recency_days=rec.recency_days, frequency=rec.frequency,
                   monetary=Money(amount_fen=rec.monetary_fen), r=rec.r, f=rec.f, m=rec.m,
                   lifecycle=LifecycleStage(rec.lifecycle), stage_since=rec.stage_since, computed_at=rec.computed_at)

    @strawberry.field(description="Stage changes, newest first.")
    async def history(self, first: int = 20) -> list[LifecycleChange]:
        return [LifecycleChange(from_stage=LifecycleStage(c.from_stage) if c.from_stage else None,
                                to_stage=LifecycleStage(c.to_stage), changed_at=c.changed_at)
                for c in await insight.history(self.rec.member_id, max(1, min(first, 100)))]


@strawberry.type
class LifecycleCount:
    stage: LifecycleStage
    members: int


@strawberry.type
class MerchantSales:
    code: str
    name: str
    purchases: int
    sales: Money


@strawberry.input
class InsightRecomputeInput:
    as_of: Optional[datetime] = strawberry.field(default=None, description="Default now; not in the future.")


@strawberry.type
class InsightRecomputePayload:
    members: Optional[int] = None
    stage_changes: Optional[int] = None
    kpi_days_rolled: Optional[int] = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
