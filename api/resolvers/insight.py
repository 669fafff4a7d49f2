"""Insight (issue 13): KPIs, lifecycle distribution, top merchants, and the on-demand recomputation. Roles are
checked per root field before these run (api/services/operators/roles.py)."""
from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.resolvers import user_errors
from api.schema.base import Money
from api.schema.errors import ApiError
from api.schema.insight_types import (
    InsightRecomputeInput,
    InsightRecomputePayload,
    Kpis,
    LifecycleCount,
    LifecycleStage,
    MerchantSales,
)
from api.services import insight
from api.services.errors import DomainError

From = Annotated[date, strawberry.argument(name="from")]


async def kpis(info: Info, from_: From, to: date) -> Kpis:
    try:
        return Kpis.of(await insight.kpis(from_, to))
    except DomainError as err:
        raise ApiError(err.message, "INVALID_INPUT") from None


async def lifecycle_distribution(info: Info) -> list[LifecycleCount]:
    counts = await insight.stage_counts()
    return [LifecycleCount(stage=s, members=counts.get(s.value, 0)) for s in LifecycleStage]


async def top_merchants(info: Info, from_: From, to: date, first: int = 10) -> list[MerchantSales]:
    if not 1 <= first <= 100:
        raise ApiError("first must be between 1 and 100", "INVALID_INPUT")
    try:
        rows = await insight.top_merchants(from_, to, first)
    except DomainError as err:
        raise ApiError(err.message, "INVALID_INPUT") from None
    return [MerchantSales(code=r.code, name=r.name, purchases=r.purchases, sales=Money(amount_fen=r.sales_fen))
            for r in rows]


@user_errors(InsightRecomputePayload)
async def insight_recompute(info: Info, input: InsightRecomputeInput) -> InsightRecomputePayload:
    done = await insight.run_now(info.context.operator_actor(), input.as_of)
    return InsightRecomputePayload(members=done.members, stage_changes=done.stage_changes,
                                   kpi_days_rolled=done.kpi_days_rolled)
