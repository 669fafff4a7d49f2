"""Insight (issue 13): KPIs with a daily rollup, RFM scores and lifecycle stages. See docs/insight.md."""
from api.services.insight.kpis import MAX_RANGE_DAYS, KpiDayFigures, KpiFigures, Kpis, kpis
from api.services.insight.reads import TopMerchant, top_merchants
from api.services.insight.rfm import (
    InsightRecord,
    RecomputeResult,
    StageChange,
    for_members,
    history,
    recompute,
    recompute_if_due,
    stage_counts,
)
from api.services.insight.rollup import RollupResult
from api.services.insight.rollup import run as rollup_run
from api.services.insight.runs import RunNow, run_now

__all__ = ["MAX_RANGE_DAYS", "InsightRecord", "KpiDayFigures", "KpiFigures", "Kpis", "RecomputeResult", "RollupResult", "RunNow",
           "StageChange", "TopMerchant", "for_members", "history", "kpis", "recompute", "recompute_if_due",
           "rollup_run", "run_now", "stage_counts", "top_merchants"]
