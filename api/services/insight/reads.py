"""Small reads for the dashboard: the merchants with the most member sales in a range of days."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from api.db import fetch
from api.services import clock
from api.services.insight import sql
from api.services.insight.kpis import check_range


@dataclass(frozen=True)
class TopMerchant:
    code: str
    name: str
    purchases: int
    sales_fen: int


async def top_merchants(start: date, end: date, first: int) -> list[TopMerchant]:
    check_range(start, end)
    rows = await fetch(sql.TOP_MERCHANTS, clock.day_bounds(start)[0], clock.day_bounds(end)[1], first)
    return [TopMerchant(str(r["code"]), str(r["name"]), int(r["purchases"]), int(r["sales_fen"])) for r in rows]
