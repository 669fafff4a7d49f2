"""Insight (issue 13): the operators' root fields for KPIs, RFM and lifecycle, and the dashboard's reads,
mixed into the operators' Query and Mutation (api/schema/admin.py)."""
from __future__ import annotations

import strawberry

from api.resolvers import insight as ir
from api.schema.insight_types import InsightRecomputePayload, Kpis, LifecycleCount, MerchantSales


@strawberry.type
class InsightQuery:
    kpis: Kpis = strawberry.field(resolver=ir.kpis, description="KPIs of [from, to], Asia/Shanghai days (≤ 3 years).")
    lifecycle_distribution: list[LifecycleCount] = strawberry.field(
        resolver=ir.lifecycle_distribution, description="Members per lifecycle stage (as last recomputed).")
    top_merchants: list[MerchantSales] = strawberry.field(
        resolver=ir.top_merchants, description="Merchants by member sales in [from, to], Asia/Shanghai days.")


@strawberry.type
class InsightMutation:
    insight_recompute: InsightRecomputePayload = strawberry.mutation(
        resolver=ir.insight_recompute,
        description="Rolls the KPI days due and recomputes every member's RFM scores and lifecycle stage now.")
