"""A flash sale's terms: the record, the per-process cache in front of it, and the lists."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from api.models import FlashSale
from api.services import clock
from api.services.errors import DomainError, ErrorCode
from api.services.mall.records import column, load, record
from api.services.mall.zones import segment_filter, zone_filter


@dataclass(frozen=True)
class SaleInfo:
    id: int
    product_id: int
    title: str
    points_price: int
    stock: int
    stock_total: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    status: str
    created_at: datetime
    updated_at: datetime

    def on_sale(self, now: datetime) -> bool:
        return self.status == "ACTIVE" and self.starts_at <= now < self.ends_at


# The sale's terms, cached in the process (not its stock: the database and the gate hold that).
_terms: dict[int, tuple[float, SaleInfo]] = {}
_loading: dict[int, asyncio.Future] = {}
TERMS_SECONDS = 2.0  # an operator's change reaches every server process within this time


async def sale(sale_id: int, fresh: bool = False) -> SaleInfo:
    """The sale's terms. In a burst, one read per process is in flight at a time: the others wait for
    it (a thousand requests missing the cache at once would each queue for a database connection)."""
    cached = _terms.get(sale_id)
    if not fresh and cached is not None and time.monotonic() - cached[0] < TERMS_SECONDS:
        return cached[1]
    pending = _loading.get(sale_id)
    if pending is None:
        pending = asyncio.ensure_future(_read_terms(sale_id))
        _loading[sale_id] = pending
        pending.add_done_callback(lambda _f: _loading.pop(sale_id, None))
    return await asyncio.shield(pending)


async def read(sale_id: int) -> SaleInfo | None:
    """The sale as stored now (inside a transaction, on the transaction's connection)."""
    found = await FlashSale.get_or_none(id=sale_id)
    return None if found is None else record(SaleInfo, found)


async def _read_terms(sale_id: int) -> SaleInfo:
    info = await read(sale_id)
    if info is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such flash sale", ["input", "flashSaleId"])
    _terms[sale_id] = (time.monotonic(), info)
    return info


def forget(sale_id: int) -> None:
    """Drops the cached terms (after an operator's change)."""
    _terms.pop(sale_id, None)


async def sales_page(limit: int, after_id: int | None, *, include_hidden: bool,
                     tier_id: int | None = None, member_id: int | None = None) -> list[SaleInfo]:
    """Sales by start time; members (not include_hidden) see the live and coming sales of the
    products their tier may see (exclusive zones) and their segments may buy."""
    query = FlashSale.filter(id__gt=after_id or 0)
    if not include_hidden:
        query = query.filter(await zone_filter(tier_id, "product__"), await segment_filter(member_id, "product__"),
                             status="ACTIVE", ends_at__gt=clock.now())
    return await load(SaleInfo, query.order_by("starts_at", "id").limit(limit))


async def live_sale_ids(now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    return await column(FlashSale.filter(status="ACTIVE", starts_at__lte=now, ends_at__gt=now), "id")
