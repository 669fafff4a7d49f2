"""What a member may see: exclusive zones (a minimum tier), products restricted to a segment the member is
in, and the catalogue's pages."""
from __future__ import annotations

from typing import Any, cast

from tortoise.expressions import Q

from api.models import Product
from api.services import clock, tiers
from api.services import text as hygiene
from api.services.mall.catalogue import ProductInfo, info
from api.services.mall.records import names
from api.services.segments import membership


async def _tier_rank(tier_id: int | None) -> int:
    """The tier's threshold (the order of tiers); -1 for no tier."""
    if tier_id is None:
        return -1
    return (await tiers.tier_by_id(tier_id)).growth_threshold


async def visible_to(tier_id: int | None, p: ProductInfo) -> bool:
    """Exclusive zones: a product with a minimum tier is shown to that tier and above only."""
    return p.min_tier_id is None or (tier_id is not None and await _tier_rank(tier_id) >= await _tier_rank(p.min_tier_id))


async def zone_filter(tier_id: int | None, prefix: str = "") -> Q:
    """A filter keeping the products (through `prefix`, e.g. "product__") a member of this tier may see."""
    rank = await _tier_rank(tier_id)
    tier_ids = [t.id for t in await tiers.all_tiers() if t.growth_threshold <= rank]
    without: dict[str, Any] = {f"{prefix}min_tier_id__isnull": True}
    allowed: dict[str, Any] = {f"{prefix}min_tier_id__in": tier_ids}
    return Q(**without) | Q(**allowed)


async def segment_filter(member_id: int | None, prefix: str = "") -> Q:
    """A filter keeping the products (through `prefix`) a member may buy by segment: the unrestricted ones
    and those of the segments the member is in now (one membership query per segment that restricts an
    active product; none when no product is restricted)."""
    restricted = {int(cast(int, i)) for i in await Product.filter(segment_id__not_isnull=True, status="ACTIVE")
                  .distinct().values_list("segment_id", flat=True)}
    inside = await membership.member_segments(member_id, restricted) if member_id is not None and restricted else ()
    unrestricted: dict[str, Any] = {f"{prefix}segment_id__isnull": True}
    theirs: dict[str, Any] = {f"{prefix}segment_id__in": sorted(inside) or [-1]}
    return Q(**unrestricted) | Q(**theirs)


async def browse(*, tier_id: int | None, spendable: int | None, kind: str | None, zone: str | None,
                 affordable: bool, include_hidden: bool, limit: int, after_id: int | None,
                 member_id: int | None = None) -> list[ProductInfo]:
    """Products a member may see, by id (their tier's zones, their segments' products); operators
    (include_hidden) see every product."""
    if zone is not None and hygiene.has_control(zone):  # no product has one; PostgreSQL refuses NUL in a query
        return []
    query = Product.filter(id__gt=after_id or 0)
    if not include_hidden:
        query = query.filter(Q(sale_ends_at__isnull=True) | Q(sale_ends_at__gt=clock.now()), status="ACTIVE")
        query = query.filter(await zone_filter(tier_id), await segment_filter(member_id))
    if kind is not None:
        query = query.filter(kind=kind)
    if zone is not None:
        query = query.filter(zone=zone)
    if affordable:
        query = query.filter(points_price__lte=max(spendable or 0, 0))
    rows = await query.order_by("id").limit(limit).values(*names(ProductInfo))
    return [info(r) for r in rows]
